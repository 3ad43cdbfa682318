package terminal

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

const (
	defaultRingSize     = 256 << 10
	defaultQueue        = 256
	defaultWriteTimeout = 10 * time.Second

	readSize    = 8 << 10  // one read of the PTY, which seldom returns more than 4 KiB
	readBuffers = 8        // reads in flight between the PTY reader and the pump
	coalesceMax = 32 << 10 // the most output one frame carries
)

// HostConfig configures a [Host]. The zero value of each field is usable.
type HostConfig struct {
	Cols, Rows int    // the PTY's size when the share starts
	Command    string // what runs, shown to viewers
	AllowInput bool   // viewers given canType by [Host.Serve] may type
	RingSize   int    // bytes of recent output kept for late joiners; 0 means 256 KiB
	Queue      int    // frames queued per viewer before it counts as behind; 0 means 256

	// WriteTimeout is how long one write to a viewer may block before that
	// viewer is dropped, when its stream has SetWriteDeadline; 0 means 10 s.
	WriteTimeout time.Duration

	// OnOutput gets each coalesced chunk of output with its offset, on the
	// goroutine running [Host.Pump], once it is queued for the viewers. It must
	// return quickly and must neither modify nor retain data.
	OnOutput func(offset uint64, data []byte)

	// OnViewers gets the names of the viewers watching, sorted (a name twice
	// for two sessions), after every join and leave. Calls never overlap and
	// the last one always reflects the current set. It must not call
	// [Host.Serve].
	OnViewers func(names []string)
}

// Host is the sharing side of one terminal share: [Host.Pump] feeds it the
// PTY's output and [Host.Serve] runs one viewer's stream. Its methods are
// safe for concurrent use. The pump never waits for a viewer: a viewer that
// cannot keep up skips ahead through the ring of recent output instead.
type Host struct {
	cfg      HostConfig
	notifyMu sync.Mutex // serialises OnViewers calls

	mu      sync.Mutex // guards everything below and every viewer's queue state
	ring    ring
	cols    int
	rows    int
	viewers map[*viewer]struct{}
	ended   bool  // Exit was called
	exit    Frame // the exit frame, once ended
}

// NewHost returns a Host configured by cfg. Sizes are clamped to 0–65535.
func NewHost(cfg HostConfig) *Host {
	if cfg.RingSize <= 0 {
		cfg.RingSize = defaultRingSize
	}
	if cfg.Queue <= 0 {
		cfg.Queue = defaultQueue
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	return &Host{
		cfg:     cfg,
		ring:    ring{buf: make([]byte, cfg.RingSize)},
		cols:    clampU16(cfg.Cols),
		rows:    clampU16(cfg.Rows),
		viewers: make(map[*viewer]struct{}),
	}
}

// Pump copies r, the PTY master, to local (the sharer's own terminal; nil
// for none) and to every viewer, until r ends. End of file and EIO (what
// Linux returns on the master once the child has exited) are a normal end
// and give nil; any other read error is returned. If a write to local
// fails, Pump stops writing there, carries on for the viewers and returns
// that error once r ends. Pump must run once per Host; call [Host.Exit]
// after it returns, so that viewers get all output before the exit frame.
//
// Output reaches viewers as soon as it is read: what the PTY has handed
// out while the previous chunk was being sent goes out together, up to
// 32 KiB a frame, but nothing waits for more to come.
func (h *Host) Pump(r io.Reader, local io.Writer) error {
	if rc := rawReader(r); rc != nil {
		return h.pumpRaw(rc, local)
	}
	full := make(chan []byte, readBuffers)
	free := make(chan []byte, readBuffers)
	for range readBuffers {
		free <- make([]byte, readSize)
	}
	var readErr error // written before full is closed
	go func() {
		defer close(full)
		for buf := range free {
			n, err := r.Read(buf)
			if n > 0 {
				full <- buf[:n]
			} else {
				free <- buf
			}
			if err != nil {
				readErr = err
				return
			}
		}
	}()

	var localErr error
	parts := make([][]byte, 0, coalesceMax/readSize+1)
	for chunk := range full {
		parts = append(parts[:0], chunk)
		total := len(chunk)
	gather:
		for total+readSize <= coalesceMax {
			select {
			case c, ok := <-full:
				if !ok {
					break gather
				}
				parts, total = append(parts, c), total+len(c)
			default:
				break gather
			}
		}
		data := make([]byte, 0, total) // shared by every viewer's queue, so never reused
		for _, p := range parts {
			data = append(data, p...)
			free <- p[:cap(p)]
		}
		if local != nil && localErr == nil {
			if _, err := local.Write(data); err != nil {
				localErr = err
			}
		}
		h.output(data)
	}

	switch {
	case localErr != nil:
		return fmt.Errorf("write local terminal: %w", localErr)
	case readErr == nil, errors.Is(readErr, io.EOF), errors.Is(readErr, syscall.EIO):
		return nil
	default:
		return fmt.Errorf("read pty: %w", readErr)
	}
}

// output appends data to the ring and queues it to every viewer.
func (h *Host) output(data []byte) {
	h.mu.Lock()
	offset := h.ring.end
	h.ring.write(data)
	if !h.ended {
		f := Frame{Type: FrameOutput, Offset: offset, Data: data}
		for v := range h.viewers {
			h.enqueue(v, f)
		}
	}
	h.mu.Unlock()
	if h.cfg.OnOutput != nil {
		h.cfg.OnOutput(offset, data)
	}
}

// Resize records the PTY's new size, sent to every viewer and in later
// Hellos. Sizes are clamped to 0–65535; the same size again is ignored.
func (h *Host) Resize(cols, rows int) {
	cols, rows = clampU16(cols), clampU16(rows)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended || cols == h.cols && rows == h.rows {
		return
	}
	h.cols, h.rows = cols, rows
	for v := range h.viewers {
		h.enqueue(v, Frame{Type: FrameResize, Cols: cols, Rows: rows})
	}
}

// Exit ends the share: every viewer gets an exit frame with code and reason
// after the output it has yet to receive, and so does every later
// [Host.Serve]. Output pumped afterwards is kept in the ring and passed to
// OnOutput but reaches no viewer. Only the first call counts. The code is
// clamped to an int32; the reason is made valid UTF-8 and cut to fit a frame.
func (h *Host) Exit(code int, reason string) {
	code = max(math.MinInt32, min(code, math.MaxInt32))
	reason = strings.ToValidUTF8(reason, "\uFFFD")
	for len(reason) > MaxPayload-4 {
		_, n := utf8.DecodeLastRuneInString(reason)
		reason = reason[:len(reason)-n]
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended {
		return
	}
	h.ended = true
	h.exit = Frame{Type: FrameExit, Code: code, Reason: reason}
	for v := range h.viewers {
		h.enqueue(v, h.exit)
	}
}

// Recent returns a copy of the output the ring holds and the offset of
// its first byte: the screen a watcher who arrives now should be shown.
func (h *Host) Recent() (uint64, []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	start := h.ring.start()
	var data []byte
	for _, f := range h.ring.frames(nil, start) {
		data = append(data, f.Data...)
	}
	return start, data
}

// Offset returns how many bytes of output the share has had so far.
func (h *Host) Offset() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ring.end
}

// notifyViewers calls OnViewers with the current viewers.
func (h *Host) notifyViewers() {
	if h.cfg.OnViewers == nil {
		return
	}
	h.notifyMu.Lock()
	defer h.notifyMu.Unlock()
	h.mu.Lock()
	names := make([]string, 0, len(h.viewers))
	for v := range h.viewers {
		names = append(names, v.name)
	}
	h.mu.Unlock()
	slices.Sort(names)
	h.cfg.OnViewers(names)
}

func clampU16(n int) int { return max(0, min(n, math.MaxUint16)) }

// ring keeps the last len(buf) bytes of output.
type ring struct {
	buf []byte
	end uint64 // bytes ever written; the ring holds [start(), end)
}

func (r *ring) start() uint64 {
	return r.end - min(r.end, uint64(len(r.buf)))
}

func (r *ring) write(p []byte) {
	r.end += uint64(len(p))
	if len(p) > len(r.buf) {
		p = p[len(p)-len(r.buf):]
	}
	at := int((r.end - uint64(len(p))) % uint64(len(r.buf)))
	n := copy(r.buf[at:], p)
	copy(r.buf, p[n:])
}

// frames appends to dst output frames of at most coalesceMax bytes holding
// what the ring has from offset from (or from its start, if that is later).
func (r *ring) frames(dst []Frame, from uint64) []Frame {
	from = max(from, r.start())
	for from < r.end {
		n := int(min(r.end-from, coalesceMax))
		data := make([]byte, n)
		at := int(from % uint64(len(r.buf)))
		if c := copy(data, r.buf[at:]); c < n {
			copy(data[c:], r.buf)
		}
		dst = append(dst, Frame{Type: FrameOutput, Offset: from, Data: data})
		from += uint64(n)
	}
	return dst
}
