package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mesh/server"
	"mesh/server/notify/gotify/gotifytest"
	"mesh/store"
)

// sink stands for a service on the server's own loopback: it listens on
// 127.0.0.1 and [::1] on one port, counts every connection it accepts and
// answers like Gotify, so that a push that reaches it succeeds.
type sink struct {
	port  int
	conns atomic.Int32
}

func newSink(t *testing.T) *sink {
	t.Helper()
	s := &sink{}
	var lns []net.Listener
	for attempt := 0; ; attempt++ { // the port free on 127.0.0.1 may be taken on ::1
		l4, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.port = l4.Addr().(*net.TCPAddr).Port
		l6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(s.port)))
		if err == nil {
			lns = []net.Listener{l4, l6}
			break
		}
		l4.Close()
		if attempt == 20 {
			t.Fatalf("no port free on both 127.0.0.1 and ::1: %v", err)
		}
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the push itself does not matter
		_, _ = io.WriteString(w, `{"id":7}`)
	})}
	for _, ln := range lns {
		go func() { _ = srv.Serve(countingListener{ln, &s.conns}) }() // ends with Close below
	}
	t.Cleanup(func() { srv.Close() })
	return s
}

type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// targets are a user's ways of naming the sink; rebind.test resolves to
// loopback through the resolver from [gotifytest.Resolver].
func (s *sink) targets() []string {
	return []string{
		fmt.Sprintf("http://127.0.0.1:%d", s.port),
		fmt.Sprintf("http://[::1]:%d", s.port),
		fmt.Sprintf("http://localhost:%d", s.port),
		fmt.Sprintf("http://gotify.rebind.test:%d", s.port),
	}
}

// rebindConfig is a server config whose DNS says gotify.rebind.test is
// 127.0.0.1 and ::1.
func rebindConfig(t *testing.T) server.Config {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.Auth.Registration = "open"
	cfg.Notify.RetryMin = 20 * time.Millisecond
	cfg.Notify.Resolver = gotifytest.Resolver(t, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"))
	return cfg
}

// saveTarget stores url as userID's own target straight in the database,
// as a target saved before the check existed would be.
func saveTarget(t *testing.T, st *store.Store, userID int64, url string) {
	t.Helper()
	set, err := st.NotifySettings(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	set.GotifyURL, set.GotifyToken = url, "Aapplication-token"
	if err := st.SetNotifySettings(context.Background(), set); err != nil {
		t.Fatal(err)
	}
}

func userID(t *testing.T, st *store.Store, name string) int64 {
	t.Helper()
	u, err := st.UserByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

func putTarget(t *testing.T, ts *testServer, token, url string) answer {
	t.Helper()
	return ts.do(t, "PUT", "/api/notify", []byte(fmt.Sprintf(`{"gotify_url":%q,"gotify_token":"Aapplication-token"}`, url)), token)
}

// TestPushTargetOnServerNetworkRefused: a user's own target never makes the
// server connect to its own loopback, whichever way the user names it: not
// in a test push, not from the worker, and a literal address or localhost
// is refused when saved already.
func TestPushTargetOnServerNetworkRefused(t *testing.T) {
	t.Parallel()
	sk := newSink(t)
	ts := startServer(t, rebindConfig(t))
	for i, target := range sk.targets() {
		name := fmt.Sprint("user", i)
		tok := ts.register(t, name, "secret1")
		a := putTarget(t, ts, tok, target)
		if literal := !strings.Contains(target, "rebind"); literal && (a.Status != http.StatusBadRequest || a.errCode() != "private_target") {
			t.Errorf("PUT /api/notify %s = %d %s, want 400 private_target", target, a.Status, a.Body)
		} else if !literal && a.Status != http.StatusOK {
			t.Errorf("PUT /api/notify %s = %d %s, want 200: the name is checked when connecting", target, a.Status, a.Body)
		}
		saveTarget(t, ts.Store, userID(t, ts.Store, name), target) // as if saved before this check
		a = ts.do(t, "POST", "/api/notify/test", nil, tok)
		if a.Status != http.StatusForbidden || a.errCode() != "private_target" || !strings.Contains(a.errMessage(), "allow_private_targets") {
			t.Errorf("POST /api/notify/test to %s = %d %s, want 403 private_target naming allow_private_targets", target, a.Status, a.Body)
		}
	}
	// The worker: a direct message to an offline user whose target is the
	// rebinding name fails for good, and says why.
	alice := ts.register(t, "alice", "secret1")
	bob := ts.register(t, "bob", "secret1")
	saveTarget(t, ts.Store, userID(t, ts.Store, "bob"), sk.targets()[3])
	w := &pushWorld{ts: ts, alice: alice, bob: bob, bobID: userID(t, ts.Store, "bob")}
	ws := ts.dial(t, alice)
	ws.say(w.directRoom(t), "hello")
	if ps := w.waitPushes(t, 1, true); ps[0].State != store.PushFailed || ps[0].Attempts > 1 {
		t.Errorf("bob's outbox %+v; want the push failed at once, not retried", ps)
	}
	set, err := ts.Store.NotifySettings(context.Background(), w.bobID)
	if err != nil || !strings.Contains(set.LastError, "loopback") || !strings.Contains(set.LastError, "allow_private_targets") {
		t.Errorf("bob's last_error = %q, %v; want the loopback refusal and how to allow it", set.LastError, err)
	}
	if n := sk.conns.Load(); n != 0 {
		t.Errorf("the loopback listener got %d connections, want 0", n)
	}
}

// TestPushPrivateTargetAllowedByAdmin: [notify] allow_private_targets, or
// the address in allowed_targets, makes the same targets reachable.
func TestPushPrivateTargetAllowedByAdmin(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		allow func(*server.Config)
	}{
		{"allow_private_targets", func(c *server.Config) { c.Notify.AllowPrivateTargets = true }},
		{"allowed_targets", func(c *server.Config) { c.Notify.AllowedTargets = []string{"127.0.0.0/8", "::1"} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sk := newSink(t)
			cfg := rebindConfig(t)
			tt.allow(&cfg)
			ts := startServer(t, cfg)
			for i, target := range sk.targets() {
				tok := ts.register(t, fmt.Sprint("user", i), "secret1")
				if a := putTarget(t, ts, tok, target); a.Status != http.StatusOK {
					t.Errorf("PUT /api/notify %s = %d %s, want 200", target, a.Status, a.Body)
				}
				before := sk.conns.Load()
				if a := ts.do(t, "POST", "/api/notify/test", nil, tok); a.Status != http.StatusOK {
					t.Errorf("POST /api/notify/test to %s = %d %s, want 200", target, a.Status, a.Body)
				}
				if sk.conns.Load() == before {
					t.Errorf("POST /api/notify/test to %s reached nothing", target)
				}
			}
		})
	}
}

// TestPushServerTargetOnLoopbackTrusted: the admin's [notify.gotify] is
// not the user's choice; a Gotify beside the server keeps working.
func TestPushServerTargetOnLoopbackTrusted(t *testing.T) {
	t.Parallel()
	g := gotifytest.New(t)
	cfg := rebindConfig(t)
	cfg.Notify.Gotify = server.GotifyConfig{URL: g.URL(), Token: g.AppToken()}
	ts := startServer(t, cfg)
	tok := ts.register(t, "alice", "secret1")
	if a := ts.do(t, "POST", "/api/notify/test", nil, tok); a.Status != http.StatusOK {
		t.Fatalf("POST /api/notify/test to the server's target on loopback = %d %s, want 200", a.Status, a.Body)
	}
	if got := g.WaitMessages(t, 1, 10*time.Second); got[0].Title != "mesh test" {
		t.Errorf("push = %+v", got[0])
	}
}

// TestPushTestErrorHidesTheAnswer: what the target answered never shows in
// the error the user gets, only its status.
func TestPushTestErrorHidesTheAnswer(t *testing.T) {
	t.Parallel()
	const secret = "internal-secret-9c2e"
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "admin console "+secret, http.StatusNotFound)
	}))
	t.Cleanup(target.Close)
	cfg := rebindConfig(t)
	cfg.Notify.AllowPrivateTargets = true // the stand-in is on loopback
	ts := startServer(t, cfg)
	tok := ts.register(t, "alice", "secret1")
	if a := putTarget(t, ts, tok, target.URL); a.Status != http.StatusOK {
		t.Fatalf("PUT /api/notify = %d %s", a.Status, a.Body)
	}
	a := ts.do(t, "POST", "/api/notify/test", nil, tok)
	if a.Status != http.StatusBadGateway || !strings.Contains(a.errMessage(), "404") || strings.Contains(string(a.Body), secret) {
		t.Errorf("POST /api/notify/test = %d %s; want 502 naming the 404, without the answer", a.Status, a.Body)
	}
	if a := ts.do(t, "GET", "/api/notify", nil, tok); strings.Contains(string(a.Body), secret) {
		t.Errorf("GET /api/notify = %s; last_error shows the answer", a.Body)
	}
}
