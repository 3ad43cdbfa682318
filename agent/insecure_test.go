package agent

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestInsecureServerURL: cleartext only to this machine, or with insecure.
func TestInsecureServerURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		server   string
		insecure bool
		want     string // the WebSocket URL's prefix; "" = refused with ErrCleartext
	}{
		{"http://example.com", false, ""},
		{"http://10.0.0.5:8000", false, ""},
		{"http://[fe80::1]:8000", false, ""},
		{"http://localhost.example.com:8000", false, ""},
		{"http://example.com", true, "ws://example.com/ws?token="},
		{"http://10.0.0.5:8000", true, "ws://10.0.0.5:8000/ws?token="},
		{"http://127.0.0.1:8000", false, "ws://127.0.0.1:8000/ws?token="},
		{"http://127.1.2.3:8000", false, "ws://127.1.2.3:8000/ws?token="},
		{"http://[::1]:8000", false, "ws://[::1]:8000/ws?token="},
		{"http://localhost:8000", false, "ws://localhost:8000/ws?token="},
		{"http://LOCALHOST:8000/mesh/", false, "ws://LOCALHOST:8000/mesh/ws?token="},
		{"https://example.com", false, "wss://example.com/ws?token="},
		{"https://10.0.0.5:8443", false, "wss://10.0.0.5:8443/ws?token="},
	} {
		got, err := wsURL(tc.server, "mdt_x", tc.insecure)
		switch {
		case tc.want == "" && !errors.Is(err, ErrCleartext):
			t.Errorf("wsURL(%q, insecure %t) = %q, %v; want ErrCleartext", tc.server, tc.insecure, got, err)
		case tc.want == "" && (!strings.Contains(err.Error(), "https://") || !strings.Contains(err.Error(), "--insecure")):
			t.Errorf("wsURL(%q) error %q does not say what to do (https:// or --insecure)", tc.server, err)
		case tc.want != "" && (err != nil || !strings.HasPrefix(got, tc.want)):
			t.Errorf("wsURL(%q, insecure %t) = %q, %v; want %s…", tc.server, tc.insecure, got, err, tc.want)
		}
		cfg := Config{Server: tc.server, DeviceID: "d", DeviceToken: "mdt_x", QUICListen: "0.0.0.0:5000", Insecure: tc.insecure}
		if err := cfg.Validate(); (err == nil) != (tc.want != "") {
			t.Errorf("Config{Server: %q, Insecure: %t}.Validate() = %v", tc.server, tc.insecure, err)
		}
	}
	for _, bad := range []string{"ftp://example.com", "example.com:8000", "https://"} {
		if _, err := wsURL(bad, "t", true); err == nil || errors.Is(err, ErrCleartext) {
			t.Errorf("wsURL(%q) = %v, want a malformed-URL error", bad, err)
		}
	}
}

// TestLoginRefusesCleartext: login stops before sending the password (and
// before making a key) when the server is cleartext on another machine.
func TestLoginRefusesCleartext(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := Login(context.Background(), LoginOptions{Server: "http://192.0.2.1:8000", Username: "alice", Password: "secret1", Dir: dir}, DefaultConfig())
	if !errors.Is(err, ErrCleartext) {
		t.Fatalf("Login over http to another machine = %v, want ErrCleartext", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) > 0 {
		t.Errorf("refused login left files %v", m)
	}
}

// TestClientRefusesDowngrade: an https server that redirects to http://
// does not get the request repeated in clear.
func TestClientRefusesDowngrade(t *testing.T) {
	t.Parallel()
	var cleartext atomic.Bool
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { cleartext.Store(true) }))
	defer plain.Close()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c := newClient(srv.URL, "")
	c.http.Transport = srv.Client().Transport // trusts the test certificate
	_, err := c.login(context.Background(), "alice", "secret1")
	if !errors.Is(err, ErrCleartext) || cleartext.Load() {
		t.Fatalf("login redirected to http:// = %v (reached the http server: %t), want ErrCleartext", err, cleartext.Load())
	}
}

// TestInsecureSaved: insecure survives Save and a reload, so the daemon
// honours what login was told.
func TestInsecureSaved(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "agent.toml")
	if err := Save(path, Config{Server: "http://10.0.0.5:8000", QUICListen: "0.0.0.0:5000", Insecure: true}); err != nil {
		t.Fatal(err)
	}
	var f struct {
		Agent Config `toml:"agent"`
	}
	if _, err := toml.DecodeFile(path, &f); err != nil {
		t.Fatal(err)
	}
	if !f.Agent.Insecure {
		t.Fatalf("reloaded %+v, want insecure = true", f.Agent)
	}
}
