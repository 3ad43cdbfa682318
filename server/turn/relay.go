package turn

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// relays hands out relay sockets from the port range and keeps each one
// until it closes, so the server can find the socket of an allocation (to
// charge its user and to end it) and tell its own relay ports from the
// other ports of the relay address.
type relays struct {
	public   netip.Addr // the address clients are told
	bindIP   string     // what the sockets bind to
	min, max uint16
	srv      *Server

	// slots holds the open relay socket of each port of the range, read
	// without a lock on every relayed datagram.
	slots []atomic.Pointer[relayConn]
}

func (r *relays) Validate() error { return nil }

// AllocatePacketConn opens a relay socket on a free port of the range.
func (r *relays) AllocatePacketConn(network string, requested int) (net.PacketConn, net.Addr, error) {
	if network != "udp4" && network != "udp" {
		return nil, nil, fmt.Errorf("relay over %s: only UDP relays are offered", network)
	}
	try := func(port int) (net.PacketConn, net.Addr, error) {
		pc, err := net.ListenPacket("udp4", net.JoinHostPort(r.bindIP, fmt.Sprint(port)))
		if err != nil {
			return nil, nil, err
		}
		rc := &relayConn{PacketConn: pc, r: r, port: uint16(port), local: make(chan localDatagram, 512), readDone: make(chan struct{})}
		go rc.readKernel()
		r.slots[port-int(r.min)].Store(rc)
		return rc, &net.UDPAddr{IP: r.public.AsSlice(), Port: port}, nil
	}
	if requested != 0 { // EVEN-PORT/RESERVATION-TOKEN: pion picked it from the range
		if requested < int(r.min) || requested > int(r.max) {
			return nil, nil, fmt.Errorf("relay port %d is outside %d-%d", requested, r.min, r.max)
		}
		return try(requested)
	}
	span := int(r.max-r.min) + 1
	start := rand.IntN(span)
	var last error
	for i := range min(span, 64) {
		pc, addr, err := try(int(r.min) + (start+i)%span)
		if err == nil {
			return pc, addr, nil
		}
		last = err
	}
	r.srv.log.Warn("turn relay ports exhausted", "ports", fmt.Sprintf("%d-%d", r.min, r.max), "err", last)
	return nil, nil, fmt.Errorf("no free relay port in %d-%d: %w", r.min, r.max, last)
}

func (r *relays) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errors.New("TCP relays (RFC 6062) are not offered")
}

// byAddr finds the relay socket a relayed address names; nil if none.
func (r *relays) byAddr(a net.Addr) *relayConn {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return nil
	}
	return r.byPortNum(uint16(ua.Port))
}

// byPortNum is the open relay socket on port, nil if none.
func (r *relays) byPortNum(port uint16) *relayConn {
	if port < r.min || port > r.max {
		return nil
	}
	return r.slots[port-r.min].Load()
}

func (r *relays) forget(rc *relayConn) {
	r.slots[rc.port-r.min].CompareAndSwap(rc, nil)
}

// relayConn is one allocation's relay socket. It charges every datagram to
// its user's bandwidth, and sends to the relay address itself only where
// one of the server's relay sockets listens: a peer permission for the
// server's own address opens its relay ports, not its other services.
type relayConn struct {
	net.PacketConn
	r    *relays
	port uint16
	user atomic.Pointer[userState] // set once the allocation is known
	once sync.Once

	// Datagrams from the server's other relay sockets are handed over in
	// process: a round through the kernel would cost a send and a receive
	// each, and behind a router without hairpin NAT, sent to the public
	// address, it would never arrive. One goroutine reads the kernel
	// socket into the same queue, so that ReadFrom waits on one thing.
	local    chan localDatagram
	readErr  error // why the kernel reads ended; set before readDone closes
	readDone chan struct{}
}

// localDatagram is one datagram from another relay socket of this server.
type localDatagram struct {
	b    *[]byte // from datagrams
	n    int
	from *net.UDPAddr
}

// datagrams recycles the buffers of in-process handovers.
var datagrams = sync.Pool{New: func() any { b := make([]byte, 1500); return &b }}

// userState is what the relay keeps per user across their allocations.
type userState struct {
	name    string
	limit   *rate.Limiter // nil: no cap
	dropped atomic.Int64  // datagrams dropped over the cap since the last log line
	logged  atomic.Int64  // unix nanoseconds of that line
}

// charge reports whether n more bytes fit in the user's bandwidth.
func (rc *relayConn) charge(n int) bool {
	u := rc.user.Load()
	if u == nil || u.limit == nil || u.limit.AllowN(time.Now(), n) {
		rc.r.srv.relayed.Add(int64(n))
		return true
	}
	u.dropped.Add(1)
	now := time.Now().UnixNano()
	if last := u.logged.Load(); now-last > int64(10*time.Second) && u.logged.CompareAndSwap(last, now) {
		rc.r.srv.log.Warn("turn bandwidth cap reached: dropping relayed packets", "user", u.name,
			"mbps", rc.r.srv.cfg.UserMbps, "dropped", u.dropped.Swap(0), "setting", "rtc.turn_user_mbps")
	}
	return false
}

func (rc *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		select {
		case d := <-rc.local:
			n := copy(p, (*d.b)[:d.n])
			datagrams.Put(d.b)
			if rc.charge(n) {
				return n, d.from, nil
			}
		case <-rc.readDone:
			return 0, nil, rc.readErr
		}
	}
}

// readKernel moves what the socket receives to the queue until it fails.
func (rc *relayConn) readKernel() {
	for {
		b := datagrams.Get().(*[]byte)
		n, addr, err := rc.PacketConn.ReadFrom(*b)
		if err != nil {
			datagrams.Put(b)
			rc.readErr = err
			close(rc.readDone)
			return
		}
		ua, _ := addr.(*net.UDPAddr) // a UDP socket's
		select {
		case rc.local <- localDatagram{b: b, n: n, from: ua}:
		default: // the reader is behind: dropped, as a full socket buffer would
			datagrams.Put(b)
		}
	}
}

// handOver queues p for rc's reader as if it came from the relay at
// from. A full queue drops p.
func (rc *relayConn) handOver(p []byte, from *net.UDPAddr) {
	b := datagrams.Get().(*[]byte)
	if len(p) > len(*b) {
		datagrams.Put(b)
		return
	}
	select {
	case rc.local <- localDatagram{b: b, n: copy(*b, p), from: from}:
	default:
		datagrams.Put(b)
	}
}

func (rc *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("relay to %v: not a UDP address", addr)
	}
	ap := ua.AddrPort()
	if ap.Addr().Unmap() == rc.r.public {
		dst := rc.r.byPortNum(ap.Port())
		if dst != nil && rc.charge(len(p)) {
			dst.handOver(p, &net.UDPAddr{IP: rc.r.public.AsSlice(), Port: int(rc.port)})
		}
		return len(p), nil // to a port that is not a relay: dropped, as the network might
	}
	if !rc.charge(len(p)) {
		return len(p), nil
	}
	return rc.PacketConn.WriteTo(p, addr)
}

func (rc *relayConn) Close() error {
	rc.once.Do(func() { rc.r.forget(rc) })
	return rc.PacketConn.Close()
}
