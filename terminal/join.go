package terminal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// JoinOptions configures [Join].
type JoinOptions struct {
	Out       io.Writer            // where output goes; nil discards it
	In        io.Reader            // keystrokes; nil to only watch
	DetachKey byte                 // typing this byte detaches (e.g. 0x1d, Ctrl-]); 0 for none
	OnHello   func(Hello)          // called once, before any output
	OnResize  func(cols, rows int) // called in order with the output
}

// ExitStatus is how a [Join] ended without error.
type ExitStatus struct {
	Code     int    // the shared command's exit code, from the host
	Reason   string // the host's words on why the share ended
	Detached bool   // the user typed the detach key; Code and Reason are zero
}

// Join views the share on rw: it reads the [Hello] (anything else first is
// an error wrapping [ErrProtocol]), writes output to o.Out in order and
// reports resizes, while sending what it reads from o.In as input frames as
// soon as it reads it (keystrokes read before the hello wait for it).
// Keystrokes are read even when Hello says this viewer may not type, so
// that the detach key works, but then none is sent.
//
// Join returns the host's code and reason when the exit frame arrives;
// Detached at once when o.DetachKey is read (the bytes before it in the
// same read are still sent, once the hello has come); ctx.Err() when ctx is
// done; and otherwise the error that broke the stream (io.ErrUnexpectedEOF
// if it ended before the exit frame). Join does not close rw.
//
// Nothing is written to o.Out or rw after Join returns. As in [Host.Serve],
// Join sets rw's deadlines in the past to stop its reader when rw has
// deadline methods. A goroutine blocked reading o.In cannot be stopped: it
// stays until that Read returns, then ends without sending what it read, so
// those bytes are lost to the caller (who may pass a pipe it can close).
// Callbacks run on a goroutine of Join's.
func Join(ctx context.Context, rw io.ReadWriter, o JoinOptions) (ExitStatus, error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	j := &joiner{rw: rw, o: o, hello: make(chan struct{}), quit: make(chan struct{}),
		detached: make(chan struct{}), inErr: make(chan error, 1)}
	if o.In != nil {
		go j.input()
	}
	done := make(chan joinResult, 1)
	go func() {
		st, err := j.read()
		done <- joinResult{st, err}
	}()

	var r joinResult
	reading := true
	select {
	case r = <-done:
		reading = false
	case <-j.detached:
		r.st.Detached = true
	case r.err = <-j.inErr:
	case <-ctx.Done():
		r.err = ctx.Err()
	}
	rd, _ := rw.(interface{ SetReadDeadline(time.Time) error })
	if wd, ok := rw.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = wd.SetWriteDeadline(time.Unix(1, 0)) // unblocks a pending input write; a refusal means a broken stream
	}
	if rd != nil {
		_ = rd.SetReadDeadline(time.Unix(1, 0)) // likewise for the frame reader
	}
	// Under both locks, so that a write in progress ends first and none
	// starts after we return.
	j.inMu.Lock()
	j.outMu.Lock()
	j.closed.Store(true)
	j.outMu.Unlock()
	j.inMu.Unlock()
	close(j.quit)
	if reading && rd != nil {
		<-done
	}
	return r.st, r.err
}

type joinResult struct {
	st  ExitStatus
	err error
}

// joiner is the state of one Join call shared with its goroutines.
type joiner struct {
	rw       io.ReadWriter
	o        JoinOptions
	closed   atomic.Bool   // Join has returned or is returning
	quit     chan struct{} // closed when Join returns
	hello    chan struct{} // closed once the hello has set send
	send     bool          // the hello says this viewer may type
	detached chan struct{} // closed by the input goroutine on the detach key
	inErr    chan error    // a failed input write

	outMu sync.Mutex // held while writing to o.Out
	inMu  sync.Mutex // held while writing to rw
	inBuf []byte     // guarded by inMu
}

// read reads the share's frames until the exit frame or an error.
func (j *joiner) read() (ExitStatus, error) {
	fr := NewReader(j.rw)
	f, err := fr.Next()
	if err != nil {
		return ExitStatus{}, fmt.Errorf("read hello: %w", err)
	} else if f.Type != FrameHello {
		return ExitStatus{}, fmt.Errorf("%w: first frame is type %d, not a hello", ErrProtocol, f.Type)
	}
	hello, _ := f.Hello() // Next has checked it
	if j.o.OnHello != nil {
		j.o.OnHello(hello)
	}
	j.send = hello.Input
	close(j.hello)
	next := hello.Offset // the first output offset not yet shown
	for {
		f, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return ExitStatus{}, fmt.Errorf("share ended without an exit frame: %w", io.ErrUnexpectedEOF)
		} else if err != nil {
			return ExitStatus{}, fmt.Errorf("read share: %w", err)
		}
		switch f.Type {
		case FrameOutput:
			data := f.Data
			if f.Offset < next { // a host never repeats output, but a repeat must not show twice
				data = data[min(next-f.Offset, uint64(len(data))):]
			}
			next = max(next, f.Offset+uint64(len(f.Data)))
			if err := j.output(data); err != nil {
				return ExitStatus{}, err
			}
		case FrameResize:
			if j.o.OnResize != nil && !j.closed.Load() {
				j.o.OnResize(f.Cols, f.Rows)
			}
		case FrameExit:
			return ExitStatus{Code: f.Code, Reason: f.Reason}, nil
		default:
			return ExitStatus{}, fmt.Errorf("%w: frame type %d from the host", ErrProtocol, f.Type)
		}
	}
}

// output writes data to o.Out unless Join is returning.
func (j *joiner) output(data []byte) error {
	j.outMu.Lock()
	defer j.outMu.Unlock()
	if len(data) == 0 || j.closed.Load() {
		return nil
	}
	if _, err := j.o.Out.Write(data); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// input reads keystrokes until the detach key, the end of o.In or Join's
// return, sending them if the hello allowed it. Keystrokes that come before
// the hello wait for it, unless the detach key follows them.
func (j *joiner) input() {
	buf := make([]byte, 4<<10)
	for {
		n, err := j.o.In.Read(buf)
		data, detach := buf[:n], false
		if j.o.DetachKey != 0 {
			if i := bytes.IndexByte(data, j.o.DetachKey); i >= 0 {
				data, detach = data[:i], true
			}
		}
		if len(data) > 0 && j.mayType(!detach) {
			if werr := j.sendInput(data); werr != nil {
				j.inErr <- werr
				return
			}
		}
		if detach {
			close(j.detached)
			return
		}
		if err != nil || j.closed.Load() {
			return // without more keystrokes the user can still watch
		}
	}
}

// mayType reports whether the hello allows input, waiting for the hello
// (or Join's return) if wait is set.
func (j *joiner) mayType(wait bool) bool {
	if wait {
		select {
		case <-j.hello:
		case <-j.quit:
		}
	}
	select {
	case <-j.hello:
		return j.send
	default:
		return false
	}
}

// sendInput writes one input frame unless Join is returning.
func (j *joiner) sendInput(data []byte) error {
	j.inMu.Lock()
	defer j.inMu.Unlock()
	if j.closed.Load() {
		return nil
	}
	var err error
	if j.inBuf, err = appendFrame(j.inBuf[:0], Frame{Type: FrameInput, Data: data}); err != nil {
		return err // unreachable: data is at most 4 KiB
	}
	if _, err := j.rw.Write(j.inBuf); err != nil {
		return fmt.Errorf("send input: %w", err)
	}
	return nil
}
