package peer

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/pion/stun/v3"
	"github.com/quic-go/quic-go"

	"mesh/protocol"
)

// Path is how two agents reach each other.
type Path int

// The paths, best first.
const (
	PathUnknown Path = iota
	PathLAN          // direct, to an address of the peer's own interfaces
	PathNAT          // direct, through the peer's NAT (its STUN-seen mapping)
	PathRelay        // through the server's relay
)

// String is what the user reads after "path: ".
func (p Path) String() string {
	switch p {
	case PathLAN:
		return "direct (same network)"
	case PathNAT:
		return "direct (through NAT)"
	case PathRelay:
		return "relayed"
	}
	return "unknown"
}

// Word is the path in a transfer report: "direct", "nat" or "relay".
func (p Path) Word() string {
	switch p {
	case PathLAN:
		return "direct"
	case PathNAT:
		return "nat"
	case PathRelay:
		return "relay"
	}
	return ""
}

// relayDelay is how long direct candidates have to win before the relay
// joins the race: long enough for a punched path (a retransmitted QUIC
// Initial) to get through, short enough that a relayed session starts
// within two seconds.
const relayDelay = time.Second

// SetRelayDelay sets how long direct candidates race alone before the
// relay joins (relayDelay by default); 0 starts the relay with them, for
// a side that knows UDP does not get out. Call it before dialing.
func (e *Endpoint) SetRelayDelay(d time.Duration) { e.relayDelay = d }

// UseRelay gives the endpoint a second transport over the server's relay;
// call it before [Endpoint.Serve]. The endpoint does not close rc.
func (e *Endpoint) UseRelay(rc *RelayConn) {
	e.rtr = &quic.Transport{Conn: rc}
	// The relay has no path MTU: the largest packets quic-go makes, at
	// once, carry 16% more per packet than its 1252-byte start.
	e.rconf = e.conf.Clone()
	e.rconf.InitialPacketSize = relayPacketSize
	e.rconf.DisablePathMTUDiscovery = true
}

// relayPacketSize is quic-go's largest packet.
const relayPacketSize = 1452

// HostCandidates lists the addresses of this machine's interfaces that are
// up (loopback and link-local left out) with port: where a peer on the same
// network reaches this endpoint.
func HostCandidates(port int) []protocol.Candidate {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []protocol.Candidate
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		as, _ := i.Addrs() // an interface without addresses offers none
		for _, a := range as {
			p, err := netip.ParsePrefix(a.String())
			if err != nil || p.Addr().IsLinkLocalUnicast() || p.Addr().IsLoopback() || len(out) == protocol.MaxCandidates/2 {
				continue
			}
			out = append(out, protocol.Candidate{Type: protocol.CandidateHost, Addr: netip.AddrPortFrom(p.Addr(), uint16(port)).String()})
		}
	}
	return out
}

// Reflexive asks the STUN server at addr (within ctx's deadline, else 2 s) (the mesh server's) for this
// endpoint's address as seen from there, over the endpoint's own socket,
// so that the answer is the NAT mapping QUIC packets get.
func (e *Endpoint) Reflexive(ctx context.Context, addr string) (protocol.Candidate, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return protocol.Candidate{}, fmt.Errorf("stun server %s: %w", addr, err)
	}
	e.stun.Lock()
	defer e.stun.Unlock()
	wait := 2 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	buf := make([]byte, 1500)
	for wait := 200 * time.Millisecond; ; wait *= 2 {
		if _, err := e.tr.WriteTo(req.Raw, raddr); err != nil {
			return protocol.Candidate{}, fmt.Errorf("stun to %s: %w", addr, err)
		}
		rctx, rcancel := context.WithTimeout(ctx, wait)
		for {
			n, _, err := e.tr.ReadNonQUICPacket(rctx, buf)
			if err != nil {
				break
			}
			res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			var xor stun.XORMappedAddress
			if res.Decode() != nil || res.TransactionID != req.TransactionID || xor.GetFrom(res) != nil {
				continue // a punch, or an old answer
			}
			rcancel()
			ap, _ := netip.AddrFromSlice(xor.IP)
			return protocol.Candidate{Type: protocol.CandidateSrflx, Addr: netip.AddrPortFrom(ap.Unmap(), uint16(xor.Port)).String()}, nil
		}
		rcancel()
		if ctx.Err() != nil {
			return protocol.Candidate{}, fmt.Errorf("no STUN answer from %s within %v (UDP to the server blocked?)", addr, wait.Round(100*time.Millisecond))
		}
	}
}

// Punch sends a few small packets from the endpoint's socket towards each
// candidate, over about two seconds: they open this side's NAT for the
// peer's QUIC packets. They are STUN binding indications, which ask no
// answer and which QUIC ignores.
func (e *Endpoint) Punch(ctx context.Context, cands []protocol.Candidate) {
	var addrs []*net.UDPAddr
	for _, c := range cands {
		if ap, err := netip.ParseAddrPort(c.Addr); err == nil {
			addrs = append(addrs, net.UDPAddrFromAddrPort(ap))
		}
	}
	if len(addrs) == 0 {
		return
	}
	ind := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodBinding, stun.ClassIndication))
	for _, wait := range []time.Duration{0, 50, 100, 200, 400, 800} {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait * time.Millisecond):
		}
		for _, a := range addrs {
			_, _ = e.tr.WriteTo(ind.Raw, a) // best effort, as punching is
		}
	}
}

// dialTarget is one address to try for a session's target.
type dialTarget struct {
	addr net.Addr
	path Path
	tr   *quic.Transport
}

// targets lists the addresses to try: the target's candidates, and the
// address the server saw it at with its QUIC port.
func (e *Endpoint) targets(t protocol.Endpoint) []dialTarget {
	var out []dialTarget
	seen := map[netip.AddrPort]bool{}
	add := func(ap netip.AddrPort, p Path) {
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if !ap.IsValid() || ap.Port() == 0 || seen[ap] {
			return
		}
		seen[ap] = true
		out = append(out, dialTarget{addr: net.UDPAddrFromAddrPort(ap), path: p, tr: e.tr})
	}
	for _, c := range t.Candidates {
		ap, err := netip.ParseAddrPort(c.Addr)
		if err != nil {
			continue
		}
		if c.Type == protocol.CandidateSrflx {
			add(ap, PathNAT)
		} else {
			add(ap, PathLAN)
		}
	}
	if a, err := netip.ParseAddr(t.IP); err == nil && t.Port > 0 && t.Port < 65536 {
		p := PathNAT
		if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() {
			p = PathLAN
		}
		add(netip.AddrPortFrom(a, uint16(t.Port)), p)
	}
	return out
}

// race dials every target at once, and the relay after relayDelay (at once
// when no direct target is left), and returns the first connection whose
// pinned handshake completes. The others are closed.
func (e *Endpoint) race(ctx context.Context, s protocol.P2PSession, targets []dialTarget) (*quic.Conn, dialTarget, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		conn *quic.Conn
		t    dialTarget
		err  error
	}
	results := make(chan result, len(targets)+1)
	tls := e.clientTLS(s.Endpoints.Target.Fingerprint)
	dial := func(t dialTarget) {
		conf := e.conf
		if t.tr == e.rtr {
			conf = e.rconf
		}
		conn, err := t.tr.Dial(ctx, t.addr, tls, conf)
		results <- result{conn, t, err}
	}
	for _, t := range targets {
		go dial(t)
	}
	pending := len(targets)
	relay := dialTarget{addr: RelayAddr(s.SessionID), path: PathRelay, tr: e.rtr}
	var relayAt <-chan time.Time
	if e.rtr != nil {
		if pending == 0 {
			go dial(relay)
			pending++
		} else {
			relayAt = time.After(e.relayDelay)
		}
	}
	var tried []string
	var errs []error
	for pending > 0 || relayAt != nil {
		select {
		case <-relayAt:
			relayAt = nil
			go dial(relay)
			pending++
		case r := <-results:
			pending--
			if r.err != nil {
				tried = append(tried, fmt.Sprintf("%s (%s): %v", r.t.addr, r.t.path, r.err))
				errs = append(errs, r.err)
				if pending == 0 && relayAt != nil { // nothing direct is left to wait for
					relayAt = nil
					go dial(relay)
					pending++
				}
				continue
			}
			cancel()
			go func(left int) { // losers that completed anyway are hung up on
				for ; left > 0; left-- {
					if l := <-results; l.err == nil {
						_ = l.conn.CloseWithError(codeDone, "another path won")
					}
				}
			}(pending)
			return r.conn, r.t, nil
		}
	}
	if e.rtr == nil && len(errs) > 1 {
		tried = append(tried, "relay: none (no server link)")
	}
	return nil, dialTarget{}, &pathsError{tried: tried, errs: errs}
}

// pathsError is a dial where every path failed; it says what was tried
// and matches each path's error.
type pathsError struct {
	tried []string
	errs  []error
}

func (e *pathsError) Error() string {
	return "no path answered; tried " + strings.Join(e.tried, "; ")
}

func (e *pathsError) Unwrap() []error { return e.errs }

// pathFrom tells, on the target's side, the path an initiator came by.
func pathFrom(remote net.Addr, ini protocol.Endpoint) Path {
	if _, ok := remote.(RelayAddr); ok {
		return PathRelay
	}
	ua, ok := remote.(*net.UDPAddr)
	if !ok {
		return PathUnknown
	}
	ap := netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), ua.AddrPort().Port())
	for _, c := range ini.Candidates {
		if c.Addr == ap.String() {
			if c.Type == protocol.CandidateSrflx {
				return PathNAT
			}
			return PathLAN
		}
	}
	if a := ap.Addr(); a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() {
		return PathLAN
	}
	return PathNAT
}
