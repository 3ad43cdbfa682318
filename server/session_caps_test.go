package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// dialStatus opens /ws and returns the status of a refusal (0 on success)
// with its error code; a successful socket closes with the test.
func (ts *testServer) dialStatus(t *testing.T, token string) (int, string) {
	t.Helper()
	ws, res, err := websocket.DefaultDialer.Dial(ts.wsURL(token), nil)
	if err == nil {
		t.Cleanup(func() { _ = ws.Close() })
		return 0, ""
	}
	if res == nil {
		t.Fatalf("dial /ws: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body) // the code is all we need; an empty body shows as ""
	var e struct{ Error struct{ Code string } }
	_ = json.Unmarshal(b, &e)
	return res.StatusCode, e.Error.Code
}

// One user (or one address) cannot open sessions until the server runs out
// of file descriptors for everyone: past the cap, 429 before the upgrade.
func TestSessionCaps(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, t.TempDir())
	cfg.Auth.Registration = "open"
	cfg.HTTP.MaxSessionsPerUser, cfg.HTTP.MaxSessionsPerIP = 5, 8
	ts := startServer(t, cfg)
	alice, bob, carol := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret2"), ts.register(t, "carol", "secret3")

	var open []*wsClient
	for range 5 {
		open = append(open, ts.dial(t, alice))
	}
	if st, code := ts.dialStatus(t, alice); st != http.StatusTooManyRequests || code != "too_many_sessions" {
		t.Fatalf("alice's 6th session = %d %q, want 429 too_many_sessions", st, code)
	}
	// The cap is per user: bob is not affected until the address's cap.
	for range 3 {
		open = append(open, ts.dial(t, bob))
	}
	if st, code := ts.dialStatus(t, carol); st != http.StatusTooManyRequests || code != "too_many_sessions" {
		t.Fatalf("the 9th session from one address = %d %q, want 429 too_many_sessions", st, code)
	}
	// A closed session frees its place.
	_ = open[0].ws.Close()
	for i := 0; ; i++ {
		if st, _ := ts.dialStatus(t, carol); st == 0 {
			break
		} else if i > 200 {
			t.Fatal("a place freed by a closed session was never given again")
		}
		open[1].send(protocol.TypeSystemHello, protocol.Hello{}) // a round trip lets the server see the close
		open[1].waitFor(protocol.TypeSystemWelcome)
	}
}

// The defaults are generous, and configurable, and 0 means no cap.
func TestSessionCapDefaults(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, t.TempDir())
	if cfg.HTTP.MaxSessionsPerUser < 32 || cfg.HTTP.MaxSessionsPerIP < cfg.HTTP.MaxSessionsPerUser {
		t.Fatalf("default caps %d per user, %d per address: want at least 32 and per address ≥ per user",
			cfg.HTTP.MaxSessionsPerUser, cfg.HTTP.MaxSessionsPerIP)
	}
	cfg.Auth.Registration = "open"
	cfg.HTTP.MaxSessionsPerUser, cfg.HTTP.MaxSessionsPerIP = 0, 0
	ts := startServer(t, cfg)
	alice := ts.register(t, "alice", "secret1")
	for i := range 300 {
		if st, code := ts.dialStatus(t, alice); st != 0 {
			t.Fatalf("session %d with no caps = %d %q", i+1, st, code)
		}
	}
	cfg.HTTP.MaxSessionsPerIP = -1
	if err := cfg.Validate(); err == nil {
		t.Error("Validate accepted max_sessions_per_ip = -1")
	}
}
