package server_test

import (
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
	ts := startServer(t, cfg)
	tok := ts.register(t, "alice", "secret1")
	if a := ts.do(t, "GET", "/api/rtc/config", nil, ""); a.Status != 401 {
		t.Errorf("without a token: %d, want 401", a.Status)
	}
	a := ts.do(t, "GET", "/api/rtc/config", nil, tok)
	want := `{"ice_servers":[{"urls":["stun:stun.example.org:3478"]},{"urls":["turn:turn.example.org:3478?transport=udp"],"username":"mesh","credential":"s3cret"}]}`
	if a.Status != 200 || string(a.Body) != want+"\n" {
		t.Errorf("GET /api/rtc/config = %d %s, want 200 %s", a.Status, a.Body, want)
	}
}
