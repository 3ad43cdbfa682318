package server_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// TestBadInputs throws malformed, hostile and oversized requests at a live
// server; each gets its status and error code, and the server stays healthy.
func TestBadInputs(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, t.TempDir())
	cfg.Auth.Registration = "open"
	ts := startServer(t, cfg)
	tok := ts.register(t, "admin", "secret1")
	reg, login := "/api/auth/register", "/api/auth/login"
	huge := []byte(`{"username":"` + strings.Repeat("a", 70<<10) + `","password":"secret1"}`)
	tests := []struct {
		name         string
		method, path string
		body         string
		raw          []byte
		token        string
		want         int
		code         string
	}{
		{"empty body", "POST", reg, "", nil, "", 400, "invalid_json"},
		{"not json", "POST", reg, "username=bob&password=x", nil, "", 400, "invalid_json"},
		{"truncated json", "POST", reg, `{"username":"bob"`, nil, "", 400, "invalid_json"},
		{"json array", "POST", reg, `["bob","secret1"]`, nil, "", 400, "invalid_json"},
		{"json string", "POST", reg, `"bob"`, nil, "", 400, "invalid_json"},
		{"trailing data", "POST", reg, `{"username":"bob","password":"secret1"} {}`, nil, "", 400, "invalid_json"},
		{"missing username", "POST", reg, `{"password":"secret1"}`, nil, "", 400, "missing_field"},
		{"missing password", "POST", reg, `{"username":"bob"}`, nil, "", 400, "missing_field"},
		{"username a number", "POST", reg, `{"username":42,"password":"secret1"}`, nil, "", 400, "invalid_field"},
		{"password an object", "POST", reg, `{"username":"bob","password":{"x":1}}`, nil, "", 400, "invalid_field"},
		{"username null", "POST", reg, `{"username":null,"password":"secret1"}`, nil, "", 400, "missing_field"},
		{"username too short", "POST", reg, `{"username":"bo","password":"secret1"}`, nil, "", 400, "invalid_username"},
		{"username too long", "POST", reg, `{"username":"` + strings.Repeat("b", 33) + `","password":"secret1"}`, nil, "", 400, "invalid_username"},
		{"unicode username", "POST", reg, `{"username":"bøb","password":"secret1"}`, nil, "", 400, "invalid_username"},
		{"homoglyph username", "POST", reg, `{"username":"аdmin","password":"secret1"}`, nil, "", 400, "invalid_username"},
		{"sql in username", "POST", reg, `{"username":"bob'; DROP TABLE users;--","password":"secret1"}`, nil, "", 400, "invalid_username"},
		{"space in username", "POST", reg, `{"username":"bob smith","password":"secret1"}`, nil, "", 400, "invalid_username"},
		{"NUL in username", "POST", reg, `{"username":"bob\u0000x","password":"secret1"}`, nil, "", 400, "invalid_username"},
		{"password too short", "POST", reg, `{"username":"bob","password":"12345"}`, nil, "", 400, "invalid_password"},
		{"password over 72 bytes", "POST", reg, `{"username":"bob","password":"` + strings.Repeat("p", 73) + `"}`, nil, "", 400, "invalid_password"},
		{"username taken (other case)", "POST", reg, `{"username":"ADMIN","password":"secret1"}`, nil, "", 409, "username_taken"},
		{"huge body", "POST", reg, "", huge, "", 413, "body_too_large"},
		{"sql in login", "POST", login, `{"username":"admin' OR '1'='1","password":"x' OR '1'='1"}`, nil, "", 401, "invalid_credentials"},
		{"login bad json", "POST", login, `{`, nil, "", 400, "invalid_json"},
		{"login huge body", "POST", login, "", huge, "", 413, "body_too_large"},
		{"me wrong scheme", "GET", "/api/me", "", nil, "", 401, "unauthorized"},
		{"unknown api path", "GET", "/api/nothing/here", "", nil, "", 404, "not_found"},
		{"unknown api path POST", "POST", "/api/nothing", `{}`, nil, "", 404, "not_found"},
		{"wrong method", "GET", login, "", nil, "", 405, "method_not_allowed"},
		{"wrong method on me", "DELETE", "/api/me", "", nil, tok, 405, "method_not_allowed"},
	}
	for _, tc := range tests {
		body := tc.raw
		if body == nil {
			body = []byte(tc.body)
		}
		var a answer
		if tc.name == "me wrong scheme" {
			a = ts.doHeader(t, tc.method, tc.path, "Authorization", "Basic YWRtaW46c2VjcmV0MQ==")
		} else {
			a = ts.do(t, tc.method, tc.path, body, tc.token)
		}
		if a.Status != tc.want || a.errCode() != tc.code || a.errMessage() == "" {
			t.Errorf("%s: %s %s = %d %s, want %d %q with a message", tc.name, tc.method, tc.path, a.Status, a.Body, tc.want, tc.code)
		}
		if a.Status >= 500 || bytes.Contains(a.Body, []byte("sql")) {
			t.Errorf("%s: leaked internals: %s", tc.name, a.Body)
		}
	}
	if a := ts.do(t, "GET", "/healthz", nil, ""); a.Status != 200 || string(a.Body) != "ok" {
		t.Fatalf("healthz after bad inputs = %d %q", a.Status, a.Body)
	}
	ts.register(t, "bob", "secret1")
	if users, err := ts.Store.Users(t.Context()); err != nil || len(users) != 2 {
		t.Fatalf("users after bad inputs = %v, %v; want admin and bob only", users, err)
	}
}

func (ts *testServer) doHeader(t testing.TB, method, path, key, value string) answer {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(key, value)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(res.Body)
	return answer{Status: res.StatusCode, Header: res.Header, Body: buf.Bytes()}
}
