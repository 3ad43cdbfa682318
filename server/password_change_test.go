package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"mesh/protocol"
	"mesh/store"
)

// After `mesh user passwd` (another process writing the database), every
// earlier token is refused and live sessions close, agents' included.
func TestPasswordChangeByCLIEndsEveryEarlierToken(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	tok := ts.register(t, "alice", "secret1")
	other := ts.auth(t, "/api/auth/login", map[string]string{"username": "alice", "password": "secret1"}, http.StatusOK)
	dev := ts.enroll(t, tok, "laptop", fp('a'))
	ts.register(t, "bob", "secret2") // bob's tokens must survive
	bobTok := ts.auth(t, "/api/auth/login", map[string]string{"username": "bob", "password": "secret2"}, http.StatusOK)
	browser, agent, bobWS := ts.dial(t, other), ts.agent(t, dev, 5000, fp('a')), ts.dial(t, bobTok)

	// The admin CLI opens the database itself, as `mesh user passwd` does.
	cli, err := store.Open(context.Background(), ts.Cfg.HTTP.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte("changed1"), bcrypt.MinCost)
	start := time.Now()
	if err := cli.SetPassword(context.Background(), "alice", string(hash)); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*wsClient{"browser": browser, "agent": agent} {
		if err := c.waitClosed(); err == nil {
			t.Errorf("%s session: closed without an error", name)
		}
		t.Logf("%s session closed %s after the change", name, time.Since(start).Round(time.Millisecond))
	}
	for _, old := range []string{tok, other} {
		if _, a := ts.me(t, old); a.Status != http.StatusUnauthorized || a.errCode() != "invalid_token" {
			t.Errorf("GET /api/me with a token from before the change = %d %s, want 401 invalid_token", a.Status, a.Body)
		}
	}
	if a := ts.do(t, http.MethodPost, "/api/p2p/sessions", []byte(`{"kind":"file","target_device_id":"laptop"}`), dev); a.Status != http.StatusUnauthorized {
		t.Errorf("device token from before the change = %d %s, want 401", a.Status, a.Body)
	}
	if _, a := ts.me(t, bobTok); a.Status != http.StatusOK {
		t.Errorf("bob's token after alice's change = %d, want 200", a.Status)
	}
	select {
	case <-bobWS.closed:
		t.Errorf("bob's session closed by alice's password change: %v", bobWS.cerr)
	default:
	}
	fresh := ts.auth(t, "/api/auth/login", map[string]string{"username": "alice", "password": "changed1"}, http.StatusOK)
	if _, a := ts.me(t, fresh); a.Status != http.StatusOK {
		t.Errorf("a token issued after the change = %d %s, want 200", a.Status, a.Body)
	}
	// Logging the device in again gives it a working token.
	dev2 := ts.enroll(t, fresh, "laptop", fp('a'))
	ts.agent(t, dev2, 5000, fp('a'))
	if l := ts.devices(t, fresh); len(l.Devices) != 1 || l.Devices[0].DeviceID != "laptop" {
		t.Errorf("devices after the change = %+v, want laptop still enrolled", l.Devices)
	}
}

// POST /api/me/password ends every other credential and hands the caller a new token.
func TestPasswordChangeByAPI(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	tok := ts.register(t, "alice", "secret1")
	other := ts.auth(t, "/api/auth/login", map[string]string{"username": "alice", "password": "secret1"}, http.StatusOK)
	ws := ts.dial(t, other)
	ws.send(protocol.TypeSystemHello, protocol.Hello{})
	ws.waitFor(protocol.TypeSystemWelcome)

	if a := ts.do(t, http.MethodPost, "/api/me/password", []byte(`{"current":"wrong12","new":"changed1"}`), tok); a.Status != http.StatusForbidden || a.errCode() != "invalid_credentials" {
		t.Fatalf("change with a wrong current password = %d %s, want 403 invalid_credentials", a.Status, a.Body)
	}
	if a := ts.do(t, http.MethodPost, "/api/me/password", []byte(`{"current":"secret1","new":"short"}`), tok); a.Status != http.StatusBadRequest || a.errCode() != "invalid_password" {
		t.Fatalf("change to a 5-byte password = %d %s, want 400 invalid_password", a.Status, a.Body)
	}
	a := ts.do(t, http.MethodPost, "/api/me/password", []byte(`{"current":"secret1","new":"changed1"}`), tok)
	var ans tokenAnswer
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &ans) != nil || ans.AccessToken == "" {
		t.Fatalf("change = %d %s, want 200 with a new token", a.Status, a.Body)
	}
	if err := ws.waitClosed(); err == nil {
		t.Error("the other session closed without an error")
	}
	for _, old := range []string{tok, other} {
		if _, a := ts.me(t, old); a.Status != http.StatusUnauthorized {
			t.Errorf("an earlier token after the change = %d, want 401", a.Status)
		}
	}
	if _, a := ts.me(t, ans.AccessToken); a.Status != http.StatusOK {
		t.Errorf("the token of the change's answer = %d %s, want 200", a.Status, a.Body)
	}
	ts.auth(t, "/api/auth/login", map[string]string{"username": "alice", "password": "changed1"}, http.StatusOK)
}
