package transfer

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/zeebo/blake3"
)

// source is one manifest entry on the sending side.
type source struct {
	entry
	local   string    // path on disk, for files
	modTime time.Time // when collected
}

// collect walks paths into manifest entries. Symlinks and special files are
// never sent: they come back in skipped, as do names [SafeRelPath] refuses
// (status refused), so the receiver never sees them.
func collect(paths []string) (srcs []source, skipped []FileResult, err error) {
	tops := map[string]string{}
	// add records one walked path; it reports false for a refused directory,
	// whose tree is then not walked.
	add := func(local, rel string, fi fs.FileInfo) bool {
		if !fi.Mode().IsRegular() && !fi.IsDir() {
			what := "special file"
			if fi.Mode()&fs.ModeSymlink != 0 {
				what = "symlink"
			}
			skipped = append(skipped, FileResult{Name: rel, Status: StatusSkipped, Reason: what + " not sent"})
			return true
		}
		if _, err := SafeRelPath(rel); err != nil {
			skipped = append(skipped, FileResult{Name: rel, Status: StatusRefused, Reason: err.Error()})
			return false
		}
		e := entry{Path: rel, Kind: kindDir, Mode: uint32(fi.Mode().Perm())}
		if fi.Mode().IsRegular() {
			e.Kind, e.Size = kindFile, fi.Size()
		}
		srcs = append(srcs, source{entry: e, local: local, modTime: fi.ModTime()})
		return true
	}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, nil, fmt.Errorf("resolve %s: %w", p, err)
		}
		top := filepath.Base(abs)
		if top == string(filepath.Separator) {
			return nil, nil, fmt.Errorf("cannot send the root directory")
		} else if prev, dup := tops[top]; dup {
			return nil, nil, fmt.Errorf("%s and %s would both arrive as %q", prev, p, top)
		}
		tops[top] = p
		fi, err := os.Lstat(abs)
		if err != nil {
			return nil, nil, fmt.Errorf("stat %s: %w", p, err)
		}
		if !fi.IsDir() {
			add(abs, top, fi)
			continue
		}
		err = filepath.WalkDir(abs, func(local string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(abs, local)
			if err != nil {
				return err
			}
			if !add(local, strings.TrimSuffix(top+"/"+filepath.ToSlash(rel), "/."), fi) && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("walk %s: %w", p, err)
		}
	}
	if len(srcs) > MaxEntries {
		return nil, nil, fmt.Errorf("%d entries, the limit is %d", len(srcs), MaxEntries)
	}
	return srcs, skipped, nil
}

// hashAll fills in the whole-file BLAKE3 of every file in srcs, on up to
// GOMAXPROCS goroutines (at most 4).
func hashAll(ctx context.Context, srcs []source, chunk int) error {
	jobs := make(chan *source)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), 4) {
		wg.Go(func() {
			var bufs [2][]byte
			for s := range jobs {
				if err := hashFile(ctx, s, &bufs, chunk); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	func() {
		defer close(jobs)
		for i := range srcs {
			if srcs[i].Kind != kindFile {
				continue
			}
			select {
			case jobs <- &srcs[i]:
			case err := <-errs:
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// hashFile computes the whole-file BLAKE3 of s, reading the next chunk into
// one of bufs (allocated on first use) while hashing the other.
func hashFile(ctx context.Context, s *source, bufs *[2][]byte, chunk int) error {
	f, err := os.Open(s.local)
	if err != nil {
		return fmt.Errorf("hash %s: %w", s.local, err)
	}
	defer f.Close() // read-only
	for i := range bufs {
		if bufs[i] == nil && (i == 0 || s.Size > int64(chunk)) {
			bufs[i] = make([]byte, chunk)
		}
	}
	read := func(buf []byte, off int64) error {
		if _, err := io.ReadFull(f, buf[:min(int64(chunk), s.Size-off)]); err != nil {
			return fmt.Errorf("hash %s: short at %d (did the file change?): %w", s.local, off, err)
		}
		return nil
	}
	h := blake3.New()
	if err := read(bufs[0], 0); err != nil {
		return err
	}
	for k, off := 0, int64(0); off < s.Size; k, off = k+1, off+int64(chunk) {
		if err := ctx.Err(); err != nil {
			return err
		}
		var wg sync.WaitGroup
		var rerr error
		if next := off + int64(chunk); next < s.Size {
			wg.Go(func() { rerr = read(bufs[(k+1)%2], next) })
		}
		h.Write(bufs[k%2][:min(int64(chunk), s.Size-off)])
		wg.Wait()
		if rerr != nil {
			return rerr
		}
	}
	s.BLAKE3 = hex.EncodeToString(h.Sum(nil))
	return nil
}

// hashPrefix returns the BLAKE3 of the first n bytes of the file at path;
// it fails if the file is shorter.
func hashPrefix(ctx context.Context, path string, n int64, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close() // read-only
	h := blake3.New()
	if err := hashFrom(ctx, h, f, n, buf); err != nil {
		return nil, fmt.Errorf("hash %s: %w", path, err)
	}
	return h.Sum(nil), nil
}

// hashFrom feeds exactly n bytes of r to h, checking ctx between buffers.
func hashFrom(ctx context.Context, h *blake3.Hasher, r io.Reader, n int64, buf []byte) error {
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := io.ReadFull(r, buf[:min(int64(len(buf)), n)])
		h.Write(buf[:m])
		n -= int64(m)
		if err != nil {
			return fmt.Errorf("%d bytes short (did the file change?): %w", n, err)
		}
	}
	return nil
}

// item is one manifest entry on the receiving side.
type item struct {
	entry
	index   int
	refused string
	top     *top   // nil if refused
	rest    string // the path below the top-level name, "" for the top itself
	disk    string // where the data goes (files) or the directory (dirs)
	offset  int64  // where the planned resume starts
	prefix  *blake3.Hasher
	fresh   bool // no data existed: create the file exclusively
}

// top is one top-level name of the manifest.
type top struct {
	name, as string // as in the manifest, and where it lands
	copy     int    // as is copyName(name, copy)
	kind     string // a lone file or a directory tree
	work     string // inbox/as.part: the temporary file, or the tree being built
	mode     uint32 // of the directory, if the manifest lists it; 0 otherwise
	listed   bool   // the manifest lists the top itself
	resumed  bool
	failed   bool // a file in the tree did not verify: the tree stays as.part
}

// validate checks every entry's fields and name. Entries with unsafe or
// clashing names are refused one by one; malformed fields fail the whole
// transfer with [ErrProtocol].
func validate(entries []entry) ([]*item, []*top, error) {
	items := make([]*item, len(entries))
	byPath := map[string]*item{}
	for i, e := range entries {
		it := &item{entry: e, index: i}
		items[i] = it
		switch {
		case e.Kind == kindFile && (e.Size < 0 || !isHexSum(e.BLAKE3)):
			return nil, nil, fmt.Errorf("%w: entry %d: bad size or blake3", ErrProtocol, i)
		case e.Kind != kindFile && e.Kind != kindDir:
			it.refused = fmt.Sprintf("unsupported kind %q", e.Kind)
			continue
		}
		it.Mode &= 0o777
		p, err := SafeRelPath(e.Path)
		if err != nil {
			it.refused = err.Error()
			continue
		} else if prev, dup := byPath[p]; dup {
			it.refused = fmt.Sprintf("%v: duplicate of entry %d", ErrUnsafeName, prev.index)
			continue
		}
		it.Path = p
		byPath[p] = it
	}
	var tops []*top
	byName := map[string]*top{}
	for _, it := range items {
		if it.refused != "" {
			continue
		}
		name, rest, _ := strings.Cut(it.Path, "/")
		for p := it.Path; ; {
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				break
			}
			p = p[:i]
			if up := byPath[p]; up != nil && up.Kind == kindFile {
				it.refused = fmt.Sprintf("%v: inside file %q", ErrUnsafeName, p)
				break
			}
		}
		if it.refused != "" {
			continue
		}
		t := byName[name]
		if t == nil {
			t = &top{name: name, kind: kindDir}
			if up := byPath[name]; up != nil && up.Kind == kindFile {
				t.kind = kindFile
			}
			byName[name] = t
			tops = append(tops, t)
		}
		if rest == "" && it.Kind == kindDir {
			t.mode, t.listed = it.Mode, true
		}
		it.top, it.rest = t, rest
	}
	return items, tops, nil
}

func isHexSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
