package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"mesh/server"
)

type me struct {
	ID        int64     `json:"id"`
	Username  string    `json:"username"`
	IsAdmin   bool      `json:"is_admin"`
	CreatedAt time.Time `json:"created_at"`
}

func (ts *testServer) me(t *testing.T, token string) (me, answer) {
	t.Helper()
	a := ts.do(t, http.MethodGet, "/api/me", nil, token)
	var m me
	if a.Status == http.StatusOK {
		if err := json.Unmarshal(a.Body, &m); err != nil {
			t.Fatalf("decode /api/me %s: %v", a.Body, err)
		}
	}
	return m, a
}

func TestRegisterLoginMe(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t, t.TempDir()))
	// The seed's check, as written.
	tok := ts.register(t, "test", "test123")
	m, a := ts.me(t, tok)
	if a.Status != http.StatusOK || m.Username != "test" || !m.IsAdmin || m.ID == 0 || m.CreatedAt.IsZero() {
		t.Fatalf("/api/me = %d %s, want test as admin", a.Status, a.Body)
	}
	tok2 := ts.auth(t, "/api/auth/login", map[string]string{"username": "TEST", "password": "test123"}, http.StatusOK)
	if m2, _ := ts.me(t, tok2); m2.ID != m.ID {
		t.Fatalf("login as TEST gave user %d, want %d (names are case-insensitive)", m2.ID, m.ID)
	}
	// Wrong password and unknown user give the same answer.
	wrong := ts.do(t, http.MethodPost, "/api/auth/login", []byte(`{"username":"test","password":"nope123"}`), "")
	ghost := ts.do(t, http.MethodPost, "/api/auth/login", []byte(`{"username":"ghost","password":"nope123"}`), "")
	if wrong.Status != 401 || wrong.errCode() != "invalid_credentials" || string(wrong.Body) != string(ghost.Body) || ghost.Status != 401 {
		t.Fatalf("wrong password = %d %s, unknown user = %d %s; want identical 401 invalid_credentials",
			wrong.Status, wrong.Body, ghost.Status, ghost.Body)
	}
}

func TestRegistrationPolicies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		policy   string
		invite   bool // give a fresh invite code
		code     string
		want     int
		wantCode string
	}{
		{"invite", false, "", 403, "invite_required"},
		{"invite", false, "deadbeef", 403, "invite_invalid"},
		{"invite", true, "", 201, ""},
		{"open", false, "", 201, ""},
		{"closed", true, "", 403, "registration_closed"},
	}
	for _, tc := range tests {
		t.Run(tc.policy+"/"+strconv.FormatBool(tc.invite)+tc.code, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, t.TempDir())
			cfg.Auth.Registration = tc.policy
			ts := startServer(t, cfg)
			ts.register(t, "admin", "secret1") // the first user is always free
			code := tc.code
			if tc.invite {
				var err error
				if code, err = server.CreateInvite(context.Background(), ts.Store, cfg.Auth); err != nil {
					t.Fatal(err)
				}
			}
			body := mustJSON(t, map[string]string{"username": "bob", "password": "secret1", "invite_code": code})
			a := ts.do(t, http.MethodPost, "/api/auth/register", body, "")
			if a.Status != tc.want || a.errCode() != tc.wantCode {
				t.Fatalf("register bob = %d %s, want %d %q", a.Status, a.Body, tc.want, tc.wantCode)
			}
			if tc.want == 201 {
				if a := ts.do(t, http.MethodPost, "/api/auth/register", body, ""); a.Status != 409 && a.Status != 403 {
					t.Fatalf("second use of the same body = %d %s, want 409 or 403", a.Status, a.Body)
				}
			}
		})
	}
}

func TestInviteIsSingleUse(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, t.TempDir())
	ts := startServer(t, cfg)
	ts.register(t, "admin", "secret1")
	code, err := server.CreateInvite(context.Background(), ts.Store, cfg.Auth)
	if err != nil {
		t.Fatal(err)
	}
	ts.auth(t, "/api/auth/register", map[string]string{"username": "bob", "password": "secret1", "invite_code": code}, 201)
	a := ts.do(t, http.MethodPost, "/api/auth/register",
		mustJSON(t, map[string]string{"username": "carol", "password": "secret1", "invite_code": code}), "")
	if a.Status != 403 || a.errCode() != "invite_invalid" {
		t.Fatalf("reused invite = %d %s, want 403 invite_invalid", a.Status, a.Body)
	}
}

func TestRestartKeepsUsersAndTokens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ts := startServer(t, testConfig(t, dir))
	tok := ts.register(t, "alice", "secret1")
	ts.stop()

	ts2 := startServer(t, testConfig(t, dir))
	if m, a := ts2.me(t, tok); a.Status != 200 || m.Username != "alice" {
		t.Fatalf("token from before restart: /api/me = %d %s", a.Status, a.Body)
	}
	ts2.auth(t, "/api/auth/login", map[string]string{"username": "alice", "password": "secret1"}, 200)
}

func TestBadTokens(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t, t.TempDir()))
	good := ts.register(t, "alice", "secret1")
	sub := func() string { m, _ := ts.me(t, good); return strconv.FormatInt(m.ID, 10) }()
	now := time.Now()
	claims := func(exp time.Time) jwt.RegisteredClaims {
		return jwt.RegisteredClaims{Issuer: "mesh", Subject: sub, IssuedAt: jwt.NewNumericDate(now.Add(-time.Hour)), ExpiresAt: jwt.NewNumericDate(exp)}
	}
	sign := func(m jwt.SigningMethod, key any, c jwt.Claims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + strings.TrimRight(parts[1], "=") + "x." + parts[2]
	none := sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(now.Add(time.Hour)))
	otherKey := sign(jwt.SigningMethodHS256, []byte("another key entirely, 32 bytes!!"), claims(now.Add(time.Hour)))
	tests := map[string]string{
		"tampered payload":   tampered,
		"alg none":           none,
		"another key":        otherKey,
		"garbage":            "not.a.jwt",
		"signature stripped": parts[0] + "." + parts[1] + ".",
	}
	for name, tok := range tests {
		if _, a := ts.me(t, tok); a.Status != 401 || a.errCode() != "invalid_token" {
			t.Errorf("%s: /api/me = %d %s, want 401 invalid_token", name, a.Status, a.Body)
		}
	}
	if _, a := ts.me(t, ""); a.Status != 401 || a.errCode() != "unauthorized" {
		t.Errorf("no token: /api/me = %d %s, want 401 unauthorized", a.Status, a.Body)
	}
	// Expiry: move the server's clock past the token's lifetime.
	ts.Clock.Advance(ts.Cfg.Auth.TokenTTL + time.Minute)
	if _, a := ts.me(t, good); a.Status != 401 || a.errCode() != "invalid_token" {
		t.Errorf("expired: /api/me = %d %s, want 401 invalid_token", a.Status, a.Body)
	}
}

func TestLoginThrottling(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, t.TempDir())
	cfg.Auth.Registration = "open"
	ts := startServer(t, cfg)
	ts.register(t, "alice", "secret1")
	bad := []byte(`{"username":"alice","password":"wrong-pw"}`)
	for i := range 10 {
		if a := ts.do(t, http.MethodPost, "/api/auth/login", bad, ""); a.Status != 401 {
			t.Fatalf("failure %d: %d %s, want 401", i+1, a.Status, a.Body)
		}
	}
	// Blocked now, even with the right password.
	a := ts.do(t, http.MethodPost, "/api/auth/login", []byte(`{"username":"alice","password":"secret1"}`), "")
	if a.Status != 429 || a.errCode() != "rate_limited" {
		t.Fatalf("11th attempt = %d %s, want 429 rate_limited", a.Status, a.Body)
	}
	if ra, err := strconv.Atoi(a.Header.Get("Retry-After")); err != nil || ra <= 0 || ra > 900 {
		t.Fatalf("Retry-After = %q, want 1..900 seconds", a.Header.Get("Retry-After"))
	}
	ts.Clock.Advance(15*time.Minute + time.Second)
	ts.auth(t, "/api/auth/login", map[string]string{"username": "alice", "password": "secret1"}, 200)

	// Per IP: 30 failures across many names block the address.
	for i := range 30 {
		body := mustJSON(t, map[string]string{"username": "user" + strconv.Itoa(i), "password": "wrong-pw"})
		if a := ts.do(t, http.MethodPost, "/api/auth/login", body, ""); a.Status != 401 {
			t.Fatalf("ip failure %d: %d %s, want 401", i+1, a.Status, a.Body)
		}
	}
	if a := ts.do(t, http.MethodPost, "/api/auth/login", []byte(`{"username":"alice","password":"secret1"}`), ""); a.Status != 429 {
		t.Fatalf("after 30 failures from one IP: %d %s, want 429", a.Status, a.Body)
	}
}
