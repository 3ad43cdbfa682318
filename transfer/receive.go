package transfer

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/zeebo/blake3"
)

// Receiver receives transfers into Inbox.
type Receiver struct {
	// Inbox is the directory everything lands in; it must exist. Nothing is
	// ever written outside it, no symlink inside it is followed, and no
	// existing name in it is overwritten.
	Inbox string
	// FreeSpace reports the bytes available to an unprivileged user in dir;
	// nil means statfs(2). A test seam.
	FreeSpace func(dir string) (uint64, error)
	// Umask returns the permission bits taken from the sender's modes (see
	// [ProcessUmask]); nil means this process's umask. A test seam.
	Umask   func() fs.FileMode
	Options // Progress and Now apply; ChunkSize is the sender's to choose
}

// Receive runs the receiving side of one transfer from a peer running [Send]
// over rw. It refuses, entry by entry, names [SafeRelPath] rejects and names
// that clash within the manifest; it refuses the whole transfer with
// [ErrNoSpace] before any data moves if the inbox's file system cannot hold
// the bytes still to come. Files land as "NAME.part" (a tree as "TREE.part/")
// and are renamed only once their BLAKE3 matches; a chunk that does not match
// its hash aborts everything with [ErrMismatch] before it is written, so a
// ".part" holds only verified data and a rerun of the same send resumes it.
//
// Receive returns a nil error only if every file was verified and landed;
// otherwise the error wraps [ErrMismatch], [ErrUnsafeName], [ErrNoSpace],
// [ErrProtocol] or [ErrCanceled] where one applies. The caller owns rw and
// closes it after Receive returns; cancellation works as for [Send].
// Receive may run on several goroutines at once, but two concurrent
// transfers of the same name into one inbox are not coordinated.
func (r *Receiver) Receive(ctx context.Context, rw io.ReadWriter) (Result, error) {
	now := r.clock()
	start := now()
	s := &stream{rw: rw}
	defer s.watch(ctx)()
	rc := &receiver{r: r, s: s, br: bufio.NewReaderSize(s, 64<<10), bw: bufio.NewWriterSize(s, 16<<10)}
	err := rc.run(ctx)
	if err != nil {
		tellPeer(s, rc.bw, err)
	}
	res := Result{Bytes: rc.received, Resumed: rc.resumed, Duration: now().Sub(start)}
	for _, it := range rc.items {
		if it.Kind == kindFile || it.refused != "" {
			res.Files = append(res.Files, rc.result(it))
		}
	}
	applyRenames(res.Files, rc.renamed)
	if err == nil {
		err = verdict(res.Files)
	}
	return res, sideError(ctx, "receive", err)
}

// receiver is the state of one [Receiver.Receive].
type receiver struct {
	r        *Receiver
	s        *stream
	br       *bufio.Reader
	bw       *bufio.Writer
	chunk    int
	items    []*item
	tops     []*top
	reserved map[string]bool // inbox names taken by this transfer's tops
	status   map[*item]ackMsg
	received int64
	resumed  int64
	total    int64
	renamed  []landing
	h        *blake3.Hasher // the whole-file hasher of files that do not resume
}

func (rc *receiver) run(ctx context.Context) error {
	entries, err := rc.readManifest()
	if err != nil {
		return err
	}
	if rc.items, rc.tops, err = validate(entries); err != nil {
		return err
	}
	if err := rc.plan(ctx); err != nil {
		return err
	}
	if err := rc.writePlan(); err != nil {
		return err
	}
	return rc.data(ctx)
}

// readManifest reads manifest messages until one says no more follow.
func (rc *receiver) readManifest() ([]entry, error) {
	var entries []entry
	for first := true; ; first = false {
		var m manifestMsg
		if err := readMsgOrAbort(rc.br, &m); err != nil {
			return nil, err
		}
		switch {
		case m.Version != Version:
			return nil, fmt.Errorf("%w: the sender speaks transfer version %d, this side %d: run the same mesh version on both machines",
				ErrProtocol, m.Version, Version)
		case m.ChunkSize < MinChunkSize || m.ChunkSize > MaxChunkSize || (!first && m.ChunkSize != rc.chunk):
			return nil, fmt.Errorf("%w: chunk size %d", ErrProtocol, m.ChunkSize)
		case len(entries)+len(m.Entries) > MaxEntries:
			return nil, fmt.Errorf("%w: over %d manifest entries", ErrProtocol, MaxEntries)
		}
		rc.chunk = m.ChunkSize
		entries = append(entries, m.Entries...)
		if !m.More {
			return entries, nil
		}
	}
}

// plan chooses landing names, prepares resumes, checks free space, then
// creates the directories.
func (rc *receiver) plan(ctx context.Context) error {
	rc.reserved = map[string]bool{}
	rc.status = map[*item]ackMsg{}
	for _, t := range rc.tops {
		if err := rc.land(t); err != nil {
			return err
		}
	}
	var need uint64
	buf := make([]byte, DefaultChunkSize)
	for _, it := range rc.items {
		if it.refused != "" || it.Kind != kindFile {
			continue
		}
		if err := rc.resume(ctx, it, buf); err != nil {
			return err
		}
		if it.refused == "" {
			need += uint64(it.Size - it.offset)
			rc.total += it.Size
		}
	}
	free, err := rc.freeSpace()
	if err != nil {
		return fmt.Errorf("free space of %s: %w", rc.r.Inbox, err)
	} else if need > free {
		return fmt.Errorf("%w: %d bytes to come, %d free in %s", ErrNoSpace, need, free, rc.r.Inbox)
	}
	return rc.makeDirs()
}

// land picks the name top t lands under: the first of "NAME", "NAME (1).ext",
// … that neither exists in the inbox nor is taken by this transfer, and whose
// ".part" either does not exist or is of t's kind (then the transfer resumes
// it).
func (rc *receiver) land(t *top) error {
	for n := 0; n <= maxCopies; n++ {
		c := copyName(t.name, n, t.kind == kindDir)
		if len(c)+len(partSuffix) > MaxComponent || rc.reserved[c] || rc.reserved[c+partSuffix] {
			continue
		}
		final, err := lstatKind(filepath.Join(rc.r.Inbox, c))
		if err != nil {
			return err
		} else if final != "" {
			continue
		}
		work := filepath.Join(rc.r.Inbox, c+partSuffix)
		part, err := lstatKind(work)
		if err != nil {
			return err
		} else if part != "" && part != t.kind {
			continue
		}
		t.as, t.copy, t.work, t.resumed = c, n, work, part != ""
		rc.reserved[c], rc.reserved[c+partSuffix] = true, true
		return nil
	}
	return fmt.Errorf("no free name for %q in %s", t.name, rc.r.Inbox)
}

// resume sets where file it starts: 0 for a new file, or the whole chunks of
// data a ".part" already holds (all of it if it is complete), which it
// truncates to that length and hashes.
func (rc *receiver) resume(ctx context.Context, it *item, buf []byte) error {
	it.disk = it.top.work
	if it.top.kind == kindDir {
		it.disk = filepath.Join(it.top.work, filepath.FromSlash(it.rest))
	}
	it.fresh = true
	if !it.top.resumed {
		return nil
	}
	switch err := walkDirs(it.top.work, parentOf(it.rest), false); {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		it.refused = fmt.Sprintf("%v: in %s.part: %v", ErrUnsafeName, it.top.as, err)
		return nil
	}
	switch kind, err := lstatKind(it.disk); {
	case err != nil:
		return err
	case kind == "":
		return nil
	case kind != kindFile:
		it.refused = fmt.Sprintf("%v: %s.part/%s exists and is no file", ErrUnsafeName, it.top.as, it.rest)
		return nil
	}
	f, err := os.OpenFile(it.disk, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("resume %s: %w", it.disk, err)
	}
	defer f.Close() // read, then truncated: nothing buffered
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("resume %s: %w", it.disk, err)
	}
	if r, ok := getRecord(f); ok && r.trusted(fi, rc.chunk, it.Size) {
		// Answer at once; the prefix is hashed while the sender hashes its own.
		it.fresh, it.offset, it.prefixSum, it.hashed = false, r.offset, r.sum, make(chan struct{})
		return nil
	}
	have := min(fi.Size(), it.Size)
	if have != it.Size {
		have -= have % int64(rc.chunk)
	}
	if fi.Size() != have {
		if err := f.Truncate(have); err != nil {
			return fmt.Errorf("resume %s: %w", it.disk, err)
		}
	}
	it.fresh, it.offset, it.prefix = false, have, blake3.New()
	if err := hashFrom(ctx, it.prefix, f, have, buf); err != nil {
		return fmt.Errorf("resume %s: %w", it.disk, err)
	}
	it.prefix.Sum(it.prefixSum[:0])
	return nil
}

func (rc *receiver) freeSpace() (uint64, error) {
	if rc.r.FreeSpace != nil {
		return rc.r.FreeSpace(rc.r.Inbox)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(rc.r.Inbox, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// makeDirs creates every tree's directories, refusing the entries whose
// path meets something that is not a plain directory.
func (rc *receiver) makeDirs() error {
	for _, t := range rc.tops {
		if t.kind == kindDir {
			if err := walkDirs(rc.r.Inbox, t.as+partSuffix, true); err != nil {
				return fmt.Errorf("create %s: %w", t.work, err)
			}
		}
	}
	for _, it := range rc.items {
		if it.refused != "" || it.top.kind != kindDir {
			continue
		}
		dir := it.rest
		if it.Kind == kindFile {
			dir = parentOf(it.rest)
		} else {
			it.disk = filepath.Join(it.top.work, filepath.FromSlash(it.rest))
		}
		if err := walkDirs(it.top.work, dir, true); err != nil {
			it.refused = fmt.Sprintf("%v: %v", ErrUnsafeName, err)
		}
	}
	return nil
}

// writePlan sends the landing names, refusals and resume offsets.
func (rc *receiver) writePlan() error {
	var tops []landing
	for _, t := range rc.tops {
		tops = append(tops, landing{Name: t.name, As: t.as})
	}
	var files []planEntry
	for _, it := range rc.items {
		switch {
		case it.refused != "":
			files = append(files, planEntry{Index: it.index, Refused: it.refused})
		case it.offset > 0:
			files = append(files, planEntry{Index: it.index, Offset: it.offset, Prefix: hex.EncodeToString(it.prefixSum[:])})
		}
	}
	if err := writeBatched(rc.bw, tops, func(b []landing, more bool) any {
		return planMsg{Type: typePlan, Tops: b, More: true}
	}); err != nil {
		return err
	}
	if err := writeBatched(rc.bw, files, func(b []planEntry, more bool) any {
		return planMsg{Type: typePlan, Files: b, More: more}
	}); err != nil {
		return err
	}
	return rc.bw.Flush()
}
