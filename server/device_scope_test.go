package server_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"mesh/protocol"
)

// agentRoutes are the API routes a device token may use: what an agent does.
var agentRoutes = map[string]bool{
	"GET /ws":                   true,
	"POST /api/p2p/sessions":    true,
	"GET /api/p2p/sessions/:id": true, // the pin for the low-level send-file
	"GET /api/devices/:id":      true, // its own entry only
	"GET /api/terminals":        true, // the shares its user may watch
	"GET /api/rtc/config":       true, // the STUN address and TURN credentials, for candidates
}

// publicRoutes need no token at all.
var publicRoutes = map[string]bool{
	"POST /api/auth/register": true,
	"POST /api/auth/login":    true,
}

// A stolen agent.toml must not be the account: every route but an agent's
// refuses a device token with 403 user_login_required.
func TestDeviceTokenIsScopedToAgentWork(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	alice := ts.register(t, "alice", "secret1")
	ts.register(t, "bob", "secret2")
	room := ts.createRoom(t, alice, "plans", "private")
	laptop := ts.enroll(t, alice, "laptop", fp('a'))
	ts.enroll(t, alice, "home", fp('b'))

	// The attacks of the issue, one by one, each 2xx before.
	attacks := []struct{ method, path, body string }{
		{http.MethodGet, "/api/rooms/" + itoa(room) + "/messages", ""},
		{http.MethodPost, "/api/rooms/" + itoa(room) + "/members", `{"username":"bob"}`},
		{http.MethodDelete, "/api/devices/home", ""},
		{http.MethodPut, "/api/notify", `{"gotify_url":"https://push.example.org","gotify_token":"AbC"}`},
		{http.MethodGet, "/api/me", ""},
	}
	for _, at := range attacks {
		a := ts.do(t, at.method, at.path, []byte(at.body), laptop)
		if a.Status != http.StatusForbidden || a.errCode() != "user_login_required" {
			t.Errorf("%s %s with a device token = %d %s, want 403 user_login_required", at.method, at.path, a.Status, a.Body)
		}
	}
	if l := ts.devices(t, alice); len(l.Devices) != 2 {
		t.Fatalf("alice's devices after the attacks = %+v, want both still there", l.Devices)
	}

	// Every other route of the API, so that a new one cannot forget it.
	param := regexp.MustCompile(`:[a-z_]+`)
	for _, r := range ts.Srv.Handler().(*echo.Echo).Routes() {
		key := r.Method + " " + r.Path
		if !(strings.HasPrefix(r.Path, "/api/") || r.Path == "/ws") || agentRoutes[key] || publicRoutes[key] || strings.Contains(r.Path, "*") {
			continue
		}
		path := param.ReplaceAllString(r.Path, itoa(room))
		if a := ts.do(t, r.Method, path, []byte(`{}`), laptop); a.Status != http.StatusForbidden || a.errCode() != "user_login_required" {
			t.Errorf("%s with a device token = %d %s, want 403 user_login_required", key, a.Status, a.Body)
		}
	}

	// What an agent does still works.
	if a := ts.do(t, http.MethodGet, "/api/devices/laptop", nil, laptop); a.Status != http.StatusOK {
		t.Errorf("GET its own device entry = %d %s, want 200", a.Status, a.Body)
	}
	if a := ts.do(t, http.MethodGet, "/api/devices/LAPTOP", nil, laptop); a.Status != http.StatusOK {
		t.Errorf("GET its own device entry in capitals = %d %s, want 200", a.Status, a.Body)
	}
	if a := ts.do(t, http.MethodGet, "/api/devices/home", nil, laptop); a.Status != http.StatusForbidden {
		t.Errorf("GET another device's entry with a device token = %d %s, want 403", a.Status, a.Body)
	}
	if a := ts.do(t, http.MethodGet, "/api/devices/home", nil, alice); a.Status != http.StatusOK {
		t.Errorf("GET /api/devices/home as alice = %d %s, want 200", a.Status, a.Body)
	}
	ag := ts.agent(t, laptop, 5000, fp('a')) // hello works

	// Its WebSocket session neither reads nor writes chat.
	for _, req := range []struct {
		typ     protocol.Type
		payload any
	}{
		{protocol.TypeChatSend, protocol.ChatSend{RoomID: room, Text: "from a stolen token", ClientMsgID: "x"}},
		{protocol.TypeRoomSync, protocol.RoomSync{RoomID: room}},
		{protocol.TypeRoomJoin, protocol.RoomRef{RoomID: room}},
		{protocol.TypeCallInvite, protocol.Call{CallID: "c1", ToUser: "bob"}},
	} {
		if e := ag.waitError(ag.send(req.typ, req.payload)); e.Code != protocol.CodeUserLoginRequired {
			t.Errorf("%s from a device session: error %q %q, want %s", req.typ, e.Code, e.Message, protocol.CodeUserLoginRequired)
		}
	}
	user := ts.dial(t, alice)
	user.say(room, "for people only")
	// A hello after the message: its welcome comes after anything published before.
	ag.send(protocol.TypeSystemHello, protocol.Hello{QUICPort: 5000, Fingerprint: fp('a')})
	for deadline := time.After(waitLong); ; {
		select {
		case env := <-ag.in:
			if env.Type == protocol.TypeChatCreated || env.Type == protocol.TypePresenceUpdate {
				t.Fatalf("the device session received %s %s", env.Type, env.Payload)
			}
			if env.Type != protocol.TypeSystemWelcome {
				continue
			}
		case <-deadline:
			t.Fatalf("no welcome within %s", waitLong)
		}
		break
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
