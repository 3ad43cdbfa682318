package transfer

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/zeebo/blake3"
)

// Send sends the files and directory trees at paths over rw, to a peer
// running [Receiver.Receive]; a directory arrives with its whole tree under
// its own base name. Symlinks, devices, FIFOs and sockets are skipped and
// reported with status "skipped". Send streams all data at once, without a
// pass over the files first and without waiting for the receiver between
// files, collecting its acknowledgements concurrently; each file's BLAKE3 is
// computed while it is read and sent after its data.
//
// Send returns a nil error only if the receiver confirmed the whole-file
// BLAKE3 of every file sent and refused nothing; otherwise the error wraps
// [ErrMismatch], [ErrUnsafeName], [ErrNoSpace], [ErrProtocol], [ErrStalled]
// or [ErrCanceled] where one applies. The Result covers what got done either way.
//
// The caller owns rw and closes it after Send returns. When ctx is done, Send
// interrupts blocked I/O through rw's SetDeadline (net.Conn and *quic.Stream
// have it) and returns; a stream without deadlines must be closed by the
// caller to unblock Send.
func Send(ctx context.Context, rw io.ReadWriter, paths []string, opts Options) (Result, error) {
	now := opts.clock()
	start := now()
	chunk := opts.ChunkSize
	if chunk == 0 {
		chunk = DefaultChunkSize
	} else if chunk < MinChunkSize || chunk > MaxChunkSize {
		return Result{}, fmt.Errorf("send: chunk size %d outside %d-%d", chunk, MinChunkSize, MaxChunkSize)
	}
	s := &stream{rw: rw}
	defer s.watch(ctx)()
	sd := &sender{opts: opts, chunk: chunk, s: s, bw: bufio.NewWriterSize(s, 64<<10)}
	err := sd.run(ctx, paths)
	res := Result{Files: sd.files, Bytes: sd.sent, Resumed: sd.resumed, Duration: now().Sub(start)}
	res.Files = append(res.Files, sd.skipped...)
	if err == nil {
		err = verdict(res.Files)
	}
	return res, sideError(ctx, "send", err)
}

// drainGrace is how long a sender whose stream broke waits for the reader
// to find the receiver's abort message in what already arrived.
const drainGrace = 2 * time.Second

// sender is the state of one [Send].
type sender struct {
	opts    Options
	chunk   int
	s       *stream
	bw      *bufio.Writer
	srcs    []source
	files   []FileResult // files and refused entries, in manifest order
	slot    []int        // srcs index → files index, -1 for an accepted directory
	offsets []int64      // srcs index → where sending starts (planned, then actual), -1 if not sent
	prefix  []string     // srcs index → the receiver's BLAKE3 of the planned prefix
	planned int64        // bytes the plan says the receiver has
	hbuf    []byte       // for hashing resumed prefixes
	h       *blake3.Hasher
	skipped []FileResult
	sent    int64
	resumed int64
	total   int64
	rep     *replies
	free    chan []byte // chunk buffers not in use, made as needed
	spare   int         // buffers not made yet
}

// run does the whole transfer; it returns only after the reply reader is done
// (or could not be stopped: a stream without deadlines).
func (sd *sender) run(ctx context.Context, paths []string) error {
	var err error
	if sd.srcs, sd.skipped, err = collect(paths); err != nil {
		tellPeer(sd.s, sd.bw, err)
		return err
	}
	sd.rep = newReplies(sd.srcs)
	go sd.rep.run(bufio.NewReaderSize(sd.s, 16<<10), sd.s)
	if err = sd.exchange(ctx); err != nil {
		tellPeer(sd.s, sd.bw, err)
		if sd.s.broken.Load() && !errors.Is(err, ErrStalled) { // a stalled peer has nothing more to say
			// The peer may have said why before it went: let the reader
			// drain what already arrived.
			t := time.NewTimer(drainGrace)
			select {
			case <-sd.rep.done:
			case <-t.C:
			}
			t.Stop()
		}
		if !sd.s.interrupt() {
			return err // the reader ends when the caller closes rw
		}
	}
	select {
	case <-sd.rep.done:
	case <-ctx.Done():
		if !sd.s.interrupt() {
			return ctx.Err()
		}
		<-sd.rep.done
	}
	var pe *peerError
	if sd.rep.err != nil && (err == nil || errors.As(sd.rep.err, &pe)) {
		return sd.rep.err // the peer's reason beats our broken pipe
	}
	if err != nil {
		return err
	}
	return sd.collectAcks()
}

// exchange writes the manifest, waits for the plan, then streams the data.
func (sd *sender) exchange(ctx context.Context) error {
	entries := make([]entry, len(sd.srcs))
	for i, s := range sd.srcs {
		entries[i] = s.entry
	}
	err := writeBatched(sd.bw, entries, func(b []entry, more bool) any {
		return manifestMsg{Type: typeManifest, Version: Version, ChunkSize: sd.chunk, Entries: b, More: more}
	})
	if err == nil {
		err = sd.bw.Flush()
	}
	if err != nil {
		return err
	}
	var p plan
	select {
	case p = <-sd.rep.plan:
	case <-sd.rep.done:
		return sd.rep.err
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := sd.apply(p); err != nil {
		return err
	}
	// While data flows the receiver takes it as fast as it can: a write that
	// gets nothing through for a few seconds means it is gone.
	sd.s.watchWrites(sd.opts.stallTimeout())
	defer sd.s.watchWrites(0)
	if err := sd.stream(ctx); err != nil {
		return err
	}
	if err := WriteMsg(sd.bw, doneMsg{Type: typeDone, Files: len(sd.files), Bytes: sd.sent}); err != nil {
		return err
	}
	return sd.bw.Flush()
}

// apply takes the receiver's plan: names, refusals and resume offsets. A
// resume offset is only checked here; [sender.stream] takes it if the
// receiver's hash of its prefix is that of the local file's prefix.
func (sd *sender) apply(p plan) error {
	sd.slot = make([]int, len(sd.srcs))
	sd.offsets = make([]int64, len(sd.srcs))
	sd.prefix = make([]string, len(sd.srcs))
	for i, s := range sd.srcs {
		sd.slot[i], sd.offsets[i] = -1, -1
		pe, planned := p.files[i]
		name := s.Path
		if top, rest, _ := strings.Cut(s.Path, "/"); p.as[top] != "" && pe.Refused == "" {
			name = strings.TrimSuffix(p.as[top]+"/"+rest, "/")
		}
		fr := FileResult{Name: name, Size: s.Size}
		switch {
		case pe.Refused != "":
			fr.Status, fr.Reason = StatusRefused, pe.Refused
		case s.Kind == kindDir:
			continue
		case planned && pe.Offset > 0:
			if pe.Offset > s.Size || (pe.Offset != s.Size && pe.Offset%int64(sd.chunk) != 0) || !isHexSum(pe.Prefix) {
				return fmt.Errorf("%w: plan: bad resume offset %d for entry %d", ErrProtocol, pe.Offset, i)
			}
			sd.offsets[i], sd.prefix[i] = pe.Offset, pe.Prefix
		default:
			sd.offsets[i] = 0
		}
		if sd.offsets[i] >= 0 {
			sd.total += s.Size
			sd.planned += sd.offsets[i]
		}
		sd.slot[i] = len(sd.files)
		sd.files = append(sd.files, fr)
	}
	return nil
}

// stream writes every accepted file's data: a file frame, its chunks and
// its end frame.
func (sd *sender) stream(ctx context.Context) error {
	var cf [chunkFrameLen]byte
	pr := Progress{Total: sd.total, Bytes: sd.planned}
	for i := range sd.srcs {
		if sd.offsets[i] >= 0 {
			pr.Files++
		}
	}
	for i, off := range sd.offsets {
		if off < 0 {
			continue
		}
		src := &sd.srcs[i]
		f, err := os.Open(src.local)
		if err != nil {
			return fmt.Errorf("open %s: %w", src.local, err)
		}
		err = sd.file(ctx, f, i, &cf, &pr)
		f.Close() // read-only
		if err != nil {
			return fmt.Errorf("send %s: %w", src.local, err)
		}
	}
	pr.File = ""
	sd.progress(&pr)
	return nil
}

// file sends entry i, open as f: it takes the planned resume offset if the
// receiver's hash of its prefix is that of f's (hashing that prefix is the
// start of the whole-file hash, not an extra pass), then sends the file
// frame, the chunks and the end frame with the whole-file BLAKE3.
//
// Resuming is safe whatever happened to either file meanwhile: the
// receiver's prefix is taken only if its BLAKE3 equals that of the bytes
// the sender has now, and the receiver checks every later chunk and the
// whole file against hashes of what the sender read. Size and mtime serve
// only to notice a file changing while it is read (see [changedSince]).
func (sd *sender) file(ctx context.Context, f *os.File, i int, cf *[chunkFrameLen]byte, pr *Progress) error {
	src, off := &sd.srcs[i], sd.offsets[i]
	if sd.h == nil {
		sd.h = blake3.New()
	}
	h := sd.h // one for every file: a hasher is 8 KiB to allocate and clear
	h.Reset()
	if off > 0 {
		if sd.hbuf == nil {
			sd.hbuf = make([]byte, DefaultChunkSize)
		}
		if err := hashFrom(ctx, h, f, off, sd.hbuf); err != nil {
			return fmt.Errorf("hash: %w", err)
		}
		var sum [32]byte
		if hex.EncodeToString(h.Sum(sum[:0])) != sd.prefix[i] {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			h.Reset()
			pr.Bytes -= off
			off = 0
		}
	}
	sd.offsets[i] = off
	sd.resumed += off
	var ff [fileFrameLen]byte
	putFileFrame(&ff, uint32(i), off)
	if _, err := sd.bw.Write(ff[:]); err != nil {
		return err
	}
	pr.File, pr.FileBytes, pr.FileSize = src.Path, off, src.Size
	sd.progress(pr)
	end := endFrame{index: uint32(i)}
	changed, err := sd.chunks(ctx, f, src, uint32(i), off, h, cf, pr, &end.sum)
	if err != nil {
		return err
	}
	if off == src.Size {
		changed = changedSince(f, src)
	}
	if changed {
		end.flags |= endChanged
	}
	if off == src.Size { // no chunk: the digest of the prefix is the file's
		h.Sum(end.sum[:0])
	}
	var ef [endFrameLen]byte
	end.put(&ef)
	sd.files[sd.slot[i]].BLAKE3 = hex.EncodeToString(end.sum[:])
	_, err = sd.bw.Write(ef[:])
	return err
}

// changedSince reports whether f no longer has the size and modification
// time it had when it was collected: it changed while it was being read,
// so what was sent may be torn. Data integrity does not rest on this (every
// byte sent is hashed as read); it only keeps a torn copy from landing.
// As for any copier, a write within the file system's timestamp
// granularity that keeps the size can go unnoticed.
func changedSince(f *os.File, src *source) bool {
	fi, err := f.Stat()
	return err != nil || fi.Size() != src.Size || !fi.ModTime().Equal(src.modTime)
}

// sendBuffers is how many chunk buffers circulate between the goroutine
// reading and hashing a file and the one writing frames.
const sendBuffers = 3

// readChunk is one chunk read and hashed ahead of the writer.
type readChunk struct {
	buf []byte // a buffer from sd.free, data in buf[:n]
	n   int
	off int64
	sum [32]byte
	err error
	// changed: this is the last chunk and the file changed while it was read
	changed bool
}

// chunks sends bytes off…size of src, open as f, as chunk frames, feeding
// h, the whole-file hasher: each chunk frame carries h's digest of the file
// up to the chunk's end, so one BLAKE3 pass both proves every chunk and
// yields the whole-file hash (see [chunkHeader]). The next chunks are read and hashed on a
// goroutine of their own while this one writes, so the disk, the hash and
// the transport's packing overlap. It reports whether f changed while it
// was read, and leaves the last chunk's digest, the whole file's, in last
// (a second Sum would hash the hasher's buffered tail again).
func (sd *sender) chunks(ctx context.Context, f *os.File, src *source, index uint32, off int64,
	h *blake3.Hasher, cf *[chunkFrameLen]byte, pr *Progress, last *[32]byte) (changed bool, err error) {
	if off == src.Size {
		return false, nil
	}
	if sd.free == nil {
		sd.free = make(chan []byte, sendBuffers)
		sd.free <- make([]byte, sd.chunk)
		sd.spare = sendBuffers - 1
	}
	if sd.spare > 0 && src.Size-off > int64(sd.chunk) { // a file of many chunks: fill the ring
		for ; sd.spare > 0; sd.spare-- {
			sd.free <- make([]byte, sd.chunk)
		}
	}
	if src.Size-off <= int64(sd.chunk) { // one chunk: nothing to overlap, no goroutine to start
		rc := sd.readAhead(f, src, h, off, <-sd.free)
		err := rc.err
		if err == nil {
			err = sd.writeChunk(ctx, index, rc, cf)
		}
		sd.free <- rc.buf
		if err != nil {
			return false, err
		}
		sd.sent += int64(rc.n)
		pr.FileBytes += int64(rc.n)
		pr.Bytes += int64(rc.n)
		sd.progress(pr)
		*last = rc.sum
		return rc.changed, nil
	}
	ahead := make(chan readChunk, sendBuffers) // never full: there are only sendBuffers buffers
	stop := make(chan struct{})
	go func() {
		defer close(ahead)
		for o := off; o < src.Size; {
			var buf []byte
			select {
			case buf = <-sd.free:
			case <-stop:
				return
			}
			rc := sd.readAhead(f, src, h, o, buf)
			ahead <- rc
			if rc.err != nil {
				return
			}
			o += int64(rc.n)
		}
	}()
	defer func() {
		close(stop)
		for rc := range ahead { // the reader has stopped once ahead is closed
			sd.free <- rc.buf
		}
	}()
	for rc := range ahead {
		err := rc.err
		if err == nil {
			err = sd.writeChunk(ctx, index, rc, cf)
		}
		sd.free <- rc.buf
		if err != nil {
			return false, err
		}
		changed, *last = rc.changed, rc.sum
		sd.sent += int64(rc.n)
		pr.FileBytes += int64(rc.n)
		pr.Bytes += int64(rc.n)
		sd.progress(pr)
	}
	return changed, nil
}

// readAhead reads the chunk of src at o from f into buf and feeds it to h,
// the whole-file hasher, whose digest becomes the chunk's sum.
func (sd *sender) readAhead(f *os.File, src *source, h *blake3.Hasher, o int64, buf []byte) readChunk {
	rc := readChunk{buf: buf, off: o, n: int(min(int64(len(buf)), src.Size-o))}
	if _, rc.err = io.ReadFull(f, buf[:rc.n]); rc.err != nil {
		rc.err = fmt.Errorf("read at %d (did the file change?): %w", o, rc.err)
		return rc
	}
	h.Write(buf[:rc.n])
	h.Sum(rc.sum[:0]) // the digest of the file up to this chunk's end
	if o+int64(rc.n) == src.Size {
		rc.changed = changedSince(f, src)
	}
	return rc
}

// writeChunk writes one chunk frame, unless the transfer was stopped.
func (sd *sender) writeChunk(ctx context.Context, index uint32, rc readChunk, cf *[chunkFrameLen]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	} else if sd.rep.stopped() {
		if sd.rep.err != nil {
			return sd.rep.err
		}
		return fmt.Errorf("%w: summary before the data ended", ErrProtocol)
	}
	h := chunkHeader{index: index, offset: rc.off, length: uint32(rc.n), sum: rc.sum}
	h.put(cf)
	if _, err := sd.bw.Write(cf[:]); err != nil {
		return err
	}
	_, err := sd.bw.Write(rc.buf[:rc.n])
	return err
}

func (sd *sender) progress(pr *Progress) {
	if sd.opts.Progress != nil {
		pr.FilesDone = int(sd.rep.confirmed.Load())
		sd.opts.Progress(*pr)
	}
}

// collectAcks fills in each file's verdict from the receiver's acknowledgements.
func (sd *sender) collectAcks() error {
	for i, off := range sd.offsets {
		if off < 0 {
			continue
		}
		a := sd.rep.acks[i]
		if a == nil {
			return fmt.Errorf("%w: no acknowledgement for entry %d", ErrProtocol, i)
		}
		fr := &sd.files[sd.slot[i]]
		fr.Status, fr.Reason = a.Status, a.Reason
		if a.Name != "" {
			fr.Name = a.Name
		}
	}
	applyRenames(sd.files, sd.rep.summary.Renamed)
	return nil
}
