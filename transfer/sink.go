package transfer

import (
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// sinkBuffers is how many chunk buffers circulate between the reading
// goroutine and the sink: one being read, one being written, one spare.
const sinkBuffers = 3

// writebackEvery is how many bytes the sink writes before it asks the kernel
// to start writing them to disk.
const writebackEvery = 8 << 20

// job is one step for the sink.
type job struct {
	it   *item
	off  int64  // where the file starts, or the chunk's offset; -1 finishes the file
	data []byte // a verified chunk; nil to start or finish a file
	// sum is the file's digest up to the chunk's end, for the resume record.
	// When finishing: the BLAKE3 of the data received, and whether the
	// sender saw the file change while it read it.
	sum, got [32]byte
	changed  bool
}

// sink is the receiver's writing goroutine: it writes verified chunks while
// the reading goroutine reads, hashes and verifies the next chunks, and
// finishes each file (hash check, fsync, rename). It never sees
// an unverified byte.
type sink struct {
	rc     *receiver
	jobs   chan job
	free   chan []byte   // chunk buffers the reading goroutine may fill
	failed chan struct{} // closed once err is set
	done   chan struct{} // closed when run returns
	err    error

	f       *os.File // the file being written; run's goroutine only
	flushed int64    // f's bytes before this offset are being written back
	direct  bool     // f is open for direct I/O
	record  int      // 1: f has a resume record, -1: f cannot take one, 0: neither yet

	mu   sync.Mutex
	acks []ackMsg // guarded by mu: finished files not yet acknowledged
}

func newSink(rc *receiver) *sink {
	k := &sink{
		rc:     rc,
		jobs:   make(chan job, 64),
		free:   make(chan []byte, sinkBuffers),
		failed: make(chan struct{}),
		done:   make(chan struct{}),
	}
	for range sinkBuffers {
		k.free <- make([]byte, rc.chunk)
	}
	go k.run()
	return k
}

func (k *sink) run() {
	defer close(k.done)
	for j := range k.jobs {
		if k.err == nil {
			if err := k.do(j); err != nil {
				k.err = err
				close(k.failed)
			}
		}
		if j.data != nil {
			k.free <- j.data[:cap(j.data)]
		}
	}
	if k.f != nil {
		k.f.Close() // an unfinished file keeps its verified chunks for a resume
	}
}

func (k *sink) do(j job) error {
	switch {
	case j.data != nil:
		if err := k.write(j); err != nil {
			return fmt.Errorf("write %s: %w", j.it.disk, err)
		}
		end := j.off + int64(len(j.data))
		if !k.direct && end-k.flushed >= writebackEvery {
			startWriteback(k.f, k.flushed, end-k.flushed)
			k.flushed = end
		}
		if end < j.it.Size && k.record >= 0 {
			k.putRecord(j, end)
		}
	case j.off < 0:
		if k.record > 0 {
			if err := dropRecord(k.f); err != nil {
				return fmt.Errorf("finish %s: %w", j.it.disk, err)
			}
		}
		a, err := k.rc.finishFile(j.it, k.f, j.got, j.changed)
		k.f = nil
		if err != nil {
			return err
		}
		k.mu.Lock()
		k.acks = append(k.acks, a)
		k.mu.Unlock()
	default:
		var err error
		k.f, k.direct, err = openPart(j.it, j.off)
		k.flushed, k.record = j.off, 0
		return err
	}
	return nil
}

// putRecord records on the .part that its first end bytes are verified
// data hashing to j.sum (see resumeRecord). A file system that refuses is
// not asked again for this file: a rerun then hashes the .part first.
func (k *sink) putRecord(j job, end int64) {
	fi, err := k.f.Stat()
	if err == nil {
		err = putRecord(k.f, resumeRecord{chunk: uint32(k.rc.chunk), offset: end, mtime: fi.ModTime().UnixNano(), sum: j.sum})
	}
	if err != nil {
		k.record = -1
		return
	}
	k.record = 1
}

// write writes a chunk at the file's current offset, leaving direct I/O
// for good at the first chunk it cannot take (a file's short last chunk,
// or a file system that refuses it).
func (k *sink) write(j job) error {
	if k.direct && !directOK(j.data, j.off) {
		if err := stopDirect(k.f); err != nil {
			return err
		}
		k.direct = false
	}
	_, err := k.f.Write(j.data)
	if err != nil && k.direct && isDirectRefused(err) {
		// A refused direct write wrote nothing: retry it through the page cache.
		if err = stopDirect(k.f); err == nil {
			k.direct = false
			_, err = k.f.Write(j.data)
		}
	}
	return err
}

// takeAcks returns the acknowledgements produced since the last call.
func (k *sink) takeAcks() []ackMsg {
	k.mu.Lock()
	defer k.mu.Unlock()
	a := k.acks
	k.acks = nil
	return a
}

// close waits until every queued job is done and returns the first error.
func (k *sink) close() error {
	close(k.jobs)
	<-k.done
	return k.err
}

// directMin is the size from which a file's data is written with direct
// I/O; below it the page cache's copy costs little.
const directMin = 8 << 20

// openPart opens the file that receives its data from off: created
// exclusively if nothing was there, truncated if a planned resume is not
// taken, never through a symlink, and for direct I/O when the rest is large
// and the file system allows it.
func openPart(it *item, off int64) (f *os.File, direct bool, err error) {
	flags := os.O_WRONLY | os.O_CREATE | syscall.O_NOFOLLOW
	switch {
	case it.fresh:
		flags |= os.O_EXCL
	case off == 0:
		flags |= os.O_TRUNC
	}
	direct = directFlag != 0 && it.Size-off >= directMin
	if direct {
		f, err = os.OpenFile(it.disk, flags|directFlag, 0o600)
		if isDirectRefused(err) {
			// The file system may have created the file before refusing.
			direct, flags = false, flags&^os.O_EXCL|os.O_TRUNC
		}
	}
	if !direct {
		f, err = os.OpenFile(it.disk, flags, 0o600)
	}
	if err != nil {
		return nil, false, fmt.Errorf("create %s: %w", it.disk, err)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close() // nothing written
		return nil, false, fmt.Errorf("resume %s: %w", it.disk, err)
	}
	return f, direct, nil
}
