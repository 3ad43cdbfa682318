package transfer

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/zeebo/blake3"
)

// data receives every accepted file in manifest order, then the sender's
// done message, lands the trees and answers with the summary.
func (rc *receiver) data(ctx context.Context) error {
	pr := Progress{Total: rc.total}
	for _, it := range rc.items {
		if it.refused == "" && it.Kind == kindFile {
			pr.Files++
			pr.Bytes += it.offset
		}
	}
	hctx, stopHashing := context.WithCancel(ctx)
	hashing := rc.hashPrefixes(hctx)
	defer func() { stopHashing(); <-hashing }()
	k := newSink(rc)
	err := rc.files(ctx, k, &pr)
	if cerr := k.close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = rc.queueAcks(k, &pr)
	}
	if err != nil {
		return err
	}
	if err := rc.finishTrees(); err != nil {
		return err
	}
	sum := summaryMsg{Type: typeSummary, Bytes: rc.received, Renamed: rc.renamed}
	for _, it := range rc.items {
		switch {
		case it.refused != "":
			sum.Refused++
		case it.Kind != kindFile:
		case rc.status[it].Status == StatusOK:
			sum.OK++
		default:
			sum.Mismatch++
		}
	}
	if err := WriteMsg(rc.bw, sum); err != nil {
		return err
	}
	return rc.bw.Flush()
}

// files reads every file's frames up to the done message, handing verified
// chunks to the sink.
func (rc *receiver) files(ctx context.Context, k *sink, pr *Progress) error {
	for _, it := range rc.items {
		if it.refused != "" || it.Kind != kindFile {
			continue
		}
		if err := rc.file(ctx, k, it, pr); err != nil {
			return err
		}
	}
	if err := rc.queueAcks(k, pr); err != nil {
		return err
	}
	_, raw, err := rc.frame()
	if err != nil {
		return err
	}
	var d doneMsg
	if raw == nil {
		return fmt.Errorf("%w: a data frame after the last file", ErrProtocol)
	}
	return raw.decode(&d)
}

// file receives one file: its file frame, then its chunks, each verified
// before the sink writes it.
func (rc *receiver) file(ctx context.Context, k *sink, it *item, pr *Progress) error {
	var hdr [chunkFrameLen - 4]byte
	if err := rc.expect(tagFile, hdr[:fileFrameLen-4], it.index); err != nil {
		return err
	}
	index, off := binary.BigEndian.Uint32(hdr[0:]), int64(binary.BigEndian.Uint64(hdr[4:]))
	if int(index) != it.index || (off != 0 && off != it.offset) {
		return fmt.Errorf("%w: file frame for entry %d at %d, want entry %d at 0 or %d",
			ErrProtocol, index, off, it.index, it.offset)
	}
	if it.hashed != nil {
		select {
		case <-it.hashed:
		case <-ctx.Done():
			return ctx.Err()
		}
		if off > 0 {
			if err := checkRecorded(it); err != nil {
				return err
			}
		}
	}
	h := it.prefix // the receiver's whole-file hasher, primed with the resumed prefix
	if off == 0 || h == nil {
		if rc.h == nil {
			rc.h = blake3.New()
		}
		h = rc.h // one for every file: a hasher is 8 KiB to allocate and clear
		h.Reset()
	}
	var last job // the last chunk queued
	k.jobs <- job{it: it, off: off}
	rc.resumed += off
	pr.Bytes -= it.offset - off // the sender may restart instead of resuming
	pr.File, pr.FileBytes, pr.FileSize = it.Path, off, it.Size
	rc.progress(pr)
	for off < it.Size {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := rc.queueAcks(k, pr); err != nil {
			return err
		}
		var buf []byte
		select {
		case buf = <-k.free:
		case <-k.failed:
			return k.err
		}
		j := job{it: it, off: off}
		n, err := rc.readChunk(it, off, hdr[:], buf, h, &j.sum)
		if err != nil {
			return err
		}
		j.data = buf[:n]
		k.jobs <- j
		last = j
		off += int64(n)
		rc.received += int64(n)
		pr.FileBytes += int64(n)
		pr.Bytes += int64(n)
		rc.progress(pr)
	}
	var end endFrame
	if err := rc.expect(tagEnd, hdr[:endFrameLen-4], it.index); err != nil {
		return err
	} else if end.parse(hdr[:endFrameLen-4]); int(end.index) != it.index || end.flags&^endChanged != 0 {
		return fmt.Errorf("%w: end frame for entry %d with flags %#x, want entry %d", ErrProtocol, end.index, end.flags, it.index)
	}
	it.BLAKE3 = hex.EncodeToString(end.sum[:])
	j := job{it: it, off: -1, changed: end.flags&endChanged != 0}
	if last.data != nil {
		j.got = last.sum // the digest after the last chunk is the whole file's
	} else {
		h.Sum(j.got[:0])
	}
	k.jobs <- j
	return nil
}

// hashPrefixes hashes, in manifest order, the on-disk prefix of every file
// whose plan came from its .part's resume record, on a goroutine of its own
// so the receiver's hashing overlaps the sender's; it closes each item's
// hashed when done. The returned channel is closed when the goroutine ends.
func (rc *receiver) hashPrefixes(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var buf []byte
		for _, it := range rc.items {
			if it.hashed == nil {
				continue
			}
			if buf == nil {
				buf = make([]byte, DefaultChunkSize)
			}
			it.prefix, it.hashErr = hashPart(ctx, it.disk, it.offset, buf)
			close(it.hashed)
		}
	}()
	return done
}

// hashPart returns a whole-file hasher fed the first n bytes of the .part at p.
func hashPart(ctx context.Context, p string, n int64, buf []byte) (*blake3.Hasher, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("resume %s: %w", p, err)
	}
	defer f.Close() // read-only
	h := blake3.New()
	if err := hashFrom(ctx, h, f, n, buf); err != nil {
		return nil, fmt.Errorf("resume %s: %w", p, err)
	}
	return h, nil
}

// checkRecorded checks that the prefix a resume record promised (the plan
// offered its digest, and the sender took it) is what the .part holds. If
// not, the record goes, so that the next run hashes the .part afresh.
func checkRecorded(it *item) error {
	if it.hashErr != nil {
		return it.hashErr
	}
	var sum [32]byte
	if it.prefix.Sum(sum[:0]); sum == it.prefixSum {
		return nil
	}
	if f, err := os.OpenFile(it.disk, os.O_RDWR|syscall.O_NOFOLLOW, 0); err == nil {
		_ = dropRecord(f) // best effort: a record that still fails is caught here again
		f.Close()
	}
	return fmt.Errorf("%w: %s.part no longer holds what its resume record says; rerun to send it again", ErrMismatch, it.Path)
}

// queueAcks buffers the acknowledgements the sink has produced; the next
// read that could block flushes them.
func (rc *receiver) queueAcks(k *sink, pr *Progress) error {
	for _, a := range k.takeAcks() {
		pr.FilesDone++
		if err := WriteMsg(rc.bw, a); err != nil {
			return err
		}
	}
	return nil
}

// readChunk reads the chunk frame that must come next for file it at off into
// buf, feeds it to h, the file's whole-file hasher, and checks h's digest
// against the frame's (see [chunkHeader]), leaving the digest in sum. It
// returns the chunk's length.
func (rc *receiver) readChunk(it *item, off int64, hdr, buf []byte, h *blake3.Hasher, sum *[32]byte) (int, error) {
	if err := rc.expect(tagChunk, hdr, it.index); err != nil {
		return 0, err
	}
	var ch chunkHeader
	ch.parse(hdr)
	want := min(int64(rc.chunk), it.Size-off)
	if int(ch.index) != it.index || ch.offset != off || int64(ch.length) != want {
		return 0, fmt.Errorf("%w: chunk of entry %d at %d+%d, want entry %d at %d+%d",
			ErrProtocol, ch.index, ch.offset, ch.length, it.index, off, want)
	}
	n := int(want)
	if _, err := io.ReadFull(rc.br, buf[:n]); err != nil {
		return 0, fmt.Errorf("read chunk: %w", noEOF(err))
	}
	h.Write(buf[:n])
	if h.Sum(sum[:0]); *sum != ch.sum {
		return 0, fmt.Errorf("%w: %s: the chunk at %d", ErrMismatch, it.Path, off)
	}
	return n, nil
}

func (rc *receiver) progress(pr *Progress) {
	if rc.r.Progress != nil {
		rc.r.Progress(*pr)
	}
}

// result is the receiver's [FileResult] for an entry.
func (rc *receiver) result(it *item) FileResult {
	fr := FileResult{Name: it.Path, Size: it.Size, BLAKE3: it.BLAKE3}
	if it.refused != "" {
		fr.Status, fr.Reason = StatusRefused, it.refused
		return fr
	}
	if it.top != nil && it.top.as != "" {
		fr.Name = it.top.as
		if it.rest != "" {
			fr.Name += "/" + it.rest
		}
	}
	if a, ok := rc.status[it]; ok {
		fr.Name, fr.Status, fr.Reason = a.Name, a.Status, a.Reason
	}
	return fr
}

// frame reads the next frame's first word. For a control message it returns
// tag 0 and the body; an abort becomes a [peerError]. Pending
// acknowledgements are flushed before the read could block.
func (rc *receiver) frame() (uint32, rawMsg, error) {
	if rc.br.Buffered() == 0 && rc.bw.Buffered() > 0 {
		if err := rc.bw.Flush(); err != nil {
			return 0, nil, err
		}
	}
	var w [4]byte
	if _, err := io.ReadFull(rc.br, w[:]); err != nil {
		return 0, nil, fmt.Errorf("read frame: %w", noEOF(err))
	}
	switch tag := binary.BigEndian.Uint32(w[:]); tag {
	case tagFile, tagChunk, tagEnd:
		return tag, nil, nil
	default:
		body, err := readBody(rc.br, tag)
		if err != nil {
			return 0, nil, err
		}
		raw := rawMsg(body)
		if _, err := msgType(raw); err != nil {
			return 0, nil, err
		} else if raw.typ() == typeAbort {
			return 0, nil, raw.decode(nil)
		}
		return 0, raw, nil
	}
}

// expect reads a frame that must be a binary frame with the given tag, for
// entry index, and fills hdr with the rest of its header.
func (rc *receiver) expect(tag uint32, hdr []byte, index int) error {
	what := "a chunk"
	switch tag {
	case tagFile:
		what = "a file frame"
	case tagEnd:
		what = "an end frame"
	}
	got, raw, err := rc.frame()
	if err != nil {
		return err
	} else if got != tag {
		if raw != nil {
			return fmt.Errorf("%w: got a %q message, want %s of entry %d", ErrProtocol, raw.typ(), what, index)
		}
		return fmt.Errorf("%w: got frame %#x, want %s of entry %d", ErrProtocol, got, what, index)
	}
	if _, err := io.ReadFull(rc.br, hdr); err != nil {
		return fmt.Errorf("read %s of entry %d: %w", what, index, noEOF(err))
	}
	return nil
}
