package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mesh/protocol"
)

// seedSession is the part of a session answer (or p2p.session.created)
// these tests look at, decoded on its own so it names the wire fields.
type seedSession struct {
	SessionID         string             `json:"session_id"`
	SessionToken      string             `json:"session_token"`
	ExpiresAt         time.Time          `json:"expires_at"`
	Kind              string             `json:"kind"`
	InitiatorDeviceID string             `json:"initiator_device_id"`
	TargetDeviceID    string             `json:"target_device_id"`
	Endpoints         protocol.Endpoints `json:"endpoints"`
	Initiators        []struct {
		DeviceID    string `json:"device_id"`
		Fingerprint string `json:"fingerprint"`
	} `json:"initiators"`
}

func decodeSession(t *testing.T, b []byte) seedSession {
	t.Helper()
	var s seedSession
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("decode session %s: %v", b, err)
	}
	return s
}

// TestSessionErrorsInRequestWords: a refused POST /api/p2p/sessions (and
// p2p.session.request) says what was wrong with the request, never
// "malformed frame".
func TestSessionErrorsInRequestWords(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok := ts.register(t, "alice", "secret1")
	d1 := ts.enroll(t, atok, "laptop", fp('1'))
	ts.agent(t, ts.enroll(t, atok, "server", fp('2')), 5002, fp('2'))
	for body, want := range map[string]string{
		`{"kind":"file","target_device_id":"server","ttl":30}`:  "ttl 30 is out of range: want 60 to 180 seconds (default 120)",
		`{"kind":"file","target_device_id":"server","ttl":500}`: "ttl 500 is out of range: want 60 to 180 seconds (default 120)",
		`{"kind":"video","target_device_id":"server"}`:          `kind "video" is not a session kind: want "file" or "terminal"`,
		`{"kind":"file"}`:     "target_device_id is required for a file session: name the device to send to",
		`{"kind":"terminal"}`: "share_id is required for a terminal session: name the share to join",
	} {
		a := ts.do(t, http.MethodPost, "/api/p2p/sessions", []byte(body), d1)
		if a.Status != http.StatusBadRequest || a.errMessage() != want {
			t.Errorf("POST %s = %d %q, want 400 %q", body, a.Status, a.errMessage(), want)
		}
	}
	laptop := ts.agent(t, d1, 5001, fp('1'))
	id := laptop.send(protocol.TypeP2PSessionRequest, protocol.P2PSessionRequest{Kind: "file", TargetDeviceID: "server", TTL: 30})
	want := "ttl 30 is out of range: want 60 to 180 seconds (default 120)"
	if pe := laptop.waitError(id); pe.Code != protocol.CodeInvalid || pe.Message != want {
		t.Errorf("p2p.session.request ttl 30: %+v, want code %s and %q", pe, protocol.CodeInvalid, want)
	}
}

// TestSessionWithoutInitiator is the seed's call: a user's token, no
// initiator_device_id. Any of the user's other enrolled devices may use
// the session; the target hears which.
func TestSessionWithoutInitiator(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1")
	ts.enroll(t, atok, "device-a", fp('1'))
	ts.enroll(t, atok, "tablet", fp('5'))
	target := ts.agent(t, ts.enroll(t, atok, "device-b", fp('2')), 5002, fp('2'))
	ts.enroll(t, btok, "bobs-pc", fp('3'))

	a := ts.do(t, http.MethodPost, "/api/p2p/sessions", []byte(`{"kind":"file","target_device_id":"device-b","ttl":120}`), atok)
	if a.Status != http.StatusCreated {
		t.Fatalf("seed session = %d %s, want 201", a.Status, a.Body)
	}
	sess := decodeSession(t, a.Body)
	type cert struct{ DeviceID, Fingerprint string }
	certs := func(s seedSession) []cert {
		var out []cert
		for _, c := range s.Initiators {
			out = append(out, cert{c.DeviceID, c.Fingerprint})
		}
		return out
	}
	want := []cert{{"device-a", fp('1')}, {"tablet", fp('5')}} // not the target, not bob's
	if diff := cmp.Diff(want, certs(sess)); diff != "" || sess.InitiatorDeviceID != "" ||
		!cmp.Equal(sess.Endpoints.Initiator, protocol.Endpoint{}) || sess.Endpoints.Target.Fingerprint != fp('2') {
		t.Fatalf("seed session %s: initiators (-want +got):\n%s", a.Body, diff)
	}
	got := decodeSession(t, target.waitFor(protocol.TypeP2PSessionCreated).Payload)
	if got.SessionToken != sess.SessionToken || !cmp.Equal(want, certs(got)) {
		t.Fatalf("p2p.session.created to the target = %+v, want the token and initiators %v", got, want)
	}

	// A browser's WebSocket gets its answer too.
	web := ts.dial(t, atok)
	web.send(protocol.TypeP2PSessionRequest, protocol.P2PSessionRequest{Kind: "file", TargetDeviceID: "device-b"})
	if s := decodeSession(t, web.waitFor(protocol.TypeP2PSessionCreated).Payload); len(s.Initiators) != 2 {
		t.Fatalf("answer over the WebSocket = %+v, want two initiators", s)
	}

	// Bob's other device may send to his NAS; bob's session never lists alice's devices.
	ts.agent(t, ts.enroll(t, btok, "bobs-nas", fp('4')), 5004, fp('4'))
	c := ts.do(t, http.MethodPost, "/api/p2p/sessions", []byte(`{"kind":"file","target_device_id":"bobs-nas"}`), btok)
	if s := decodeSession(t, c.Body); c.Status != http.StatusCreated || len(s.Initiators) != 1 || s.Initiators[0].DeviceID != "bobs-pc" {
		t.Fatalf("bob's session to bobs-nas = %d %s, want bobs-pc the only initiator", c.Status, c.Body)
	}
	// Carol's only device is the target: nothing could use the session.
	ctok := ts.register(t, "carol", "secret1")
	ts.agent(t, ts.enroll(t, ctok, "carols-only", fp('6')), 5006, fp('6'))
	d := ts.do(t, http.MethodPost, "/api/p2p/sessions", []byte(`{"kind":"file","target_device_id":"carols-only"}`), ctok)
	if d.Status != http.StatusConflict || !strings.Contains(d.errMessage(), "mesh agent login") {
		t.Fatalf("session with no device to send from = %d %s, want 409 saying to enrol one", d.Status, d.Body)
	}
}

// TestSessionPin: GET /api/p2p/sessions/{id} gives the session's owner the
// target's pin again (the low-level send-file asks for it), never the token,
// and tells nobody else the session exists.
func TestSessionPin(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1")
	dA, dT := ts.enroll(t, atok, "device-a", fp('1')), ts.enroll(t, atok, "tablet", fp('5'))
	ts.agent(t, ts.enroll(t, atok, "device-b", fp('2')), 5002, fp('2'))
	bobDev := ts.enroll(t, btok, "bobs-pc", fp('3'))

	a := ts.do(t, http.MethodPost, "/api/p2p/sessions", []byte(`{"kind":"file","target_device_id":"device-b","ttl":60}`), atok)
	if a.Status != http.StatusCreated {
		t.Fatalf("seed session = %d %s, want 201", a.Status, a.Body)
	}
	sess := decodeSession(t, a.Body)
	path := "/api/p2p/sessions/" + sess.SessionID
	for name, tok := range map[string]string{"device-a": dA, "tablet": dT, "alice": atok} {
		g := ts.do(t, http.MethodGet, path, nil, tok)
		got := decodeSession(t, g.Body)
		if g.Status != http.StatusOK || got.SessionID != sess.SessionID || got.Kind != "file" || got.TargetDeviceID != "device-b" ||
			got.Endpoints.Target.Fingerprint != fp('2') || got.Endpoints.Target.Port != 5002 {
			t.Errorf("GET %s as %s = %d %s, want the target's endpoint and pin", path, name, g.Status, g.Body)
		}
		if strings.Contains(string(g.Body), "session_token") || strings.Contains(string(g.Body), sess.SessionToken) {
			t.Errorf("GET %s as %s gave the token away: %s", path, name, g.Body)
		}
	}
	notFound := func(id, tok string) string {
		t.Helper()
		g := ts.do(t, http.MethodGet, "/api/p2p/sessions/"+id, nil, tok)
		if g.Status != http.StatusNotFound || g.errCode() != "session_not_found" {
			t.Fatalf("GET session %s = %d %s, want 404 session_not_found", id, g.Status, g.Body)
		}
		return strings.ReplaceAll(g.errMessage(), id, "ID")
	}
	if theirs, none := notFound(sess.SessionID, bobDev), notFound("0123456789abcdef0123456789abcdef", bobDev); theirs != none {
		t.Errorf("someone else's session reads %q, an unknown one %q: the difference leaks it exists", theirs, none)
	}
	notFound(sess.SessionID, btok)

	// A session bound to device-a is not tablet's to use.
	bound := decodeSession(t, ts.do(t, http.MethodPost, "/api/p2p/sessions", []byte(`{"kind":"file","target_device_id":"device-b"}`), dA).Body)
	if g := ts.do(t, http.MethodGet, "/api/p2p/sessions/"+bound.SessionID, nil, dT); g.Status != http.StatusForbidden ||
		!strings.Contains(g.errMessage(), `"device-a"`) {
		t.Errorf("GET device-a's session as tablet = %d %s, want 403 naming device-a", g.Status, g.Body)
	}

	ts.Clock.Advance(61 * time.Second)
	if g := ts.do(t, http.MethodGet, path, nil, dA); g.Status != http.StatusGone || !strings.Contains(g.errMessage(), "ask for a new") {
		t.Errorf("GET an expired session = %d %s, want 410 saying to ask for a new one", g.Status, g.Body)
	}
}
