package peer

import (
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
	pion "github.com/pion/turn/v4"

	"mesh/protocol"
)

// relayPair joins two endpoints through a stand-in for the server's relay:
// each one's frames are the other's, as the server forwards them. It
// counts the bytes carried.
func relayPair(t *testing.T, a, b *testPeer) *atomic.Int64 {
	t.Helper()
	var carried atomic.Int64
	var ra, rb *RelayConn
	ra = NewRelayConn(func(f []byte) bool { carried.Add(int64(len(f))); rb.Deliver(f); return true })
	rb = NewRelayConn(func(f []byte) bool { carried.Add(int64(len(f))); ra.Deliver(f); return true })
	t.Cleanup(func() { ra.Close(); rb.Close() })
	a.ep.UseRelay(ra)
	b.ep.UseRelay(rb)
	return &carried
}

// echo answers one line on the session's stream with the same line.
func echo(_ context.Context, ps *Session) {
	buf := make([]byte, 64)
	n, _ := ps.Stream.Read(buf)
	_, _ = ps.Stream.Write(buf[:n])
}

func roundTrip(t *testing.T, ps *Session, msg string) {
	t.Helper()
	if _, err := ps.Stream.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(ps.Stream, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo = %q, %v; want %q", buf, err, msg)
	}
}

// TestDialRelayOnly: with no address for the target, the session goes
// through the relay at once, pinned as ever, and says so.
func TestDialRelayOnly(t *testing.T) {
	t.Parallel()
	a, b := newTestPeer(t, "dev-a", nil), newTestPeer(t, "dev-b", nil)
	carried := relayPair(t, a, b)
	b.serve(t, echo)
	s := session("s-relay", a, b, time.Now().Add(time.Minute))
	s.Endpoints.Target.IP, s.Endpoints.Target.Port = "", 0
	b.cfg.Sessions.Add(s, "alice")
	start := time.Now()
	ps, err := a.ep.Dial(t.Context(), s)
	if err != nil {
		t.Fatalf("Dial over the relay: %v", err)
	}
	defer ps.Close("done")
	if ps.Path != PathRelay {
		t.Errorf("Path = %v, want relayed", ps.Path)
	}
	roundTrip(t, ps, "through the relay")
	t.Logf("relayed session up in %v, %d bytes carried", time.Since(start).Round(time.Millisecond), carried.Load())
	if carried.Load() == 0 {
		t.Error("the relay carried nothing")
	}
}

// TestDialRaceRelayJoinsLate: a target whose only candidate is silent is
// reached through the relay after relayDelay; a good candidate wins over
// the relay and the path says direct.
func TestDialRaceRelayJoinsLate(t *testing.T) {
	t.Parallel()
	a, b := newTestPeer(t, "dev-a", nil), newTestPeer(t, "dev-b", nil)
	relayPair(t, a, b)
	b.serve(t, echo)
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	s := session("s-late", a, b, time.Now().Add(time.Minute))
	s.Endpoints.Target.IP, s.Endpoints.Target.Port = "", 0
	s.Endpoints.Target.Candidates = []protocol.Candidate{{Type: protocol.CandidateSrflx, Addr: silent.LocalAddr().String()}}
	b.cfg.Sessions.Add(s, "alice")
	start := time.Now()
	ps, err := a.ep.Dial(t.Context(), s)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	took := time.Since(start)
	if ps.Path != PathRelay || took < relayDelay {
		t.Errorf("Path %v after %v, want relayed after at least %v", ps.Path, took, relayDelay)
	}
	roundTrip(t, ps, "late relay")
	ps.Close("done")

	d := session("s-direct", a, b, time.Now().Add(time.Minute))
	d.Endpoints.Target.Candidates = []protocol.Candidate{{Type: protocol.CandidateSrflx, Addr: silent.LocalAddr().String()},
		{Type: protocol.CandidateHost, Addr: b.ep.Addr().String()}}
	d.Endpoints.Target.IP = ""
	b.cfg.Sessions.Add(d, "alice")
	ps, err = a.ep.Dial(t.Context(), d)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer ps.Close("done")
	if ps.Path != PathLAN {
		t.Errorf("Path %v with a live host candidate, want direct (same network)", ps.Path)
	}
	roundTrip(t, ps, "direct")
}

// TestDialSaysWhatWasTried: every path failing names each of them.
func TestDialSaysWhatWasTried(t *testing.T) {
	t.Parallel()
	a, b := newTestPeer(t, "dev-a", func(c *Config) { c.HandshakeTimeout = 400 * time.Millisecond }), newTestPeer(t, "dev-b", nil)
	s := session("s-none", a, b, time.Now().Add(time.Minute))
	s.Endpoints.Target.Candidates = []protocol.Candidate{{Type: protocol.CandidateHost, Addr: "127.0.0.1:9"}}
	_, err := a.ep.Dial(t.Context(), s)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:9 (direct (same network))") || !strings.Contains(err.Error(), "relay: none") {
		t.Errorf("Dial with two dead paths = %v, want each path named", err)
	}
}

// TestReflexive: STUN on the endpoint's own socket gives the address the
// STUN server saw, the socket's own here (no NAT on loopback).
func TestReflexive(t *testing.T) {
	t.Parallel()
	a := newTestPeer(t, "dev-a", nil)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := logging.NewDefaultLoggerFactory()
	logs.DefaultLogLevel = logging.LogLevelDisabled
	srv, err := pion.NewServer(pion.ServerConfig{PacketConnConfigs: []pion.PacketConnConfig{{PacketConn: pc}}, LoggerFactory: logs})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := a.ep.Reflexive(t.Context(), pc.LocalAddr().String())
	if err != nil || c.Type != protocol.CandidateSrflx || c.Addr != a.ep.Addr().String() {
		t.Errorf("Reflexive = %+v, %v; want srflx %s", c, err, a.ep.Addr())
	}
	dead, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	defer dead.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := a.ep.Reflexive(ctx, dead.LocalAddr().String()); err == nil || !strings.Contains(err.Error(), "no STUN answer") {
		t.Errorf("Reflexive to a silent port = %v, want no STUN answer", err)
	}
}
