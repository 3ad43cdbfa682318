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

	mu     sync.Mutex            // guards byPort
	byPort map[uint16]*relayConn // open relay sockets
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
		rc := &relayConn{PacketConn: pc, r: r, port: uint16(port)}
		r.mu.Lock()
		r.byPort[rc.port] = rc
		r.mu.Unlock()
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
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byPort[uint16(ua.Port)]
}

// own reports whether ap is one of the open relay sockets.
func (r *relays) own(ap netip.AddrPort) bool {
	if ap.Addr().Unmap() != r.public {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byPort[ap.Port()] != nil
}

func (r *relays) forget(rc *relayConn) {
	r.mu.Lock()
	if r.byPort[rc.port] == rc {
		delete(r.byPort, rc.port)
	}
	r.mu.Unlock()
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
}

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
		n, addr, err := rc.PacketConn.ReadFrom(p)
		if err != nil || rc.charge(n) {
			return n, addr, err
		}
	}
}

func (rc *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("relay to %v: not a UDP address", addr)
	}
	ap := ua.AddrPort()
	if ap.Addr().Unmap() == rc.r.public && !rc.r.own(ap) {
		return len(p), nil // a datagram to a port that is not a relay: dropped, as the network might
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
