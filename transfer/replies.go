package transfer

import (
	"fmt"
	"io"
	"sync/atomic"
)

// plan is the receiver's answer to the manifest, as the sender keeps it.
type plan struct {
	as    map[string]string // top-level name → the name it lands under
	files map[int]planEntry // by entry index: refusals and resume offsets
}

// replies reads everything the receiver says, on its own goroutine, so the
// sender can stream data without waiting for acknowledgements and the
// receiver never blocks writing one.
type replies struct {
	isFile []bool
	plan   chan plan     // gets the plan once
	done   chan struct{} // closed when run returns
	// After done is closed:
	err     error     // why reading stopped; nil after a summary
	acks    []*ackMsg // by entry index
	summary summaryMsg
	// While running:
	confirmed atomic.Int64 // acknowledgements so far, for Progress
}

func newReplies(srcs []source) *replies {
	r := &replies{
		isFile: make([]bool, len(srcs)),
		plan:   make(chan plan, 1),
		done:   make(chan struct{}),
		acks:   make([]*ackMsg, len(srcs)),
	}
	for i, s := range srcs {
		r.isFile[i] = s.Kind == kindFile
	}
	return r
}

// run reads until the summary, an abort or a broken stream. On failure it
// interrupts the stream so the sending goroutine does not stay blocked.
func (r *replies) run(br io.Reader, s *stream) {
	defer close(r.done)
	if r.err = r.read(br); r.err != nil {
		s.interrupt()
	}
}

// stopped reports whether run has returned.
func (r *replies) stopped() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *replies) read(br io.Reader) error {
	p, err := readPlan(br, len(r.isFile))
	if err != nil {
		return err
	}
	r.plan <- p
	for {
		var raw rawMsg
		if err := ReadMsg(br, &raw); err != nil {
			return err
		}
		switch raw.typ() {
		case typeAck:
			var a ackMsg
			if err := raw.decode(&a); err != nil {
				return err
			}
			if err := r.check(a, p); err != nil {
				return err
			}
			r.acks[a.Index] = &a
			r.confirmed.Add(1)
		case typeSummary:
			return raw.decode(&r.summary)
		case typeAbort:
			return raw.decode(nil)
		default:
			return fmt.Errorf("%w: unexpected %q message", ErrProtocol, raw.typ())
		}
	}
}

// check validates an acknowledgement.
func (r *replies) check(a ackMsg, p plan) error {
	switch {
	case a.Index < 0 || a.Index >= len(r.isFile) || !r.isFile[a.Index]:
		return fmt.Errorf("%w: ack for entry %d, which is no file", ErrProtocol, a.Index)
	case p.files[a.Index].Refused != "":
		return fmt.Errorf("%w: ack for refused entry %d", ErrProtocol, a.Index)
	case r.acks[a.Index] != nil:
		return fmt.Errorf("%w: second ack for entry %d", ErrProtocol, a.Index)
	case a.Status != StatusOK && a.Status != StatusMismatch:
		return fmt.Errorf("%w: ack status %q", ErrProtocol, a.Status)
	}
	return nil
}

// readPlan reads the plan messages for a manifest of n entries.
func readPlan(br io.Reader, n int) (plan, error) {
	p := plan{as: map[string]string{}, files: map[int]planEntry{}}
	for {
		var m planMsg
		if err := readMsgOrAbort(br, &m); err != nil {
			return plan{}, err
		}
		for _, t := range m.Tops {
			if _, err := SafeRelPath(t.As); err != nil {
				return plan{}, fmt.Errorf("%w: plan: landing name: %w", ErrProtocol, err)
			}
			p.as[t.Name] = t.As
		}
		for _, f := range m.Files {
			if _, dup := p.files[f.Index]; dup || f.Index < 0 || f.Index >= n {
				return plan{}, fmt.Errorf("%w: plan: bad entry index %d", ErrProtocol, f.Index)
			}
			p.files[f.Index] = f
		}
		if len(p.as) > n {
			return plan{}, fmt.Errorf("%w: plan: more names than entries", ErrProtocol)
		}
		if !m.More {
			return p, nil
		}
	}
}
