package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The HTTP and WebSocket client helpers the black-box tests share.

func mustRaw(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // test payloads always marshal
	}
	return b
}

func wsURL(base, tok string) string {
	return "ws" + strings.TrimPrefix(base, "http") + "/ws?token=" + tok
}

func apiToken(t *testing.T, base, user string) string {
	t.Helper()
	var a struct {
		AccessToken string `json:"access_token"`
	}
	postJSON(t, base+"/api/auth/register", "", `{"username":"`+user+`","password":"secret1"}`, &a)
	return a.AccessToken
}

func apiRoom(t *testing.T, base, tok, name string) int64 {
	t.Helper()
	var r struct{ ID int64 }
	postJSON(t, base+"/api/rooms", tok, `{"name":"`+name+`","visibility":"public"}`, &r)
	return r.ID
}

func postJSON(t *testing.T, url, tok, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	doJSON(t, req, tok, out)
}

func getJSON(t *testing.T, url, tok string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	doJSON(t, req, tok, out)
}

func doJSON(t *testing.T, req *http.Request, tok string, out any) {
	t.Helper()
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		t.Fatalf("%s %s = %d %s", req.Method, req.URL.Path, res.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func newRequest(t *testing.T, method, url, tok string) (*http.Request, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err == nil && tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return req, err
}

// httpDo sends req and returns the status.
func httpDo(req *http.Request) (int, error) {
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}
