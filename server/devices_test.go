package server_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"

	"mesh/protocol"
)

func fp(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

// enroll registers a device and returns its token.
func (ts *testServer) enroll(t *testing.T, userTok, id, fingerprint string) string {
	t.Helper()
	a := ts.do(t, http.MethodPost, "/api/devices", mustJSON(t, map[string]string{"device_id": id, "fingerprint": fingerprint}), userTok)
	if a.Status != http.StatusCreated {
		t.Fatalf("enrol %s = %d %s", id, a.Status, a.Body)
	}
	var out struct {
		DeviceID    string `json:"device_id"`
		DeviceToken string `json:"device_token"`
	}
	if err := json.Unmarshal(a.Body, &out); err != nil || out.DeviceID != id || !strings.HasPrefix(out.DeviceToken, "mdt_") {
		t.Fatalf("enrol answer %s (%v)", a.Body, err)
	}
	return out.DeviceToken
}

// agent connects as a device and announces its QUIC endpoint.
func (ts *testServer) agent(t *testing.T, devTok string, port int, fingerprint string) *wsClient {
	t.Helper()
	c := ts.dial(t, devTok)
	c.send(protocol.TypeSystemHello, protocol.Hello{QUICPort: port, Fingerprint: fingerprint})
	c.waitFor(protocol.TypeSystemWelcome)
	return c
}

type deviceList struct {
	Devices []struct {
		DeviceID    string    `json:"device_id"`
		Online      bool      `json:"online"`
		LastSeen    time.Time `json:"last_seen"`
		Fingerprint string    `json:"fingerprint"`
	} `json:"devices"`
}

func (ts *testServer) devices(t *testing.T, tok string) deviceList {
	t.Helper()
	a := ts.do(t, http.MethodGet, "/api/devices", nil, tok)
	var l deviceList
	if a.Status != 200 || json.Unmarshal(a.Body, &l) != nil {
		t.Fatalf("list devices = %d %s", a.Status, a.Body)
	}
	return l
}

func TestDeviceEnrolmentAndRevocation(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1")
	dtok := ts.enroll(t, atok, "laptop", fp('a'))
	if l := ts.devices(t, atok); len(l.Devices) != 1 || l.Devices[0].Online || l.Devices[0].Fingerprint != fp('a') {
		t.Fatalf("devices before connecting = %+v", l)
	}
	live := ts.agent(t, dtok, 5000, fp('b'))
	if l := ts.devices(t, atok); !l.Devices[0].Online || l.Devices[0].Fingerprint != fp('b') {
		t.Fatalf("devices while connected = %+v, want online with the announced fingerprint", l)
	}
	for name, tc := range map[string]struct {
		body string
		tok  string
		want int
		code string
	}{
		"taken by another user": {`{"device_id":"laptop"}`, btok, 409, "device_taken"},
		"bad id":                {`{"device_id":"my laptop"}`, atok, 400, "invalid_device_id"},
		"bad fingerprint":       {`{"device_id":"x","fingerprint":"md5:00"}`, atok, 400, "invalid_fingerprint"},
		"enrol with a device":   {`{"device_id":"x"}`, dtok, 403, "user_login_required"},
	} {
		if a := ts.do(t, "POST", "/api/devices", []byte(tc.body), tc.tok); a.Status != tc.want || a.errCode() != tc.code {
			t.Errorf("%s: %d %s, want %d %s", name, a.Status, a.Body, tc.want, tc.code)
		}
	}
	// Logging in again rotates the token: the old one is refused, and its session ends.
	dtok2 := ts.enroll(t, atok, "laptop", fp('b'))
	if err := live.waitClosed(); err == nil {
		t.Fatal("old device session still open after rotation")
	}
	if _, a := ts.me(t, dtok); a.Status != 401 {
		t.Fatalf("old device token: %d %s, want 401", a.Status, a.Body)
	}
	live = ts.agent(t, dtok2, 5000, fp('b'))
	owner := ts.dial(t, atok)
	if a := ts.do(t, "DELETE", "/api/devices/laptop", nil, btok); a.Status != 404 {
		t.Fatalf("bob revokes alice's device: %d %s, want 404", a.Status, a.Body)
	}
	if a := ts.do(t, "DELETE", "/api/devices/laptop", nil, atok); a.Status != 204 {
		t.Fatalf("revoke = %d %s", a.Status, a.Body)
	}
	var ce *websocket.CloseError
	if err := live.waitClosed(); !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("revoked device session ended with %v, want 1008", err)
	}
	owner.waitFor(protocol.TypeDeviceRevoked)
	if _, _, err := websocket.DefaultDialer.Dial(ts.wsURL(dtok2), nil); err == nil {
		t.Fatal("revoked token opened a WebSocket")
	}
	if l := ts.devices(t, atok); len(l.Devices) != 0 {
		t.Fatalf("devices after revoke = %+v", l)
	}
}

func TestP2PSessions(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1")
	d1, d2 := ts.enroll(t, atok, "laptop", fp('1')), ts.enroll(t, atok, "server", fp('2'))
	bobDev := ts.enroll(t, btok, "bobs-pc", fp('3'))
	laptop, server := ts.agent(t, d1, 5001, fp('1')), ts.agent(t, d2, 5002, fp('2'))
	ts.agent(t, bobDev, 5003, fp('3'))
	ts.enroll(t, atok, "sleeping", fp('4'))

	a := ts.do(t, "POST", "/api/p2p/sessions", []byte(`{"kind":"file","target_device_id":"server"}`), d1)
	if a.Status != 201 {
		t.Fatalf("create session = %d %s", a.Status, a.Body)
	}
	var sess protocol.P2PSession
	if err := json.Unmarshal(a.Body, &sess); err != nil {
		t.Fatal(err)
	}
	want := protocol.Endpoints{Initiator: protocol.Endpoint{IP: "127.0.0.1", Port: 5001, Fingerprint: fp('1')},
		Target: protocol.Endpoint{IP: "127.0.0.1", Port: 5002, Fingerprint: fp('2')}}
	if !cmp.Equal(sess.Endpoints, want) || sess.SessionID == "" || !strings.HasPrefix(sess.SessionToken, "mst_") ||
		time.Until(sess.ExpiresAt) < 100*time.Second || time.Until(sess.ExpiresAt) > 121*time.Second {
		t.Fatalf("session = %+v", sess)
	}
	for _, c := range []*wsClient{laptop, server} {
		env := c.waitFor(protocol.TypeP2PSessionCreated)
		var got protocol.P2PSession
		if err := env.Unmarshal(&got); err != nil || got.SessionToken != sess.SessionToken {
			t.Fatalf("p2p.session.created = %s", env.Payload)
		}
	}
	for name, tc := range map[string]struct {
		body, tok string
		want      int
	}{
		"ttl too short":             {`{"kind":"file","target_device_id":"server","ttl":30}`, d1, 400},
		"ttl too long":              {`{"kind":"file","target_device_id":"server","ttl":181}`, d1, 400},
		"bad kind":                  {`{"kind":"video","target_device_id":"server"}`, d1, 400},
		"offline target":            {`{"kind":"file","target_device_id":"sleeping"}`, d1, 409},
		"unknown target":            {`{"kind":"file","target_device_id":"nowhere"}`, d1, 404},
		"self":                      {`{"kind":"file","target_device_id":"laptop"}`, d1, 400},
		"stranger's device":         {`{"kind":"file","target_device_id":"bobs-pc"}`, d1, 403},
		"user token, no initiator":  {`{"kind":"file","target_device_id":"server"}`, atok, 201}, // any of alice's other devices may use it
		"someone else's initiator":  {`{"kind":"file","target_device_id":"server","initiator_device_id":"bobs-pc"}`, atok, 404},
		"device speaks for another": {`{"kind":"file","target_device_id":"laptop","initiator_device_id":"server"}`, d1, 403},
	} {
		if a := ts.do(t, "POST", "/api/p2p/sessions", []byte(tc.body), tc.tok); a.Status != tc.want {
			t.Errorf("%s: %d %s, want %d", name, a.Status, a.Body, tc.want)
		}
	}
	// Sharing a room opens bob's device to alice (its agent still applies accept_from).
	ts.do(t, "POST", "/api/rooms/direct", []byte(`{"username":"bob"}`), atok)
	if a := ts.do(t, "POST", "/api/p2p/sessions", []byte(`{"kind":"file","target_device_id":"bobs-pc","initiator_device_id":"laptop"}`), atok); a.Status != 201 {
		t.Fatalf("session to a room-mate's device = %d %s", a.Status, a.Body)
	}
	// Over the WebSocket too.
	id := laptop.send(protocol.TypeP2PSessionRequest, protocol.P2PSessionRequest{Kind: "file", TargetDeviceID: "sleeping"})
	if pe := laptop.waitError(id); pe.Code != protocol.CodeUnavailable {
		t.Fatalf("ws session to offline device: %+v", pe)
	}
	laptop.send(protocol.TypeP2PSessionRequest, protocol.P2PSessionRequest{Kind: "file", TargetDeviceID: "server", TTL: 60})
	server.waitMatch(protocol.TypeP2PSessionCreated, func(e protocol.Envelope) bool {
		var s protocol.P2PSession
		return e.Unmarshal(&s) == nil && s.SessionID != sess.SessionID
	})
}

func TestTransferReports(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok := ts.register(t, "alice", "secret1")
	agent := ts.agent(t, ts.enroll(t, atok, "laptop", fp('1')), 5000, fp('1'))
	report := protocol.TransferReport{SessionID: "s1", FromDevice: "laptop", ToDevice: "server", Name: "movie.mkv",
		Size: 1 << 30, BLAKE3: strings.Repeat("ab", 32), DurationMS: 4000, Outcome: protocol.OutcomeOK, Direct: true}
	agent.send(protocol.TypeTransferReport, report)
	user := ts.dial(t, atok)
	if pe := user.waitError(user.send(protocol.TypeTransferReport, report)); pe.Code != protocol.CodeForbidden {
		t.Fatalf("report from a browser session: %+v, want forbidden", pe)
	}
	// The agent's report was handled before its next request's answer.
	agent.send(protocol.TypeSystemHello, protocol.Hello{})
	agent.waitFor(protocol.TypeSystemWelcome)
	a := ts.do(t, "GET", "/api/transfers", nil, atok)
	if a.Status != 200 || !strings.Contains(string(a.Body), `"name":"movie.mkv"`) || strings.Count(string(a.Body), `"id"`) != 1 {
		t.Fatalf("transfers = %d %s", a.Status, a.Body)
	}
}
