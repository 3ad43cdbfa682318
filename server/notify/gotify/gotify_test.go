package gotify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"mesh/server/notify/gotify"
	"mesh/server/notify/gotify/gotifytest"
)

func newFake(t *testing.T) (*gotifytest.Server, gotify.Target) {
	t.Helper()
	g := gotifytest.New(t)
	return g, gotify.Target{URL: g.URL(), Token: g.AppToken()}
}

// checkClass checks which of the two error classes err is in.
func checkClass(t *testing.T, err error, rejected bool) {
	t.Helper()
	if err == nil {
		t.Fatal("Send succeeded, want an error")
	}
	if errors.Is(err, gotify.ErrRejected) != rejected || errors.Is(err, gotify.ErrTemporary) == rejected {
		t.Errorf("Send error %q: Is(ErrRejected) = %v, Is(ErrTemporary) = %v; want rejected %v",
			err, errors.Is(err, gotify.ErrRejected), errors.Is(err, gotify.ErrTemporary), rejected)
	}
}

// checkNoToken fails if the secret shows in err's text.
func checkNoToken(t *testing.T, err error, token string) {
	t.Helper()
	if err != nil && token != "" && strings.Contains(err.Error(), token) {
		t.Errorf("error %q contains the token", err)
	}
}

// serve starts a stand-in for Gotify that answers with h.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestSendStoresMessage(t *testing.T) {
	t.Parallel()
	click := map[string]any{"client::notification": map[string]any{"click": map[string]any{"url": "https://mesh.example/#/chat"}}}
	tests := []struct {
		name string
		msg  gotify.Message
		want gotifytest.Message
	}{
		{"all fields", gotify.Message{Title: "alice", Message: "lunch?", Priority: 8, ClickURL: "https://mesh.example/#/chat"},
			gotifytest.Message{Title: "alice", Message: "lunch?", Priority: 8, Extras: click}},
		{"no click url, no extras", gotify.Message{Title: "bob", Message: "hi", Priority: 5},
			gotifytest.Message{Title: "bob", Message: "hi", Priority: 5}},
		{"no title takes the app name", gotify.Message{Message: "untitled"},
			gotifytest.Message{Title: gotifytest.AppName, Message: "untitled"}},
		{"unicode and markdown kept", gotify.Message{Title: "ünï", Message: "**bold** 🚀\nline", Priority: 10},
			gotifytest.Message{Title: "ünï", Message: "**bold** 🚀\nline", Priority: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, target := newFake(t)
			var c gotify.Client // the zero value is usable
			id, err := c.Send(t.Context(), target, tt.msg)
			if err != nil {
				t.Fatalf("Send(%+v) = %v", tt.msg, err)
			}
			got := g.Messages()
			if len(got) != 1 || got[0].ID != id || got[0].Date.IsZero() {
				t.Fatalf("stored %+v, want one message with id %d and a date", got, id)
			}
			tt.want.ID = id
			if d := cmp.Diff(tt.want, got[0], cmpopts.IgnoreFields(gotifytest.Message{}, "Date")); d != "" {
				t.Errorf("stored message (-want +got):\n%s", d)
			}
		})
	}
}

func TestSendIDsIncrease(t *testing.T) {
	t.Parallel()
	_, target := newFake(t)
	var c gotify.Client
	var last int64
	for i := range 3 {
		id, err := c.Send(t.Context(), target, gotify.Message{Message: "n"})
		if err != nil || id <= last {
			t.Fatalf("Send #%d = %d, %v; want an id above %d", i, id, err, last)
		}
		last = id
	}
}

// TestSendWireFormat pins what goes on the wire, independently of the fake:
// the path under a base URL with a path, the header, and the exact body.
func TestSendWireFormat(t *testing.T) {
	t.Parallel()
	type seen struct {
		path, rawQuery, key, contentType string
		body                             map[string]any
	}
	got := make(chan seen, 1)
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		s := seen{path: r.URL.Path, rawQuery: r.URL.RawQuery, key: r.Header.Get("X-Gotify-Key"), contentType: r.Header.Get("Content-Type")}
		_ = json.NewDecoder(r.Body).Decode(&s.body) // a bad body shows up as a diff below
		got <- s
		_, _ = io.WriteString(w, `{"id":42,"appid":3,"message":"m","title":"t","priority":2,"date":"2026-01-02T03:04:05Z"}`)
	})
	var c gotify.Client
	id, err := c.Send(t.Context(), gotify.Target{URL: url + "/gotify/", Token: "Atok3nAtok3nAb"},
		gotify.Message{Title: "t", Message: "m", Priority: 2, ClickURL: "https://x.example/#/a"})
	if err != nil || id != 42 {
		t.Fatalf("Send = %d, %v; want 42, nil", id, err)
	}
	want := seen{path: "/gotify/message", key: "Atok3nAtok3nAb", contentType: "application/json", body: map[string]any{
		"title": "t", "message": "m", "priority": 2.0,
		"extras": map[string]any{"client::notification": map[string]any{"click": map[string]any{"url": "https://x.example/#/a"}}},
	}}
	if d := cmp.Diff(want, <-got, cmp.AllowUnexported(seen{})); d != "" {
		t.Errorf("request (-want +got):\n%s", d)
	}
}

func TestSendRejected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		token      func(g *gotifytest.Server) string
		msg        gotify.Message
		wantStatus int
		wantHint   string // fixed by the status: the answer's own text never shows
	}{
		{"unknown token", func(*gotifytest.Server) string { return "A-wrong-token" }, gotify.Message{Message: "m"},
			401, "the token is not an application token of this Gotify; create one under Gotify → Apps"},
		{"client token cannot push", (*gotifytest.Server).ClientToken, gotify.Message{Message: "m"},
			401, "the token is not an application token of this Gotify; create one under Gotify → Apps"},
		{"missing message", (*gotifytest.Server).AppToken, gotify.Message{Title: "only a title"},
			400, "Gotify refused the message; check the URL and the application token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := gotifytest.New(t)
			target := gotify.Target{URL: g.URL(), Token: tt.token(g)}
			var c gotify.Client
			_, err := c.Send(t.Context(), target, tt.msg)
			checkClass(t, err, true)
			checkNoToken(t, err, target.Token)
			var re *gotify.RejectedError
			if !errors.As(err, &re) || re.Status != tt.wantStatus || re.Message != tt.wantHint {
				t.Errorf("Send error = %#v, want RejectedError{%d, %q}", err, tt.wantStatus, tt.wantHint)
			}
			if n, stored := g.Requests(), len(g.Messages()); n != 1 || stored != 0 {
				t.Errorf("%d requests, %d stored; want 1, 0", n, stored)
			}
		})
	}
}

func TestSendTemporary(t *testing.T) {
	t.Parallel()
	const token = "Asecret-token-1234"
	blocked := func(w http.ResponseWriter, r *http.Request) { // never answers
		_, _ = io.Copy(io.Discard, r.Body) // net/http notices a client hang-up only once the body is read
		<-r.Context().Done()
	}
	tests := []struct {
		name   string
		setup  func(t *testing.T) (gotify.Client, gotify.Target, context.Context)
		wantIs error // also wrapped, besides ErrTemporary
	}{
		{"gotify down (503)", func(t *testing.T) (gotify.Client, gotify.Target, context.Context) {
			g, target := newFake(t)
			g.SetDown(true)
			t.Cleanup(func() {
				if n := len(g.Messages()); n != 0 {
					t.Errorf("%d messages stored while down", n)
				}
			})
			return gotify.Client{}, target, t.Context()
		}, nil},
		{"connection refused", func(t *testing.T) (gotify.Client, gotify.Target, context.Context) {
			srv := httptest.NewServer(http.NotFoundHandler())
			srv.Close() // nothing listens on its port any more
			return gotify.Client{}, gotify.Target{URL: srv.URL, Token: token}, t.Context()
		}, nil},
		{"context deadline", func(t *testing.T) (gotify.Client, gotify.Target, context.Context) {
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			t.Cleanup(cancel)
			return gotify.Client{}, gotify.Target{URL: serve(t, blocked), Token: token}, ctx
		}, context.DeadlineExceeded},
		{"http client timeout", func(t *testing.T) (gotify.Client, gotify.Target, context.Context) {
			c := gotify.Client{HTTP: &http.Client{Timeout: 50 * time.Millisecond}}
			return c, gotify.Target{URL: serve(t, blocked), Token: token}, t.Context()
		}, nil},
		{"500 from gotify", func(t *testing.T) (gotify.Client, gotify.Target, context.Context) {
			url := serve(t, func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, `{"error":"Internal Server Error","errorCode":500,"errorDescription":"database is locked"}`, 500)
			})
			return gotify.Client{}, gotify.Target{URL: url, Token: token}, t.Context()
		}, nil},
		{"429 from a proxy", func(t *testing.T) (gotify.Client, gotify.Target, context.Context) {
			url := serve(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "slow down", http.StatusTooManyRequests) })
			return gotify.Client{}, gotify.Target{URL: url, Token: token}, t.Context()
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, target, ctx := tt.setup(t)
			_, err := c.Send(ctx, target, gotify.Message{Title: "t", Message: "m"})
			checkClass(t, err, false)
			checkNoToken(t, err, target.Token)
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Send error %q does not wrap %v", err, tt.wantIs)
			}
		})
	}
}

// TestSendOddAnswers covers answers a misconfigured URL gets from something
// that is not Gotify.
func TestSendOddAnswers(t *testing.T) {
	t.Parallel()
	const token = "Aproxy-echo-token"
	var elsewhere atomic.Int32 // requests that reached the redirect's target
	other := serve(t, func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) })
	t.Cleanup(func() { // after the parallel subtests
		if n := elsewhere.Load(); n != 0 {
			t.Errorf("redirect target got %d requests, want 0: the token must not follow a redirect", n)
		}
	})
	tests := []struct {
		name       string
		h          http.HandlerFunc
		wantStatus int    // of the RejectedError; 0: a rejection that is not one
		wantIn     string // in the error text
	}{
		{"200 web page", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>hello</html>") },
			0, "is not a Gotify message"},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other+"/message", http.StatusTemporaryRedirect)
		}, 307, "redirect not followed"},
		{"404 page echoing the token", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(404)
			_, _ = io.WriteString(w, "no such page; you sent "+r.Header.Get("X-Gotify-Key")+strings.Repeat(" ééé", 100))
		}, 404, "no Gotify API at this URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c gotify.Client
			_, err := c.Send(t.Context(), gotify.Target{URL: serve(t, tt.h), Token: token}, gotify.Message{Message: "m"})
			checkClass(t, err, true)
			checkNoToken(t, err, token)
			if !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("Send error %q, want it to say %q", err, tt.wantIn)
			}
			var re *gotify.RejectedError
			if errors.As(err, &re) != (tt.wantStatus != 0) || (re != nil && re.Status != tt.wantStatus) {
				t.Errorf("Send error %#v, want RejectedError status %d (0: none)", err, tt.wantStatus)
			}
		})
	}
}
