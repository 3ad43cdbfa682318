package e2e

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLabNAT checks the lab itself, without mesh: the NATs map and filter
// as their kinds say, the options drop what they say, and nothing has a
// route out of the lab.
func TestLabNAT(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	refl := []*net.UDPConn{l.reflector(7001), l.reflector(7002), l.reflector(7003)}
	cone := l.addHome(homeOpts{nat: natCone}).addHost()
	sym := l.addHome(homeOpts{nat: natSymmetric}).addHost()
	noUDP := l.addHome(homeOpts{nat: natCone, dropUDP: true}).addHost()
	tcpOnly := l.addHome(homeOpts{nat: natCone, onlyServerTCP: true}).addHost()

	// Endpoint-independent mapping keeps the port for every destination;
	// a symmetric NAT picks one per destination.
	c := l.udpSocket(cone, 5000)
	m1, m2 := l.mapped(c, 7001), l.mapped(c, 7002)
	if m1 != netip.MustParseAddrPort("198.51.100.1:5000") || m2 != m1 {
		t.Errorf("cone NAT mapped 10.1.0.10:5000 to %s and %s, want 198.51.100.1:5000 both times", m1, m2)
	}
	s := l.udpSocket(sym, 5000)
	if s1, s2 := l.mapped(s, 7001), l.mapped(s, 7002); s1.Addr() != netip.MustParseAddr("198.51.100.2") || s1 == s2 {
		t.Errorf("symmetric NAT mapped 10.2.0.10:5000 to %s and %s, want two ports of 198.51.100.2", s1, s2)
	}
	// Port-restricted: only the address and port the inside sent to get in.
	if _, err := refl[2].WriteToUDPAddrPort([]byte("unasked"), m1); err != nil {
		t.Fatal(err)
	}
	if got, ok := l.read(c, 300*time.Millisecond); ok {
		t.Errorf("a packet from a port the inside never sent to came through the cone NAT: %q", got)
	}
	if m := l.mapped(c, 7001); m != m1 {
		t.Errorf("the mapping changed: %s, then %s", m1, m)
	}

	// Hole punching between two cones: B's first packet to A's mapping is
	// dropped at A's router (A has not sent to B yet) and must leave no
	// state behind there, so that A's packet to B still leaves from the
	// same mapping and B's NAT lets it in; then B's next one gets to A.
	cone2 := l.addHome(homeOpts{nat: natCone}).addHost()
	a, b := l.udpSocket(cone, 5002), l.udpSocket(cone2, 5002)
	ma, mb := l.mapped(a, 7001), l.mapped(b, 7001)
	for _, step := range []struct {
		from, to *net.UDPConn
		dst      netip.AddrPort
		want     bool
	}{{b, a, ma, false}, {a, b, mb, true}, {b, a, ma, true}} {
		if _, err := step.from.WriteToUDPAddrPort([]byte("punch"), step.dst); err != nil {
			t.Fatal(err)
		}
		if _, ok := l.read(step.to, 300*time.Millisecond); ok != step.want {
			t.Errorf("hole punching, packet to %s: arrived %t, want %t", step.dst, ok, step.want)
		}
	}

	// dropUDP and onlyServerTCP: no UDP out; TCP only to the server's port.
	for _, hh := range []*labHost{noUDP, tcpOnly} {
		u := l.udpSocket(hh, 5000)
		if _, err := u.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort(labPubIP+":7001")); err != nil {
			t.Fatal(err)
		}
		if got, ok := l.read(u, 300*time.Millisecond); ok {
			t.Errorf("%s: UDP got through a router that drops it: %q", hh.ns, got)
		}
	}
	l.tcpListener(8000)
	l.tcpListener(3478)
	for _, tc := range []struct {
		hh   *labHost
		port string
		want bool
	}{{tcpOnly, "8000", true}, {tcpOnly, "3478", false}, {noUDP, "3478", true}, {cone, "3478", true}} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		conn, err := dialInNS(ctx, tc.hh.ns, "tcp", labPubIP+":"+tc.port)
		cancel()
		if err == nil {
			conn.Close()
		}
		if (err == nil) != tc.want {
			t.Errorf("%s: TCP to %s:%s: %v, want success %t", tc.hh.ns, labPubIP, tc.port, err, tc.want)
		}
	}

	// cutDirectUDP drops UDP between homes but not to the server.
	restore := cone.home.cutDirectUDP()
	if m := l.mapped(c, 7001); m != m1 {
		t.Errorf("after cutDirectUDP the server's address answers from %s, want %s", m, m1)
	}
	restore()

	// No route out: not from pub, not from a router, not from a host.
	for _, ns := range []string{l.pub, cone.home.router, cone.ns} {
		if out, err := exec.Command("ip", "-n", ns, "route", "get", "192.0.2.1").CombinedOutput(); ns == l.pub && err == nil {
			t.Errorf("%s has a route out of the lab: %s", ns, out)
		} else if ns != l.pub && err == nil && !strings.Contains(string(out), "via") {
			t.Errorf("%s routes 192.0.2.1 other than through its gateway: %s", ns, out)
		}
	}
}

// reflector listens on UDP port on the server's address in pub and
// answers every datagram with the address it came from.
func (l *lab) reflector(port int) *net.UDPConn {
	c := l.udpListen(l.pub, netip.AddrPortFrom(netip.MustParseAddr(labPubIP), uint16(port)))
	go func() {
		b := make([]byte, 1500)
		for {
			_, from, err := c.ReadFromUDPAddrPort(b)
			if err != nil {
				return // closed by the cleanup
			}
			_, _ = c.WriteToUDPAddrPort([]byte(from.String()), from) // a lost answer fails the test's read
		}
	}()
	return c
}

// udpSocket is a UDP socket on port of host hh.
func (l *lab) udpSocket(hh *labHost, port int) *net.UDPConn {
	return l.udpListen(hh.ns, netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port)))
}

func (l *lab) udpListen(ns string, ap netip.AddrPort) *net.UDPConn {
	l.t.Helper()
	var c *net.UDPConn
	err := inNS(ns, func() (err error) {
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap))
		return err
	})
	if err != nil {
		l.t.Fatalf("listen udp %s in %s: %v", ap, ns, err)
	}
	l.t.Cleanup(func() { c.Close() })
	return c
}

// tcpListener accepts TCP on port of the server's address in pub and
// closes what it accepts.
func (l *lab) tcpListener(port int) {
	l.t.Helper()
	var ln net.Listener
	err := inNS(l.pub, func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(labPubIP, strconv.Itoa(port)))
		return err
	})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by the cleanup
			}
			c.Close()
		}
	}()
}

// mapped sends from c to the reflector on port and returns the address
// the reflector saw: c's mapping on the NAT.
func (l *lab) mapped(c *net.UDPConn, port int) netip.AddrPort {
	l.t.Helper()
	to := netip.AddrPortFrom(netip.MustParseAddr(labPubIP), uint16(port))
	for range 3 {
		if _, err := c.WriteToUDPAddrPort([]byte("?"), to); err != nil {
			l.t.Fatal(err)
		}
		if got, ok := l.read(c, time.Second); ok {
			ap, err := netip.ParseAddrPort(got)
			if err != nil {
				l.t.Fatalf("reflector said %q: %v", got, err)
			}
			return ap
		}
	}
	l.t.Fatalf("no answer from the reflector on %s", to)
	return netip.AddrPort{}
}

// read returns the next datagram on c, if one comes within d.
func (l *lab) read(c *net.UDPConn, d time.Duration) (string, bool) {
	b := make([]byte, 1500)
	_ = c.SetReadDeadline(time.Now().Add(d)) // a UDPConn always takes a deadline
	n, err := c.Read(b)
	return string(b[:n]), err == nil
}
