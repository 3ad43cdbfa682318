package server_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSecurityHeaders: the web app, the API (answers and errors alike)
// carry the security headers; HSTS only over TLS (TestTLSServe).
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	tok := ts.register(t, "alice", "secret1")
	host := strings.TrimPrefix(ts.URL, "http://")
	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/", "", http.StatusOK},
		{"/js/app.js", "", http.StatusOK},
		{"/api/me", tok, http.StatusOK},
		{"/api/me", "", http.StatusUnauthorized},
		{"/api/nope", tok, http.StatusNotFound},
		{"/healthz", "", http.StatusOK},
	} {
		a := ts.do(t, http.MethodGet, tc.path, nil, tc.token)
		if a.Status != tc.status {
			t.Fatalf("GET %s = %d, want %d", tc.path, a.Status, tc.status)
		}
		for name, want := range map[string]string{
			"X-Content-Type-Options": "nosniff",
			"X-Frame-Options":        "DENY",
			"Referrer-Policy":        "no-referrer",
		} {
			if got := a.Header.Get(name); got != want {
				t.Errorf("GET %s: %s = %q, want %q", tc.path, name, got, want)
			}
		}
		if got := a.Header.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("GET %s over plain HTTP: Strict-Transport-Security = %q, want none", tc.path, got)
		}
		checkCSP(t, tc.path, a.Header.Get("Content-Security-Policy"), host)
	}
}

// checkCSP parses policy and checks that it runs no inline or foreign
// script and allows the WebSocket to host.
func checkCSP(t *testing.T, path, policy, host string) {
	t.Helper()
	dirs := map[string][]string{}
	for _, d := range strings.Split(policy, ";") {
		if f := strings.Fields(d); len(f) > 0 {
			dirs[f[0]] = f[1:]
		}
	}
	for name, want := range map[string]string{
		"default-src": "'self'", "script-src": "'self'", "frame-ancestors": "'none'",
		"base-uri": "'none'", "object-src": "'none'", "form-action": "'self'",
	} {
		if got := strings.Join(dirs[name], " "); got != want {
			t.Errorf("GET %s: CSP %s = %q, want %q (policy %q)", path, name, got, want, policy)
		}
	}
	connect := strings.Join(dirs["connect-src"], " ")
	for _, want := range []string{"'self'", "ws://" + host, "wss://" + host} {
		if !strings.Contains(" "+connect+" ", " "+want+" ") {
			t.Errorf("GET %s: CSP connect-src %q lacks %s", path, connect, want)
		}
	}
}

// TestCSPHostNotReflected: a Host header that is not a plain host[:port]
// is not copied into the policy.
func TestCSPHostNotReflected(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x;script-src\r\nConnection: close\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if csp := res.Header.Get("Content-Security-Policy"); csp == "" || strings.Contains(csp, "x;") {
		t.Fatalf("CSP for Host x;script-src = %q, want the policy without the host", csp)
	}
}

// TestWebNoInlineScript keeps the web app working under script-src 'self':
// no <script> without src, no on*= handler attributes, no javascript: URLs.
func TestWebNoInlineScript(t *testing.T) {
	t.Parallel()
	pages, err := filepath.Glob(filepath.Join("web", "*.html"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("no web/*.html: %v", err)
	}
	scriptTag := regexp.MustCompile(`(?i)<script\b[^>]*>`)
	handler := regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`)
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range scriptTag.FindAllString(string(b), -1) {
			if !strings.Contains(strings.ToLower(tag), " src=") {
				t.Errorf("%s: inline script %s; move it to a file under web/js", p, tag)
			}
		}
		if m := handler.FindString(string(b)); m != "" {
			t.Errorf("%s: inline event handler in %q; attach it from a script file", p, m)
		}
		if strings.Contains(strings.ToLower(string(b)), "javascript:") {
			t.Errorf("%s: a javascript: URL; CSP blocks it", p)
		}
	}
}
