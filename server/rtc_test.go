package server_test

import (
	"strings"
	"time"

	"mesh/server"
	"os"
	"path/filepath"
	"testing"
)

func TestRTCConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	pass := filepath.Join(dir, "turn.pass")
	if err := os.WriteFile(pass, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.RTC.ICEServers = []string{"stun:stun.example.org:3478", "turn:turn.example.org:3478?transport=udp"}
	cfg.RTC.TURNUsername, cfg.RTC.TURNPassFile = "mesh", pass
	cfg.RTC.TURN = false // the admin's own coturn instead of mesh's
	ts := startServer(t, cfg)
	tok := ts.register(t, "alice", "secret1")
	if a := ts.do(t, "GET", "/api/rtc/config", nil, ""); a.Status != 401 {
		t.Errorf("without a token: %d, want 401", a.Status)
	}
	a := ts.do(t, "GET", "/api/rtc/config", nil, tok)
	want := `{"ice_servers":[{"urls":["stun:stun.example.org:3478"]},{"urls":["turn:turn.example.org:3478?transport=udp"],"username":"mesh","credential":"s3cret"}],` +
		`"ice_transport_policy":"all","turn":{"enabled":false,"allocations":0,"bytes_relayed":0}}`
	if a.Status != 200 || string(a.Body) != want+"\n" {
		t.Errorf("GET /api/rtc/config = %d %s, want 200 %s", a.Status, a.Body, want)
	}
}

// TestRTCConfigTURN: with the embedded TURN server (the default), a user
// gets mesh's stun: and turn: URLs (UDP and TCP) on the public address and
// a credential of their own that expires after turn_credential_ttl; only an
// admin sees the server's state and its self-check; relay_only sets the
// policy browsers follow.
func TestRTCConfigTURN(t *testing.T) {
	t.Parallel()
	ts := turnServer(t, func(c *server.Config) {
		c.HTTP.PublicURL = "http://127.0.0.1:1" // the URLs' host; the port is the TURN server's
		c.RTC.RelayOnly = true
	})
	admin, bob := ts.register(t, "root", "secret1"), ts.register(t, "bob", "secret1")
	r := ts.rtc(t, bob)
	if r.TURN != nil {
		t.Errorf("bob, not an admin, sees the TURN state %+v", r.TURN)
	}
	if r.ICETransportPolicy != "relay" {
		t.Errorf("ice_transport_policy %q with relay_only, want relay", r.ICETransportPolicy)
	}
	if len(r.ICEServers) != 2 || len(r.ICEServers[0].URLs) != 1 || !strings.HasPrefix(r.ICEServers[0].URLs[0], "stun:127.0.0.1:") ||
		len(r.ICEServers[1].URLs) != 2 || !strings.HasSuffix(r.ICEServers[1].URLs[1], "?transport=tcp") {
		t.Fatalf("ice_servers %+v, want mesh's stun: and turn: (udp, tcp) URLs", r.ICEServers)
	}
	if u := r.ICEServers[1].Username; !strings.HasSuffix(u, ":bob") || r.ICEServers[1].Credential == "" {
		t.Errorf("TURN username %q, want EXPIRY:bob with a credential", u)
	}
	if want := ts.Clock.Now().Add(time.Hour); r.ExpiresAt == nil || r.ExpiresAt.After(want) || r.ExpiresAt.Before(want.Add(-time.Second)) {
		t.Errorf("expires_at %v, want about %v", r.ExpiresAt, want)
	}
	a := ts.rtc(t, admin)
	if a.TURN == nil || !a.TURN.Enabled || a.TURN.PublicIP != "127.0.0.1" || a.TURN.Check == nil || !a.TURN.Check.OK {
		t.Errorf("the admin sees turn %+v, want it enabled on 127.0.0.1 with a passed self-check", a.TURN)
	}
}
