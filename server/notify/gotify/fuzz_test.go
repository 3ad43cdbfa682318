package gotify

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// FuzzDecodeAnswer feeds decodeAnswer, which reads every answer Send gets,
// arbitrary statuses, Location headers and bodies. Besides not panicking it
// must keep Send's promises: success only for a 2xx carrying a positive id,
// the one the body holds; every error in exactly one of ErrRejected and
// ErrTemporary, by status (408, 429 and 5xx are temporary; a 3xx or 4xx is
// a *RejectedError with that status and a hint); and an error that depends
// on the status alone, so nothing the answer holds reaches the user who
// chose the target (nor a token a proxy echoed).
func FuzzDecodeAnswer(f *testing.F) {
	tok := gotifyToken("abcdefghijklmn") // echoed by proxies and confused servers below
	for _, s := range []struct {
		status   int
		location string
		body     string
	}{
		{200, "", `{"id":25,"appid":5,"message":"hi","title":"t","priority":5,"date":"2026-01-04T23:00:00Z"}`},
		{200, "", `{"id":0}`},
		{200, "", `{"id":-1}`},
		{200, "", `{"id":"25"}`},
		{200, "", `{"id":1e3}`},
		{204, "", ``},
		{200, "", `<!doctype html><title>Gotify</title>`},
		{301, "https://push.example/", ``},
		{302, "", ``},
		{400, "", `{"error":"Bad Request","errorCode":400,"errorDescription":"Field 'message' is required"}`},
		{401, "", `{"error":"Unauthorized","errorCode":401,"errorDescription":"you need to provide a valid access token or user credentials to access this api"}`},
		{403, "", `{"errorDescription":"token ` + tok + ` is not yours"}`},
		{400, "", "X-Gotify-Key: " + tok + "\r\n" + strings.Repeat(tok, 20)},
		{307, "https://push.example/message?token=" + tok, ``},
		{404, "", `404 page not found`},
		{408, "", ``},
		{429, "", `slow down`},
		{500, "", `{"error":"Internal Server Error","errorCode":500,"errorDescription":"` + strings.Repeat("é", 150) + `"}`},
		{502, "", `<html>Bad Gateway</html>`},
		{103, "", ``},
		{0, "", ``},
		{999, "", "\xff\xfe"},
	} {
		f.Add(s.status, s.location, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, location string, body []byte) {
		resp := &http.Response{StatusCode: status, Header: http.Header{}}
		if location != "" {
			resp.Header.Set("Location", location)
		}
		id, err := decodeAnswer(resp, body)
		if err == nil {
			checkStored(t, status, body, id)
			return
		}
		rejected, temporary := errors.Is(err, ErrRejected), errors.Is(err, ErrTemporary)
		wantTemporary := status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
		if rejected == temporary || temporary != wantTemporary {
			t.Fatalf("status %d %q: error %q: Is(ErrRejected) = %v, Is(ErrTemporary) = %v; want temporary %v",
				status, body, err, rejected, temporary, wantTemporary)
		}
		if id != 0 {
			t.Fatalf("status %d %q: id %d with error %v", status, body, id, err)
		}
		if _, bare := decodeAnswer(&http.Response{StatusCode: status, Header: http.Header{}}, nil); bare == nil || bare.Error() != err.Error() {
			t.Fatalf("status %d, Location %q, body %q: error %q, but %v without them; the answer must not show", status, location, body, err, bare)
		}
		var re *RejectedError
		isRejectedError := errors.As(err, &re)
		if wantReject := !wantTemporary && (status < 200 || status >= 300); wantReject != isRejectedError {
			t.Fatalf("status %d: error %T %q, want a *RejectedError: %v", status, err, err, wantReject)
		}
		if isRejectedError && (re.Status != status || re.Message == "") {
			t.Fatalf("status %d %q: RejectedError %+v; want that status and a hint", status, body, re)
		}
	})
}

// checkStored checks a success: a 2xx whose body is a message with that id.
func checkStored(t *testing.T, status int, body []byte, id int64) {
	t.Helper()
	var stored struct {
		ID int64 `json:"id"`
	}
	if status < 200 || status >= 300 || json.Unmarshal(body, &stored) != nil || id <= 0 || stored.ID != id {
		t.Fatalf("status %d %q: accepted as stored message %d", status, body, id)
	}
}

// gotifyToken makes a token shaped like Gotify's application tokens ("A"
// and 14 of [A-Za-z0-9._-]) from seed: shorter or arbitrary tokens can occur
// in the fixed text of any message by chance.
func gotifyToken(seed string) string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"
	b := []byte("A")
	for i := range 14 {
		c := byte(i)
		if i < len(seed) {
			c = seed[i]
		}
		b = append(b, chars[int(c)%len(chars)])
	}
	return string(b)
}

// TestScrubNeverSpellsTheToken: a token that begins with the end of the
// marker ("ACTED…") must not reappear as marker + the text after it.
func TestScrubNeverSpellsTheToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ body, token string }{
		{"you sent ACTEDxxxxxxxxxxxxxxx", "ACTEDxxxxxxxxxx"},
		{"RED RED", "RED"},
		{"plain Abc123 text", "Abc123"},
	} {
		if got := scrub(tc.body, tc.token); strings.Contains(got, tc.token) {
			t.Errorf("scrub(%q, %q) = %q: the token is readable", tc.body, tc.token, got)
		}
	}
}
