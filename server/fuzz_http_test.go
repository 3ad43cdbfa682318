package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"mesh/server"
	"mesh/store"
)

// fuzzRoutes are the endpoints that decode a JSON body; room 1 is the
// fuzzing user's, and "other" is a second user.
var fuzzRoutes = []struct{ method, path string }{
	{http.MethodPost, "/api/auth/register"},
	{http.MethodPost, "/api/auth/login"},
	{http.MethodPost, "/api/rooms"},
	{http.MethodPost, "/api/rooms/direct"},
	{http.MethodPost, "/api/rooms/1/members"},
	{http.MethodPut, "/api/rooms/1/mute"},
	{http.MethodPost, "/api/devices"},
	{http.MethodPost, "/api/p2p/sessions"},
	{http.MethodPut, "/api/notify"},
}

// FuzzHTTPBody sends arbitrary bodies to every endpoint that decodes one
// (route picks it, modulo their number) on one real server and database
// per worker. No body may cause a 5xx; every refusal is
// {"error":{"code","message"}} with a snake_case code and a message; every
// success is JSON; and afterwards the server still answers /healthz and an
// authenticated GET /api/me. There is no REST endpoint that posts chat:
// chat goes over the WebSocket (FuzzWSFrame).
func FuzzHTTPBody(f *testing.F) {
	h, token, clk := fuzzHTTPServer(f)
	for i := range fuzzRoutes {
		for _, body := range []string{
			``, `{}`, `[]`, `"x"`, `null`, `{"a":1} {}`, `{"username":"bob"`, `{"username":42,"password":"secret1"}`,
			`{"username":"bob2","password":"secret1"}`, `{"username":"fuzzer","password":"secret1"}`,
			`{"username":"bob\u0000x","password":"secret1","invite_code":"x"}`,
			`{"name":"room-a","visibility":"private"}`, `{"name":" \u00e9\ud83d\ude00 ","visibility":"secret"}`,
			`{"name":"\ud800"}`, `{"username":"other"}`, `{"username":"fuzzer"}`, `{"muted":true}`, `{"muted":"yes"}`,
			`{"device_id":"laptop","fingerprint":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}`,
			`{"device_id":"a/b"}`, `{"kind":"file","target_device_id":"laptop","initiator_device_id":"desk","ttl":60}`,
			`{"kind":"terminal","share_id":"sh-1"}`, `{"gotify_url":"https://push.example","gotify_token":"Aabc","kinds":{"dm":false}}`,
			`{"gotify_url":"https://push.example/?token=x"}`, `{"kinds":{"spam":true}}`, `{"gotify_url":""}`,
		} {
			f.Add(uint8(i), []byte(body))
		}
	}
	var n int // inputs so far in this worker
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		// Login throttling remembers failures for 15 minutes, per username
		// and per address; a clock that moves on and 64 client addresses
		// keep it from answering every login with 429, and its memory small.
		if n++; n%1024 == 0 {
			clk.Advance(16 * time.Minute)
		}
		addr := fmt.Sprintf("10.0.0.%d:40000", n%64)
		tok := token
		if strings.HasPrefix(r.path, "/api/auth/") {
			tok = "" // as a browser logs in
		}
		rec := serveOne(h, r.method, r.path, body, tok, addr)
		checkAnswer(t, r.method+" "+r.path, body, rec)
		if rec := serveOne(h, http.MethodGet, "/healthz", nil, "", addr); rec.Code != http.StatusOK || rec.Body.String() != "ok" {
			t.Fatalf("after %s %s %q: /healthz = %d %q", r.method, r.path, body, rec.Code, rec.Body)
		}
		if rec := serveOne(h, http.MethodGet, "/api/me", nil, token, addr); rec.Code != http.StatusOK {
			t.Fatalf("after %s %s %q: /api/me = %d %q", r.method, r.path, body, rec.Code, rec.Body)
		}
	})
}

// fuzzHTTPServer builds a server with open registration and a low bcrypt
// cost over a real database in a temporary directory, without a listener:
// requests go straight to its Handler. It registers "fuzzer" (who owns room
// 1) and "other", and returns the handler, fuzzer's token (good for years)
// and the server's clock.
func fuzzHTTPServer(f testing.TB) (http.Handler, string, *clock) {
	clk := &clock{t: time.Now()}
	cfg := testConfig(f, f.TempDir())
	cfg.Auth.Registration = "open"
	cfg.Auth.TokenTTL = 10 * 365 * 24 * time.Hour // the clock moves days while fuzzing
	cfg.Now = clk.Now
	cfg.RTC.TURN = false // only Serve would close its port, and the handler is served without it
	st, err := store.Open(context.Background(), cfg.HTTP.DB)
	if err != nil {
		f.Fatalf("store.Open: %v", err)
	}
	f.Cleanup(func() {
		if err := st.Close(); err != nil {
			f.Errorf("store.Close: %v", err)
		}
	})
	srv, err := server.New(cfg, st, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatalf("server.New: %v", err)
	}
	h := srv.Handler()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	for _, name := range []string{"other", "fuzzer"} {
		rec := serveOne(h, http.MethodPost, "/api/auth/register", []byte(`{"username":"`+name+`","password":"secret1"}`), "", "192.0.2.1:1")
		if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &tok) != nil {
			f.Fatalf("register %s = %d %s", name, rec.Code, rec.Body)
		}
	}
	if rec := serveOne(h, http.MethodPost, "/api/rooms", []byte(`{"name":"general"}`), tok.AccessToken, "192.0.2.1:1"); rec.Code != http.StatusCreated {
		f.Fatalf("create room = %d %s", rec.Code, rec.Body)
	}
	return h, tok.AccessToken, clk
}

// serveOne runs one request through h and returns the recorded answer.
func serveOne(h http.Handler, method, path string, body []byte, token, addr string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.RemoteAddr = addr
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

var errorCode = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// checkAnswer checks one answer to a fuzzed body keeps the API's contract.
func checkAnswer(t *testing.T, what string, body []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	switch {
	case rec.Code >= 500:
		t.Fatalf("%s %q = %d %s; a body must never cause a server error", what, body, rec.Code, rec.Body)
	case rec.Code >= 200 && rec.Code < 300:
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %q = %d with a body that is not JSON: %q", what, body, rec.Code, rec.Body)
		}
		return
	}
	var e struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	err := dec.Decode(&e)
	if err != nil || e.Error == nil || !errorCode.MatchString(e.Error.Code) || e.Error.Message == "" {
		t.Fatalf("%s %q = %d %q (%v); want {\"error\":{\"code\",\"message\"}}", what, body, rec.Code, rec.Body, err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" && ct != "application/json; charset=UTF-8" {
		t.Fatalf("%s %q = %d with Content-Type %q", what, body, rec.Code, ct)
	}
}
