package server_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"mesh/protocol"
)

// A password over bcrypt's 72 bytes must not log in as its first 72 bytes.
func TestLoginRefusesPasswordPastBcryptLimit(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	pw := strings.Repeat("p", 72)
	ts.register(t, "alice", pw)
	ts.auth(t, "/api/auth/login", map[string]string{"username": "alice", "password": pw}, http.StatusOK)

	long := ts.do(t, http.MethodPost, "/api/auth/login", mustJSON(t, map[string]string{"username": "alice", "password": pw + "x"}), "")
	wrong := ts.do(t, http.MethodPost, "/api/auth/login", mustJSON(t, map[string]string{"username": "alice", "password": "wrong123"}), "")
	if long.Status != http.StatusUnauthorized || long.errCode() != "invalid_credentials" || !bytes.Equal(long.Body, wrong.Body) {
		t.Fatalf("login with the 72-byte password plus one byte = %d %s; want the same 401 as a wrong pair (%s)", long.Status, long.Body, wrong.Body)
	}
}

// Bodies of at most 64 KiB: 65,536 bytes is in, 65,537 is out.
func TestBodyLimitIsInclusive(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	body := func(n int) []byte {
		b := []byte(`{"username":"nobody","password":"wrong123"}`)
		return append(b, bytes.Repeat([]byte(" "), n-len(b))...) // JSON allows trailing white space
	}
	if a := ts.do(t, http.MethodPost, "/api/auth/login", body(64<<10), ""); a.Status != http.StatusUnauthorized {
		t.Errorf("login with a body of exactly 65536 bytes = %d %s, want 401 (the body is within the limit)", a.Status, a.Body)
	}
	if a := ts.do(t, http.MethodPost, "/api/auth/login", body(64<<10+1), ""); a.Status != http.StatusRequestEntityTooLarge || a.errCode() != "body_too_large" {
		t.Errorf("login with a body of 65537 bytes = %d %s, want 413 body_too_large", a.Status, a.Body)
	}
}

// Tokens in URLs end up in logs and Referer headers: only /ws takes one,
// since browsers cannot set a header on a WebSocket.
func TestTokenInQueryOnlyForWebSocket(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	tok := ts.register(t, "alice", "secret1")
	for _, path := range []string{"/api/me?token=" + tok, "/api/rooms?token=" + tok, "/api/devices?token=" + tok} {
		if a := ts.do(t, http.MethodGet, path, nil, ""); a.Status != http.StatusUnauthorized {
			t.Errorf("GET %s = %d %s, want 401", strings.Replace(path, tok, "TOKEN", 1), a.Status, a.Body)
		} else if !strings.Contains(a.errMessage(), "Authorization") {
			t.Errorf("GET with ?token= says %q; want it to name the Authorization header", a.errMessage())
		}
	}
	c := ts.dial(t, tok) // ?token= on /ws
	c.send(protocol.TypeSystemHello, protocol.Hello{})
	c.waitFor(protocol.TypeSystemWelcome)
}
