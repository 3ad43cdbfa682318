package agent

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"mesh/agent/peer"
	"mesh/protocol"
)

// testPeer is another agent's peer endpoint on a fresh 127.0.0.1 UDP port
// with its own identity, for tests that run this agent's side of a session
// against it; its log goes to a buffer the test can search. Package peer's
// own tests have a fuller one.
type testPeer struct {
	ep  *peer.Endpoint
	cfg peer.Config
	id  peer.Identity
	log *logBuf
}

func newTestPeer(t testing.TB, device string) *testPeer {
	t.Helper()
	id, err := peer.LoadOrCreateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	lb := &logBuf{}
	cfg := peer.Config{Identity: id, DeviceID: device, User: "alice", Sessions: peer.NewSessionCache(nil),
		Log: slog.New(slog.NewTextHandler(lb, nil))}
	ep, err := peer.NewEndpoint(cfg, pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ep.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		pc.Close()
	})
	return &testPeer{ep: ep, cfg: cfg, id: id, log: lb}
}

// serve runs Serve with handle until the test ends.
func (p *testPeer) serve(t testing.TB, handle func(context.Context, *peer.Session)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.ep.Serve(ctx, handle) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	})
}

// session is what the server would announce for initiator → target.
func session(id string, initiator, target *testPeer, expires time.Time) protocol.P2PSession {
	end := func(p *testPeer) protocol.Endpoint {
		a := p.ep.Addr().(*net.UDPAddr)
		return protocol.Endpoint{IP: a.IP.String(), Port: a.Port, Fingerprint: p.id.Fingerprint}
	}
	return protocol.P2PSession{SessionID: id, SessionToken: "mst_secret-" + id, ExpiresAt: expires,
		Kind: protocol.SessionFile, InitiatorDeviceID: initiator.cfg.DeviceID, TargetDeviceID: target.cfg.DeviceID,
		Endpoints: protocol.Endpoints{Initiator: end(initiator), Target: end(target)}}
}

// logBuf is a log destination safe for concurrent goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
