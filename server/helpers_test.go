package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"mesh/server"
	"mesh/store"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// testServer is a real mesh server on 127.0.0.1:0 over a real SQLite file.
type testServer struct {
	URL   string
	Store *store.Store
	Cfg   server.Config
	Clock *clock
	Srv   *server.Server
	stop  func()
}

func testConfig(t testing.TB, dir string) server.Config {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.HTTP.DB = filepath.Join(dir, "mesh.db")
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Auth.BcryptCost = 4 // bcrypt.MinCost: tests check logic, the benchmark checks cost
	cfg.RTC.TURNListen = "127.0.0.1:0"
	return cfg
}

// startServer runs a server on cfg until the test ends (or stop is called).
// The store keeps the real time.
func startServer(t testing.TB, cfg server.Config) *testServer {
	t.Helper()
	return startServerClock(t, cfg, false)
}

// startServerClock is startServer; with oneClock the store's clock is the
// server's test clock too.
func startServerClock(t testing.TB, cfg server.Config, oneClock bool) *testServer {
	t.Helper()
	clk := &clock{t: time.Now()}
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	var opts store.Options
	if oneClock {
		opts.Now = cfg.Now
	}
	st, err := store.OpenWith(ctx, cfg.HTTP.DB, opts)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&tlogWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := server.New(cfg, st, log)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	ts := &testServer{URL: "http://" + ln.Addr().String(), Store: st, Cfg: cfg, Clock: clk, Srv: srv}
	ts.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			if err := st.Close(); err != nil {
				t.Errorf("store.Close: %v", err)
			}
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

type tlogWriter struct{ t testing.TB }

func (w *tlogWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(b, "\n")))
	return len(b), nil
}

// answer is one HTTP reply, its body decoded when it is JSON.
type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

func (a answer) errCode() string {
	var e struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(a.Body, &e) // a non-error body just has no code
	return e.Error.Code
}

func (a answer) errMessage() string {
	var e struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(a.Body, &e) // a non-error body just has no message
	return e.Error.Message
}

// do sends a request with a raw body and an optional bearer token.
func (ts *testServer) do(t testing.TB, method, path string, body []byte, token string) answer {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{Status: res.StatusCode, Header: res.Header, Body: b}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// auth registers or logs in and returns the token, failing the test on any other status than want.
func (ts *testServer) auth(t testing.TB, path string, body map[string]string, want int) string {
	t.Helper()
	a := ts.do(t, http.MethodPost, path, mustJSON(t, body), "")
	if a.Status != want {
		t.Fatalf("POST %s %v = %d %s, want %d", path, body, a.Status, a.Body, want)
	}
	var tok tokenAnswer
	if err := json.Unmarshal(a.Body, &tok); err != nil {
		t.Fatalf("decode token answer %s: %v", a.Body, err)
	}
	if tok.AccessToken == "" || tok.TokenType != "bearer" || tok.ExpiresIn <= 0 {
		t.Fatalf("token answer = %s, want access_token, token_type bearer, expires_in", a.Body)
	}
	return tok.AccessToken
}

func (ts *testServer) register(t testing.TB, user, pw string) string {
	t.Helper()
	return ts.auth(t, "/api/auth/register", map[string]string{"username": user, "password": pw}, http.StatusCreated)
}
