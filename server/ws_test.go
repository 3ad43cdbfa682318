package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// TestWSCatHello is the seed's quick check, byte for byte.
func TestWSCatHello(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	c := ts.dial(t, ts.register(t, "alice", "secret1"))
	c.sendRaw([]byte(`{"type":"system.hello","device_id":"test-device"}`))
	env := c.waitFor(protocol.TypeSystemWelcome)
	var w protocol.Welcome
	if err := env.Unmarshal(&w); err != nil {
		t.Fatal(err)
	}
	if w.DeviceID != "test-device" || w.User.Username != "alice" || w.ServerVersion == "" {
		t.Fatalf("welcome = %+v", w)
	}
}

type historyPage struct {
	Messages []protocol.Message `json:"messages"`
	HasMore  bool               `json:"has_more"`
}

func history(t *testing.T, ts *testServer, token string, room int64, query string) historyPage {
	t.Helper()
	a := ts.do(t, http.MethodGet, fmt.Sprintf("/api/rooms/%d/messages%s", room, query), nil, token)
	if a.Status != http.StatusOK {
		t.Fatalf("history = %d %s", a.Status, a.Body)
	}
	var p historyPage
	if err := json.Unmarshal(a.Body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPresenceAndManySessions(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1")
	room := ts.createRoom(t, atok, "r", "public")
	if a := ts.do(t, http.MethodPost, fmt.Sprintf("/api/rooms/%d/members", room), []byte(`{"username":"bob"}`), atok); a.Status != 201 {
		t.Fatalf("add member = %d %s", a.Status, a.Body)
	}
	tab1, tab2 := ts.dial(t, atok), ts.dial(t, atok)
	bob := ts.dial(t, btok)
	online := func(c *wsClient, user string, want bool) {
		t.Helper()
		c.waitMatch(protocol.TypePresenceUpdate, func(e protocol.Envelope) bool {
			var p protocol.Presence
			return e.Unmarshal(&p) == nil && p.User == user && p.Online == want
		})
	}
	online(tab1, "bob", true)
	online(tab2, "bob", true)
	bob.say(room, "to both tabs")
	tab1.message("to both tabs")
	tab2.message("to both tabs")
	m := tab1.say(room, "from tab1")
	if got := tab2.message("from tab1"); got.ID != m.ID {
		t.Fatalf("tab2 got %+v", got)
	}
	bob.send(protocol.TypeChatTyping, protocol.Typing{RoomID: room})
	tab2.waitMatch(protocol.TypeChatTyping, func(e protocol.Envelope) bool {
		var ty protocol.Typing
		return e.Unmarshal(&ty) == nil && ty.Username == "bob" && ty.RoomID == room
	})
	_ = bob.ws.Close()
	online(tab1, "bob", false)
}

func TestCallSignallingRelay(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok, ctok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1"), ts.register(t, "carol", "secret1")
	alice, bob, carol := ts.dial(t, atok), ts.dial(t, btok), ts.dial(t, ctok)
	alice.ack(alice.send(protocol.TypeChatSend, protocol.ChatSend{ToUser: "bob", Text: "call?", ClientMsgID: "c"}))
	alice.send(protocol.TypeCallInvite, protocol.Call{CallID: "k1", ToUser: "bob", Media: "video"})
	env := bob.waitFor(protocol.TypeCallInvite)
	var call protocol.Call
	if err := env.Unmarshal(&call); err != nil || env.From != "alice" || call.CallID != "k1" {
		t.Fatalf("bob got %+v from %q (%v)", call, env.From, err)
	}
	bob.send(protocol.TypeCallAnswer, protocol.Call{CallID: "k1", ToUser: "alice", SDP: "v=0"})
	if env := alice.waitFor(protocol.TypeCallAnswer); env.From != "bob" {
		t.Fatalf("answer from %q", env.From)
	}
	if pe := carol.waitError(carol.send(protocol.TypeCallInvite, protocol.Call{CallID: "k2", ToUser: "alice"})); pe.Code != protocol.CodeForbidden {
		t.Fatalf("carol calls a stranger: %+v, want forbidden", pe)
	}
}

// TestBadFrames: each bad frame gets system.error and the session goes on,
// except an oversized frame, which closes it with 1009.
func TestBadFrames(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1")
	private := ts.createRoom(t, btok, "bobs", "private")
	c := ts.dial(t, atok)
	tests := []struct {
		name, frame, code string
	}{
		{"not json", `hello`, protocol.CodeMalformed},
		{"json array", `[1,2]`, protocol.CodeMalformed},
		{"no type", `{"id":"x"}`, protocol.CodeMalformed},
		{"unknown type", `{"type":"chat.explode","id":"u1"}`, protocol.CodeUnknownType},
		{"bad payload type", `{"type":"room.join","id":"b1","payload":{"room_id":"one"}}`, protocol.CodeInvalid},
		{"missing text", fmt.Sprintf(`{"type":"chat.message.send","id":"b2","payload":{"room_id":%d}}`, private), protocol.CodeInvalid},
		{"wrong room", fmt.Sprintf(`{"type":"chat.message.send","id":"w1","payload":{"room_id":%d,"text":"hi","client_msg_id":"w1"}}`, private), protocol.CodeForbidden},
		{"no such room", `{"type":"room.join","id":"n1","payload":{"room_id":999999}}`, protocol.CodeNotFound},
		{"typing elsewhere", fmt.Sprintf(`{"type":"chat.typing","id":"t1","payload":{"room_id":%d}}`, private), protocol.CodeNotFound}, // a private room one is not in: as if missing
		{"server-only type", `{"type":"chat.message.created","id":"s1","payload":{}}`, protocol.CodeInvalid},
		{"DM to nobody", `{"type":"chat.message.send","id":"d1","payload":{"to_user":"ghost","text":"hi","client_msg_id":"d1"}}`, protocol.CodeNotFound},
	}
	for _, tc := range tests {
		c.sendRaw([]byte(tc.frame))
		env := c.waitFor(protocol.TypeSystemError)
		var pe protocol.Error
		if err := env.Unmarshal(&pe); err != nil || pe.Code != tc.code || pe.Message == "" {
			t.Errorf("%s: system.error %s, want code %s with a message", tc.name, env.Payload, tc.code)
		}
	}
	// Still open.
	c.sendRaw([]byte(`{"type":"system.hello"}`))
	c.waitFor(protocol.TypeSystemWelcome)

	c.sendRaw([]byte(`{"type":"chat.message.send","payload":{"text":"` + strings.Repeat("a", 70<<10) + `"}}`))
	env := c.waitFor(protocol.TypeSystemError)
	var pe protocol.Error
	if _ = env.Unmarshal(&pe); pe.Code != protocol.CodeFrameTooLarge {
		t.Fatalf("oversize frame: %s, want frame_too_large", env.Payload)
	}
	var ce *websocket.CloseError
	if err := c.waitClosed(); !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("oversize frame closed with %v, want 1009", err)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	c := ts.dial(t, ts.register(t, "alice", "secret1"))
	for range 200 {
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"system.hello"}`)); err != nil {
			break // closed by the server already
		}
	}
	c.waitMatch(protocol.TypeSystemError, func(e protocol.Envelope) bool {
		var pe protocol.Error
		return e.Unmarshal(&pe) == nil && pe.Code == protocol.CodeRateLimited
	})
	var ce *websocket.CloseError
	if err := c.waitClosed(); !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text == "" {
		t.Fatalf("rate limit closed with %v, want 1008 with a reason", err)
	}
}

func TestWebSocketRefusals(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	tok := ts.register(t, "alice", "secret1")
	for name, url := range map[string]string{
		"no token":  ts.wsURL(""),
		"bad token": ts.wsURL("nope"),
	} {
		_, res, err := websocket.DefaultDialer.Dial(url, nil)
		if err == nil || res == nil || res.StatusCode != 401 {
			t.Errorf("%s: dial err %v, status %v; want 401", name, err, res)
		}
	}
	_, res, err := websocket.DefaultDialer.Dial(ts.wsURL(tok), http.Header{"Origin": {"http://evil.example"}})
	if err == nil || res == nil || res.StatusCode != 403 {
		t.Fatalf("foreign origin: err %v, res %v; want 403", err, res)
	}
	ws, _, err := websocket.DefaultDialer.Dial(ts.wsURL(tok), http.Header{"Origin": {ts.URL}})
	if err != nil {
		t.Fatalf("same origin refused: %v", err)
	}
	ws.Close()
}
