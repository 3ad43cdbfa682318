package transfer

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
	top     *top           // nil if refused
	rest    string         // the path below the top-level name, "" for the top itself
	disk    string         // where the data goes (files) or the directory (dirs)
	offset  int64          // where the planned resume starts
	prefix  *blake3.Hasher // the whole-file hasher primed with the resumed prefix, once hashed
	// prefixSum is the BLAKE3 of the resumed prefix: from prefix, or from
	// the .part's resume record, and then hashed (set prefix, or hashErr)
	// by the time hashed is closed.
	prefixSum [32]byte
	hashed    chan struct{} // nil unless the prefix is hashed after the plan
	hashErr   error
	fresh     bool // no data existed: create the file exclusively
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
		case e.Kind == kindFile && e.Size < 0:
			return nil, nil, fmt.Errorf("%w: entry %d: bad size", ErrProtocol, i)
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
