package peer

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"mesh/protocol"
)

// RelayAddr is the address of the peer of session RelayAddr on the server's
// relay: QUIC sees one remote address per relayed session.
type RelayAddr string

// Network is "mesh-relay".
func (RelayAddr) Network() string { return "mesh-relay" }

func (a RelayAddr) String() string { return "relay/" + string(a) }

// relayBatch is how many bytes of datagrams one relay frame may gather;
// the server's limit on a client's frame is 64 KiB.
const relayBatch = 60 << 10

// relayQueue is how many full frames may wait for the WebSocket (about
// 1 MiB): enough to ride over a slow write, little enough that QUIC's
// congestion control sees the loss when the relay is the bottleneck.
const relayQueue = 16

// RelayConn is a net.PacketConn whose datagrams travel inside relay frames
// ([protocol.RelayFrame]) over the agent's WebSocket to the server, which
// hands them to the session's other agent. QUIC runs over it unchanged:
// the server only ever sees QUIC ciphertext. Datagrams written while the
// previous frame is being sent gather into the next frame. Like UDP it
// drops what it cannot carry, but makes a writer wait while the
// WebSocket is behind. It is safe for concurrent use.
type RelayConn struct {
	send func([]byte) bool // writes one frame; false if it could not
	in   chan relayed

	mu        sync.Mutex           // guards pending, order, ready, deadline, closed
	pending   map[RelayAddr][]byte // the frame being gathered, per session
	order     []RelayAddr          // sessions with a frame being gathered
	ready     [][]byte             // full frames waiting to be sent
	drained   *sync.Cond           // on mu: the flusher took the ready frames
	deadline  time.Time
	dlChanged chan struct{} // closed when deadline changes
	closed    bool
	kick      chan struct{}
	done      chan struct{}
}

type relayed struct {
	from RelayAddr
	b    *[]byte // from packets
	n    int
}

// frames recycles the buffers relay frames are gathered in; send does
// not keep them.
var frames = sync.Pool{New: func() any { b := make([]byte, 0, relayBatch+2+protocol.MaxRelayPacket); return &b }}

// packets recycles the buffers of received datagrams.
var packets = sync.Pool{New: func() any { b := make([]byte, protocol.MaxRelayPacket); return &b }}

// NewRelayConn returns a relay conn that writes frames with send, from one
// goroutine at a time. Frames from the server go to [RelayConn.Deliver].
func NewRelayConn(send func(frame []byte) bool) *RelayConn {
	c := &RelayConn{send: send, in: make(chan relayed, 4096), pending: map[RelayAddr][]byte{},
		kick: make(chan struct{}, 1), done: make(chan struct{}), dlChanged: make(chan struct{})}
	c.drained = sync.NewCond(&c.mu)
	go c.flush()
	return c
}

// Deliver takes one relay frame from the server; a malformed one, or one
// that finds the queue full, is dropped, as a network would.
func (c *RelayConn) Deliver(frame []byte) {
	f, err := protocol.DecodeRelayFrame(frame)
	if err != nil {
		return
	}
	for _, p := range f.Packets {
		b := packets.Get().(*[]byte)
		n := copy(*b, p)
		select {
		case c.in <- relayed{from: RelayAddr(f.SessionID), b: b, n: n}:
		default:
			packets.Put(b)
			return
		}
	}
}

// ReadFrom returns the next datagram relayed to this agent. A deadline
// set while it waits applies at once: quic-go stops its read loop so.
func (c *RelayConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		dl, changed := c.deadline, c.dlChanged
		c.mu.Unlock()
		var timeout <-chan time.Time
		var t *time.Timer
		if !dl.IsZero() {
			if time.Until(dl) <= 0 {
				return 0, nil, os.ErrDeadlineExceeded
			}
			t = time.NewTimer(time.Until(dl))
			timeout = t.C
		}
		select {
		case r := <-c.in:
			stop(t)
			n := copy(b, (*r.b)[:r.n])
			packets.Put(r.b)
			return n, r.from, nil
		case <-c.done:
			stop(t)
			return 0, nil, net.ErrClosed
		case <-timeout:
			return 0, nil, os.ErrDeadlineExceeded
		case <-changed: // look at the new deadline
			stop(t)
		}
	}
}

// stop stops t, if there is one.
func stop(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// WriteTo queues one datagram for the relayed session addr names.
func (c *RelayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	to, ok := addr.(RelayAddr)
	if !ok {
		return 0, errors.New("relay conn: not a relay address")
	}
	if len(p) == 0 || len(p) > protocol.MaxRelayPacket {
		return len(p), nil // no QUIC packet is either; dropped
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	buf := c.pending[to]
	if len(buf)+2+len(p) > relayBatch { // full: it waits its turn, a new frame begins
		// The WebSocket is behind: wait, as a full UDP socket buffer makes
		// a sender wait, rather than drop and have QUIC halve its window.
		for len(c.ready) >= relayQueue && !c.closed {
			c.drained.Wait()
		}
		if c.closed {
			c.mu.Unlock()
			return 0, net.ErrClosed
		}
		buf = c.pending[to]
		if len(buf)+2+len(p) > relayBatch {
			c.ready, buf = append(c.ready, buf), nil
		}
	}
	if len(buf) == 0 {
		buf = protocol.AppendRelayHeader((*frames.Get().(*[]byte))[:0], string(to))
		c.order = append(c.order, to)
	}
	c.pending[to] = protocol.AppendRelayPacket(buf, p)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return len(p), nil
}

// flush sends the gathered frames whenever there are some.
func (c *RelayConn) flush() {
	for {
		select {
		case <-c.done:
			return
		case <-c.kick:
		}
		c.mu.Lock()
		batch := c.ready
		for _, to := range c.order {
			if b := c.pending[to]; len(b) > 0 {
				batch = append(batch, b)
			}
		}
		c.ready, c.order = nil, nil
		clear(c.pending)
		c.drained.Broadcast()
		c.mu.Unlock()
		for _, f := range batch {
			c.send(f) // a frame that cannot go is lost, as datagrams would be
			frames.Put(&f)
		}
	}
}

// Close stops the conn; ReadFrom and WriteTo then fail.
func (c *RelayConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.done)
		c.drained.Broadcast()
	}
	return nil
}

// LocalAddr is a placeholder: the relay has no address of its own.
func (c *RelayConn) LocalAddr() net.Addr { return RelayAddr("local") }

// SetDeadline sets the read deadline; writes never block.
func (c *RelayConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline bounds ReadFrom, waiting ones included.
func (c *RelayConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	close(c.dlChanged)
	c.dlChanged = make(chan struct{})
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline does nothing: writes never block.
func (c *RelayConn) SetWriteDeadline(time.Time) error { return nil }

// SetReadBuffer and SetWriteBuffer tell quic-go there is no socket buffer
// to size (it warns otherwise).
func (c *RelayConn) SetReadBuffer(int) error { return nil }

// SetWriteBuffer: see SetReadBuffer.
func (c *RelayConn) SetWriteBuffer(int) error { return nil }
