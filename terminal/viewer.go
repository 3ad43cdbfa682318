package terminal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// viewer is one [Host.Serve] call's place in the fan-out. The pump and the
// other Host methods only append to its queue (under Host.mu) and wake its
// writer; they never touch its stream.
type viewer struct {
	name string
	wake chan struct{} // capacity 1: the queue has something for the writer

	// Guarded by Host.mu.
	queue  []Frame // frames the writer has yet to take, at most cfg.Queue
	behind bool    // the queue overflowed and was dropped: resync from the ring
	taken  uint64  // the writer has taken all output before this offset
	cols   int     // the size the writer has taken last
	rows   int
}

// Serve runs one viewer over rw until the share ends, ctx is done or the
// viewer goes away. It sends a [Hello] (input is cfg.AllowInput && canType),
// the ring of recent output, then live output and resizes, and finally the
// exit frame. Input frames from the viewer are written to in (nil discards
// them) only when cfg.AllowInput && canType, and are dropped silently
// otherwise; in must be safe for concurrent use if several viewers share it
// (a PTY master is). A write error to in stops further input from this
// viewer but not its output, since it means the shell is going away.
//
// Serve returns nil once it has written the exit frame, when ctx is done,
// or when the viewer closed its side cleanly; it returns an error wrapping
// [ErrProtocol] if the viewer sent anything but input frames, and the
// stream's error if a read or write failed, including a write blocked
// longer than cfg.WriteTimeout. The viewer is in OnViewers's list for the
// duration of the call. Serve does not close rw.
//
// To stop its reading and writing goroutines before it returns, Serve sets
// rw's read and write deadlines in the past when rw has SetReadDeadline and
// SetWriteDeadline (a net.Conn or a *quic.Stream does); rw is of no further
// use then. Otherwise a goroutine blocked on rw ends when rw is closed.
func (h *Host) Serve(ctx context.Context, rw io.ReadWriter, name string, canType bool, in io.Writer) error {
	typing := h.cfg.AllowInput && canType
	v, first := h.join(name, typing)
	defer h.leave(v)

	st := &stream{rw: rw}
	st.rd, _ = rw.(interface{ SetReadDeadline(time.Time) error })
	st.wd, _ = rw.(interface{ SetWriteDeadline(time.Time) error })
	stop := make(chan struct{})
	wrote := make(chan error, 1)
	go func() { wrote <- h.writeViewer(st, v, first, stop) }()
	read := make(chan error, 1)
	go func() { read <- readViewer(rw, typing, in) }()

	var err error
	writing, reading := true, true
	select {
	case err = <-wrote:
		writing = false
	case err = <-read:
		reading = false
	case <-ctx.Done():
	}
	close(stop)
	st.stop()
	if writing && st.wd != nil {
		<-wrote
	}
	if reading && st.rd != nil {
		<-read
	}
	if err != nil {
		return fmt.Errorf("viewer %s: %w", name, err)
	}
	return nil
}

// join registers a viewer and returns it with the first frames it must
// send: Hello, the ring's contents, and the exit frame if the share ended.
func (h *Host) join(name string, typing bool) (*viewer, []Frame) {
	h.mu.Lock()
	v := &viewer{name: name, wake: make(chan struct{}, 1), taken: h.ring.end, cols: h.cols, rows: h.rows}
	hello := Hello{Cols: h.cols, Rows: h.rows, Input: typing, Command: h.cfg.Command, Offset: h.ring.start()}
	first := h.ring.frames([]Frame{hello.Frame()}, 0)
	if h.ended {
		first = append(first, h.exit)
	}
	h.viewers[v] = struct{}{}
	h.mu.Unlock()
	h.notifyViewers()
	return v, first
}

func (h *Host) leave(v *viewer) {
	h.mu.Lock()
	delete(h.viewers, v)
	h.mu.Unlock()
	h.notifyViewers()
}

// enqueue queues f for v without ever blocking; h.mu must be held. A full
// queue is dropped and v marked behind: its writer then resyncs from the
// ring, which holds the same output unless v fell further behind than the
// ring reaches.
func (h *Host) enqueue(v *viewer, f Frame) {
	if v.behind {
		return
	}
	if len(v.queue) < h.cfg.Queue {
		v.queue = append(v.queue, f)
	} else {
		clear(v.queue) // let the dropped output be collected
		v.queue, v.behind = v.queue[:0], true
	}
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// take hands v's writer what it must send next, reusing batch's array.
func (h *Host) take(v *viewer, batch []Frame) []Frame {
	clear(batch)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !v.behind {
		batch, v.queue = v.queue, batch[:0]
		for _, f := range batch {
			switch f.Type {
			case FrameOutput:
				v.taken = f.Offset + uint64(len(f.Data))
			case FrameResize:
				v.cols, v.rows = f.Cols, f.Rows
			}
		}
		return batch
	}
	v.behind = false
	batch = batch[:0]
	if v.cols != h.cols || v.rows != h.rows {
		v.cols, v.rows = h.cols, h.rows
		batch = append(batch, Frame{Type: FrameResize, Cols: h.cols, Rows: h.rows})
	}
	batch = h.ring.frames(batch, v.taken)
	v.taken = h.ring.end
	if h.ended {
		batch = append(batch, h.exit)
	}
	return batch
}

// writeViewer sends first, then whatever the Host queues for v, until it has
// sent the exit frame (nil), stop is closed (nil) or a write fails.
func (h *Host) writeViewer(st *stream, v *viewer, first []Frame, stop <-chan struct{}) error {
	var buf []byte
	batch := first
	for {
		buf = buf[:0]
		for _, f := range batch {
			var err error
			if buf, err = appendFrame(buf, f); err != nil {
				return err // unreachable: the Host builds only valid frames
			}
			if f.Type == FrameExit || len(buf) >= MaxPayload {
				if err := st.write(buf, h.cfg.WriteTimeout); err != nil || f.Type == FrameExit {
					return err
				}
				buf = buf[:0]
			}
		}
		if len(buf) > 0 {
			if err := st.write(buf, h.cfg.WriteTimeout); err != nil {
				return err
			}
		}
		select {
		case <-v.wake:
		case <-stop:
			return nil
		}
		batch = h.take(v, batch)
	}
}

// readViewer reads v's frames until the stream ends, forwarding input to in
// when typing is allowed.
func readViewer(r io.Reader, typing bool, in io.Writer) error {
	fr := NewReader(r)
	for {
		f, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if f.Type != FrameInput {
			return fmt.Errorf("%w: frame type %d from a viewer", ErrProtocol, f.Type)
		}
		if typing && in != nil {
			if _, err := in.Write(f.Data); err != nil {
				in = nil // the shell is going away; its exit frame is on the way
			}
		}
	}
}

// stream is a viewer's stream with its optional deadlines.
type stream struct {
	rw io.ReadWriter
	rd interface{ SetReadDeadline(time.Time) error }
	wd interface{ SetWriteDeadline(time.Time) error }

	mu      sync.Mutex // guards stopped; held while setting a write deadline
	stopped bool
}

// write writes b, giving up after timeout when the stream has deadlines.
func (s *stream) write(b []byte, timeout time.Duration) error {
	if s.wd != nil {
		s.mu.Lock()
		// Under mu, so that stop's deadline in the past cannot be
		// overwritten by this one and leave the write blocked.
		if s.stopped {
			s.mu.Unlock()
			return nil
		}
		_ = s.wd.SetWriteDeadline(time.Now().Add(timeout)) // if it fails, so does the write
		s.mu.Unlock()
	}
	_, err := s.rw.Write(b)
	return err
}

// stop makes blocked and later reads and writes of the stream fail at once.
func (s *stream) stop() {
	past := time.Unix(1, 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.wd != nil {
		_ = s.wd.SetWriteDeadline(past) // a stream that refuses is already broken
	}
	if s.rd != nil {
		_ = s.rd.SetReadDeadline(past) // likewise
	}
}
