package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// stream wraps the caller's stream: it remembers whether the stream itself
// failed (then no abort message is worth sending), can interrupt blocked
// I/O through a deadline, and while stall is set gives every piece of a
// write that long to get through.
type stream struct {
	rw     io.ReadWriter
	broken atomic.Bool   // a Read or Write failed
	stall  time.Duration // > 0: writes are watched; set and read by the writing goroutine only

	mu          sync.Mutex // guards interrupted; orders write deadlines after an interrupt
	interrupted bool
}

func (s *stream) Read(p []byte) (int, error) {
	n, err := s.rw.Read(p)
	if err != nil {
		s.broken.Store(true)
	}
	return n, err
}

// stallPiece is how much of a watched write must get through within the
// stall timeout: small enough that a slow link (13 KB/s for 5 s) moves it,
// large enough that the deadline costs nothing next to the bytes.
const stallPiece = 64 << 10

func (s *stream) Write(p []byte) (int, error) {
	if s.stall <= 0 {
		n, err := s.rw.Write(p)
		if err != nil {
			s.broken.Store(true)
		}
		return n, err
	}
	var done int
	for done < len(p) {
		s.writeDeadline(time.Now().Add(s.stall))
		n, err := s.rw.Write(p[done:min(len(p), done+stallPiece)])
		done += n
		if err != nil {
			s.broken.Store(true)
			if isTimeout(err) && !s.wasInterrupted() {
				err = fmt.Errorf("%w: no data got through for %s", ErrStalled, s.stall)
			}
			return done, err
		}
	}
	return done, nil
}

// watchWrites makes every write from now on fail with [ErrStalled] when
// a piece of it does not get through within d, if the stream has write
// deadlines; d <= 0 stops watching.
func (s *stream) watchWrites(d time.Duration) {
	if _, ok := s.rw.(interface{ SetWriteDeadline(time.Time) error }); !ok {
		return
	}
	if s.stall > 0 && d <= 0 {
		s.writeDeadline(time.Time{})
	}
	s.stall = d
}

// writeDeadline sets the write deadline unless the stream was interrupted,
// whose deadline in the past must stay.
func (s *stream) writeDeadline(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.rw.(interface{ SetWriteDeadline(time.Time) error }); ok && !s.interrupted {
		_ = d.SetWriteDeadline(t) // a stream that cannot take one fails its next write anyway
	}
}

func (s *stream) wasInterrupted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.interrupted
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// interrupt makes blocked and future I/O on the stream fail at once, if the
// stream has deadlines (net.Conn and *quic.Stream do). It reports whether it
// could.
func (s *stream) interrupt() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interrupted = true
	past := time.Unix(1, 0)
	switch d := s.rw.(type) {
	case interface{ SetDeadline(time.Time) error }:
		_ = d.SetDeadline(past) // best effort: a closed stream fails anyway
		return true
	case interface {
		SetReadDeadline(time.Time) error
		SetWriteDeadline(time.Time) error
	}:
		_ = d.SetReadDeadline(past) // as above
		_ = d.SetWriteDeadline(past)
		return true
	}
	return false
}

// watch interrupts the stream when ctx is done; call the returned stop when
// the transfer ends.
func (s *stream) watch(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() { s.interrupt() })
}

// peerError is an abort message received from the other side.
type peerError struct{ msg abortMsg }

func (e *peerError) Error() string {
	return fmt.Sprintf("peer aborted the transfer (%s): %s", e.msg.Code, e.msg.Reason)
}

func (e *peerError) Unwrap() error {
	switch e.msg.Code {
	case codeNoSpace:
		return ErrNoSpace
	case codeMismatch:
		return ErrMismatch
	case codeProtocol:
		return ErrProtocol
	case codeUnsafe:
		return ErrUnsafeName
	}
	return nil
}

// abortFor is the abort message telling the peer about a local failure.
func abortFor(err error) abortMsg {
	code := codeError
	switch {
	case errors.Is(err, ErrNoSpace):
		code = codeNoSpace
	case errors.Is(err, ErrMismatch):
		code = codeMismatch
	case errors.Is(err, ErrProtocol):
		code = codeProtocol
	case errors.Is(err, ErrUnsafeName):
		code = codeUnsafe
	}
	reason := err.Error()
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	return abortMsg{Type: typeAbort, Code: code, Reason: reason}
}

// tellPeer sends the peer an abort message about err, a local failure, if the
// stream still works. A peer's own abort is never answered.
func tellPeer(s *stream, w interface {
	io.Writer
	Flush() error
}, err error) {
	var pe *peerError
	if errors.As(err, &pe) || s.broken.Load() {
		return
	}
	if WriteMsg(w, abortFor(err)) == nil {
		_ = w.Flush() // best effort: the peer may be gone already
	}
}

// sideError is the error a side returns: err wrapped with the side's name,
// or [ErrCanceled] if ctx is done.
func sideError(ctx context.Context, side string, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w: %w", side, ErrCanceled, ctx.Err())
	}
	return fmt.Errorf("%s: %w", side, err)
}

// readMsgOrAbort reads a control message of v's type; an abort message
// instead becomes a [peerError].
func readMsgOrAbort(r io.Reader, v any) error {
	var raw rawMsg
	if err := ReadMsg(r, &raw); err != nil {
		return err
	}
	return raw.decode(v)
}

// rawMsg is a control message whose type is known but whose body is not yet
// decoded.
type rawMsg []byte

func (m *rawMsg) UnmarshalJSON(b []byte) error {
	*m = append((*m)[:0], b...)
	return nil
}

func (m rawMsg) typ() string {
	t, _ := msgType(m) // ReadMsg checked it
	return t
}

// decode decodes m into v, or returns the [peerError] m carries.
func (m rawMsg) decode(v any) error {
	if m.typ() == typeAbort {
		var a abortMsg
		if err := decodeMsg(m, &a); err != nil {
			return err
		}
		return &peerError{a}
	}
	return decodeMsg(m, v)
}
