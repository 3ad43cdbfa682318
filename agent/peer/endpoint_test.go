package peer

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/quic-go/quic-go"

	"mesh/protocol"
)

// testPeer is an agent's endpoint on a fresh 127.0.0.1 UDP port with its own
// identity; its log goes to a buffer the test can search.
type testPeer struct {
	ep    *Endpoint
	cfg   Config
	id    Identity
	log   *logBuf
	calls atomic.Int32 // handler calls
	stop  func()       // stops Serve and waits for it; set by serve
}

func newTestPeer(t testing.TB, device string, mod func(*Config)) *testPeer {
	t.Helper()
	id, err := LoadOrCreateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	lb := &logBuf{}
	cfg := Config{Identity: id, DeviceID: device, User: "alice", Sessions: NewSessionCache(nil),
		Log: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		mod(&cfg)
	}
	ep, err := NewEndpoint(cfg, pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ep.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		pc.Close()
	})
	return &testPeer{ep: ep, cfg: cfg, id: id, log: lb, stop: func() {}}
}

// serve runs Serve with handle (counted) until the test ends or p.stop.
func (p *testPeer) serve(t *testing.T, handle func(context.Context, *Session)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.ep.Serve(ctx, func(ctx context.Context, ps *Session) {
			p.calls.Add(1)
			handle(ctx, ps)
		})
	}()
	p.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	})
	t.Cleanup(p.stop)
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

func TestDialServe(t *testing.T) {
	t.Parallel()
	a, b := newTestPeer(t, "dev-a", nil), newTestPeer(t, "dev-b", nil)
	got := make(chan *Session, 1)
	b.serve(t, func(ctx context.Context, ps *Session) {
		got <- ps
		msg, err := io.ReadAll(ps.Stream)
		if err != nil {
			t.Errorf("target read: %v", err)
		}
		// A large answer, then Close at once, as a receiver does after its
		// verdict: Close must let it all arrive.
		if _, err := ps.Stream.Write(append(make([]byte, 1<<20), bytes.ToUpper(msg)...)); err != nil {
			t.Errorf("target write: %v", err)
		}
		if err := ps.Close("done"); err != nil {
			t.Errorf("target Close: %v", err)
		}
	})
	s := session("s1", a, b, time.Now().Add(time.Minute))
	b.cfg.Sessions.Add(s, "alice")
	ps, err := a.ep.Dial(t.Context(), s)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer ps.Close("test over")
	if st := ps.Conn.ConnectionState().TLS; st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != ALPN {
		t.Errorf("TLS version %x, ALPN %q; want TLS 1.3, %q", st.Version, st.NegotiatedProtocol, ALPN)
	}
	if _, err := io.WriteString(ps.Stream, "bytes over quic"); err != nil {
		t.Fatal(err)
	}
	ps.Stream.Close()
	reply, err := io.ReadAll(ps.Stream)
	if err != nil || len(reply) != 1<<20+15 || !bytes.HasSuffix(reply, []byte("BYTES OVER QUIC")) {
		t.Errorf("reply: %d bytes ending %q, %v; want 1 MiB and %q", len(reply), reply[max(0, len(reply)-15):], err, "BYTES OVER QUIC")
	}
	tp := <-got
	if diff := cmp.Diff(s, tp.Session); diff != "" || tp.FromUser != "alice" {
		t.Errorf("target's session (-want +got):\n%s\nFromUser %q", diff, tp.FromUser)
	}
	if diff := cmp.Diff(s, ps.Session); diff != "" || ps.FromUser != "alice" {
		t.Errorf("initiator's session (-want +got):\n%s\nFromUser %q", diff, ps.FromUser)
	}
}

func TestDenials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		target   func(*Config)
		announce func(*protocol.P2PSession) // the target's copy
		dial     func(*protocol.P2PSession) // the initiator's copy
		from     string
		advance  time.Duration
		want     Reason
	}{
		{name: "unknown", dial: func(s *protocol.P2PSession) { s.SessionID = "never-announced" }, want: ReasonUnknown},
		{name: "expired", advance: 2 * time.Minute, want: ReasonExpired},
		{name: "wrong token", dial: func(s *protocol.P2PSession) { s.SessionToken += "x" }, want: ReasonToken},
		{name: "wrong kind", dial: func(s *protocol.P2PSession) { s.Kind = protocol.SessionTerminal }, want: ReasonKind},
		{name: "wrong device", announce: func(s *protocol.P2PSession) { s.InitiatorDeviceID = "dev-x" }, want: ReasonDevice},
		{name: "not in accept_from", from: "mallory", target: func(c *Config) { c.AcceptFrom = []string{"bob"} },
			want: "user mallory is not in accept_from on this device"},
		{name: "other device's session", announce: func(s *protocol.P2PSession) { s.TargetDeviceID = "dev-c" },
			want: "session is not for this device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			a := newTestPeer(t, "dev-a", nil)
			b := newTestPeer(t, "dev-b", func(c *Config) {
				c.Sessions = NewSessionCache(clk.Now)
				if tt.target != nil {
					tt.target(c)
				}
			})
			b.serve(t, func(context.Context, *Session) {})
			// A later session of the same initiator keeps TLS open, so the
			// denial comes from the session checks.
			b.cfg.Sessions.Add(session("decoy", a, b, clk.Now().Add(10*time.Minute)), "alice")
			s := session("s1", a, b, clk.Now().Add(time.Minute))
			announced, from := s, cmpOr(tt.from, "alice")
			if tt.announce != nil {
				tt.announce(&announced)
			}
			b.cfg.Sessions.Add(announced, from)
			clk.Advance(tt.advance)
			if tt.dial != nil {
				tt.dial(&s)
			}
			_, err := a.ep.Dial(t.Context(), s)
			checkDenied(t, err, tt.want)
			b.stop()
			if n := b.calls.Load(); n != 0 {
				t.Errorf("handler called %d times, want 0", n)
			}
			if log := b.log.String(); !strings.Contains(log, "peer denied") || !strings.Contains(log, string(tt.want)) ||
				strings.Contains(log, "mst_secret") {
				t.Errorf("target log lacks the denial or shows a token:\n%s", log)
			}
		})
	}
}

func checkDenied(t *testing.T, err error, reason Reason) {
	t.Helper()
	var deny *DenyError
	if !errors.As(err, &deny) || deny.Reason != reason {
		t.Errorf("Dial = %v, want DenyError %q", err, reason)
	}
}

func TestTokenSingleUse(t *testing.T) {
	t.Parallel()
	a, b := newTestPeer(t, "dev-a", nil), newTestPeer(t, "dev-b", nil)
	b.serve(t, func(context.Context, *Session) {})
	b.cfg.Sessions.Add(session("decoy", a, b, time.Now().Add(time.Hour)), "alice")
	s := session("s1", a, b, time.Now().Add(time.Minute))
	b.cfg.Sessions.Add(s, "alice")

	wrong := s
	wrong.SessionToken = "mst_guess"
	_, err := a.ep.Dial(t.Context(), wrong)
	checkDenied(t, err, ReasonToken)
	ps, err := a.ep.Dial(t.Context(), s) // a wrong guess did not use the session up
	if err != nil {
		t.Fatalf("Dial after a wrong token: %v", err)
	}
	ps.Close("done")
	_, err = a.ep.Dial(t.Context(), s)
	checkDenied(t, err, ReasonUsed)
	b.stop()
	if n := b.calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
}

func TestPinTarget(t *testing.T) {
	t.Parallel()
	a, b, c := newTestPeer(t, "dev-a", nil), newTestPeer(t, "dev-b", nil), newTestPeer(t, "dev-c", nil)
	b.serve(t, func(context.Context, *Session) {})
	s := session("s1", a, b, time.Now().Add(time.Minute))
	b.cfg.Sessions.Add(s, "alice")

	stale := s // the server thinks the target is c, but b answers at that address
	stale.Endpoints.Target.Fingerprint = c.id.Fingerprint
	_, err := a.ep.Dial(t.Context(), stale)
	t.Logf("Dial: %v", err)
	if !errors.Is(err, ErrPeerCertificate) {
		t.Fatalf("Dial with the wrong target fingerprint = %v, want ErrPeerCertificate", err)
	}
	ps, err := a.ep.Dial(t.Context(), s) // no P2P_HELLO went out, so the token still works
	if err != nil {
		t.Fatalf("Dial after refusing the target: %v", err)
	}
	ps.Close("done")
}

func TestPinInitiator(t *testing.T) {
	t.Parallel()
	a, b := newTestPeer(t, "dev-a", nil), newTestPeer(t, "dev-b", nil)
	thief := newTestPeer(t, "dev-a", nil) // knows the token and device id, not a's key
	b.serve(t, func(context.Context, *Session) {})
	s := session("s1", a, b, time.Now().Add(time.Minute))
	b.cfg.Sessions.Add(s, "alice")

	t.Run("refused at TLS", func(t *testing.T) {
		_, err := thief.ep.Dial(t.Context(), s)
		t.Logf("Dial: %v", err)
		if !errors.Is(err, ErrCertificateRefused) {
			t.Fatalf("Dial with an unknown certificate = %v, want ErrCertificateRefused", err)
		}
	})
	t.Run("session names another certificate", func(t *testing.T) {
		b.cfg.Sessions.Add(session("thief's own", thief, b, time.Now().Add(time.Minute)), "alice")
		_, err := thief.ep.Dial(t.Context(), s)
		checkDenied(t, err, ReasonCertificate)
	})
	b.stop()
	if n := b.calls.Load(); n != 0 {
		t.Errorf("handler called %d times, want 0", n)
	}
}

func TestDialBeforeAnnouncement(t *testing.T) {
	t.Parallel()
	a, b := newTestPeer(t, "dev-a", nil), newTestPeer(t, "dev-b", func(c *Config) { c.AcceptFrom = []string{"*"} })
	b.serve(t, func(context.Context, *Session) {})
	s := session("s1", a, b, time.Now().Add(time.Minute))
	type result struct {
		ps  *Session
		err error
	}
	done := make(chan result)
	go func() {
		ps, err := a.ep.Dial(t.Context(), s)
		done <- result{ps, err}
	}()
	b.cfg.Sessions.Add(s, "carol") // whichever comes first, the dial must succeed
	r := <-done
	if r.err != nil {
		t.Fatalf("Dial racing the announcement: %v", r.err)
	}
	r.ps.Close("done")
}

func TestDialNoAnswer(t *testing.T) {
	t.Parallel()
	a := newTestPeer(t, "dev-a", func(c *Config) { c.HandshakeTimeout = 400 * time.Millisecond })
	silent := newTestPeer(t, "dev-b", nil) // never serves
	_, err := a.ep.Dial(t.Context(), session("s1", a, silent, time.Now().Add(time.Minute)))
	if err == nil || !strings.Contains(err.Error(), "is 'mesh agent run' running on the target") {
		t.Errorf("Dial to a silent port = %v, want advice to check the target's agent", err)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	t.Parallel()
	a := newTestPeer(t, "dev-a", nil)
	b := newTestPeer(t, "dev-b", func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	b.serve(t, func(context.Context, *Session) {})
	b.cfg.Sessions.Add(session("s1", a, b, time.Now().Add(time.Minute)), "alice")
	conn, err := a.ep.tr.Dial(t.Context(), b.ep.Addr(), a.ep.clientTLS(b.id.Fingerprint), a.ep.conf)
	if err != nil {
		t.Fatal(err)
	}
	<-conn.Context().Done() // no P2P_HELLO: the target hangs up
	var app *quic.ApplicationError
	if err := context.Cause(conn.Context()); !errors.As(err, &app) || app.ErrorCode != codeProtocol {
		t.Errorf("connection closed with %v, want application error %d", err, codeProtocol)
	}
}

func TestServeShutdown(t *testing.T) {
	t.Parallel()
	a, b := newTestPeer(t, "dev-a", nil), newTestPeer(t, "dev-b", nil)
	inHandler := make(chan struct{})
	b.serve(t, func(ctx context.Context, ps *Session) {
		close(inHandler)
		<-ctx.Done()
	})
	s := session("s1", a, b, time.Now().Add(time.Minute))
	b.cfg.Sessions.Add(s, "alice")
	ps, err := a.ep.Dial(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	<-inHandler
	b.stop() // returns only after the handler did
	if _, err := ps.Stream.Read(make([]byte, 1)); err == nil {
		t.Error("stream still open after the target shut down")
	}
}

// logBuf is a log destination safe for Serve's goroutines.
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

// TestUnboundSession: a session without an initiator device, over real
// QUIC: a device of someone else is refused at TLS, the first of the user's
// devices binds it, the second hears "token already used".
func TestUnboundSession(t *testing.T) {
	t.Parallel()
	a, b, c := newTestPeer(t, "dev-a", nil), newTestPeer(t, "dev-b", nil), newTestPeer(t, "dev-c", nil)
	stranger := newTestPeer(t, "bobs-pc", func(c *Config) { c.User = "bob" })
	got := make(chan protocol.P2PSession, 2)
	b.serve(t, func(_ context.Context, ps *Session) { got <- ps.Session })
	s := session("s1", a, b, time.Now().Add(time.Minute))
	s.InitiatorDeviceID, s.Endpoints.Initiator = "", protocol.Endpoint{}
	s.Initiators = []protocol.DeviceCert{{DeviceID: "dev-a", Fingerprint: a.id.Fingerprint}, {DeviceID: "dev-c", Fingerprint: c.id.Fingerprint}}
	b.cfg.Sessions.Add(s, "alice")

	if _, err := stranger.ep.Dial(t.Context(), s); !errors.Is(err, ErrCertificateRefused) {
		t.Fatalf("Dial from another user's device = %v, want ErrCertificateRefused", err)
	}
	ps, err := c.ep.Dial(t.Context(), s)
	if err != nil {
		t.Fatalf("Dial from one of the user's devices: %v", err)
	}
	ps.Close("done")
	if bound := <-got; bound.InitiatorDeviceID != "dev-c" || bound.Endpoints.Initiator.Fingerprint != c.id.Fingerprint {
		t.Errorf("target's session = %+v, want it bound to dev-c and its certificate", bound)
	}
	_, err = a.ep.Dial(t.Context(), s)
	checkDenied(t, err, ReasonUsed)
	b.stop()
	if n := b.calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
}
