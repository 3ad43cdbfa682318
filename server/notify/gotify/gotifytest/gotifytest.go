// Package gotifytest is an in-process Gotify server for tests. It follows
// Gotify's REST contract (v2/v3) for POST /message and GET /message, so
// tests exercise the real wire format: token transports, JSON and form
// bodies, the {"error","errorCode","errorDescription"} error shape, defaults
// for title and priority, and paging.
//
// It owns one user with one application and one client; it has no
// WebSocket stream, no other endpoints and no persistence. SetDown simulates
// an outage the way a reverse proxy in front of Gotify shows one (503).
// [Resolver] stands for a DNS name the user controls.
package gotifytest

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// AppName is the application's name, which Gotify uses as the title of a
// message sent without one.
const AppName = "mesh"

// appID is the one application's id, as Gotify reports it in "appid".
const appID = 1

// Message is a stored message as Gotify returns it.
type Message struct {
	ID       int64
	Title    string
	Message  string
	Priority int
	Extras   map[string]any // nil if the push had none; each call returns a fresh map
	Date     time.Time
}

// stored is a message as kept: extras stay raw so every reader decodes its
// own copy and no caller can change what another sees.
type stored struct {
	ID       int64           `json:"id"`
	AppID    int64           `json:"appid"`
	Message  string          `json:"message"`
	Title    string          `json:"title"`
	Priority int             `json:"priority"`
	Extras   json.RawMessage `json:"extras,omitempty"`
	Date     time.Time       `json:"date"`
}

func (m stored) public() Message {
	p := Message{ID: m.ID, Title: m.Title, Message: m.Message, Priority: m.Priority, Date: m.Date}
	if len(m.Extras) > 0 {
		_ = json.Unmarshal(m.Extras, &p.Extras) // we encoded it from a map when storing
	}
	return p
}

// Server is a running fake Gotify. Its methods are safe for concurrent use.
type Server struct {
	srv         *httptest.Server
	appToken    string
	clientToken string

	mu       sync.Mutex    // guards msgs, stored, down, requests
	msgs     []stored      // oldest first; ids are index+1
	changed  chan struct{} // closed and replaced on each store, to wake WaitMessages
	down     bool
	requests int
}

// New starts a fake Gotify on 127.0.0.1 with a random port and fresh random
// application and client tokens; t.Cleanup closes it.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		// Gotify's tokens are "A" or "C" and 14 more characters; clients must
		// treat them as opaque (v3 changed the format), and so does this fake.
		appToken:    "A" + rand.Text()[:14],
		clientToken: "C" + rand.Text()[:14],
		changed:     make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /message", s.createMessage)
	mux.HandleFunc("GET /message", s.getMessages)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the server's base URL, "http://127.0.0.1:PORT", without a slash.
func (s *Server) URL() string { return s.srv.URL }

// AppToken is the application token, the one that may POST /message.
func (s *Server) AppToken() string { return s.appToken }

// ClientToken is the client token, the one that may GET /message. Each
// token gets 401 on the other's endpoint, as from real Gotify.
func (s *Server) ClientToken() string { return s.clientToken }

// Messages returns a copy of the stored messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.messagesLocked()
}

func (s *Server) messagesLocked() []Message {
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = m.public()
	}
	return out
}

// WaitMessages blocks until at least n messages are stored and returns them
// all, oldest first; after timeout it calls t.Fatalf, so call it from the
// test's goroutine.
func (s *Server) WaitMessages(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			defer s.mu.Unlock()
			return s.messagesLocked()
		}
		have, changed := len(s.msgs), s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("gotifytest: %d messages stored after %v, want %d", have, timeout, n)
			return nil // t.Fatalf does not return; a testing.TB stub might
		}
	}
}

// SetDown starts (true) or ends (false) an outage: while down, POST /message
// answers 503 in Gotify's error shape and stores nothing.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Requests is how many POST /message requests arrived, accepted or not.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// store keeps m, gives it the next id and wakes WaitMessages.
func (s *Server) store(m stored) stored {
	s.mu.Lock()
	defer s.mu.Unlock()
	m.ID, m.AppID = int64(len(s.msgs)+1), appID
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	return m
}
