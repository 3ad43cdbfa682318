package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"mesh/protocol"
)

func TestRoomsAPI(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1")
	pub := ts.createRoom(t, atok, "General", "public")
	priv := ts.createRoom(t, atok, "secret plans", "private")
	alice := ts.dial(t, atok)

	type call struct {
		name, method, path, body, tok string
		want                          int
		code                          string
	}
	rooms := "/api/rooms"
	for _, tc := range []call{
		{"name taken, other case", "POST", rooms, `{"name":"general","visibility":"public"}`, btok, 409, "room_name_taken"},
		{"no name", "POST", rooms, `{"visibility":"public"}`, btok, 400, "missing_field"},
		{"blank name", "POST", rooms, `{"name":"   "}`, btok, 400, "missing_field"},
		{"long name", "POST", rooms, `{"name":"` + strings.Repeat("n", 65) + `"}`, btok, 400, "invalid_name"},
		{"bad visibility", "POST", rooms, `{"name":"x","visibility":"secret"}`, btok, 400, "invalid_visibility"},
		{"no token", "GET", rooms, "", "", 401, "unauthorized"},
		{"bad room id", "GET", rooms + "/abc", "", btok, 400, "invalid_room_id"},
		{"no such room", "GET", rooms + "/999", "", btok, 404, "not_found"},
		{"private room, outsider", "GET", fmt.Sprintf("%s/%d", rooms, priv), "", btok, 404, "not_found"}, // as if missing
		{"outsider adds himself", "POST", fmt.Sprintf("%s/%d/members", rooms, priv), `{"username":"bob"}`, btok, 404, "not_found"},
		{"add nobody", "POST", fmt.Sprintf("%s/%d/members", rooms, priv), `{"username":"ghost"}`, atok, 404, "user_not_found"},
		{"public history, outsider", "GET", fmt.Sprintf("%s/%d/messages", rooms, pub), "", btok, 403, "forbidden"},
		{"DM with self", "POST", rooms + "/direct", `{"username":"alice"}`, atok, 400, "invalid_username"},
		{"DM with nobody", "POST", rooms + "/direct", `{"username":"ghost"}`, atok, 404, "user_not_found"},
	} {
		a := ts.do(t, tc.method, tc.path, []byte(tc.body), tc.tok)
		if a.Status != tc.want || a.errCode() != tc.code {
			t.Errorf("%s: %s %s = %d %s, want %d %s", tc.name, tc.method, tc.path, a.Status, a.Body, tc.want, tc.code)
		}
	}

	// bob sees the public room (not as member) and not the private one.
	list := func(tok string) map[int64]bool {
		t.Helper()
		a := ts.do(t, "GET", rooms, nil, tok)
		var out struct {
			Rooms []struct {
				ID     int64
				Member bool
			}
		}
		if err := json.Unmarshal(a.Body, &out); err != nil {
			t.Fatal(err)
		}
		m := map[int64]bool{}
		for _, r := range out.Rooms {
			m[r.ID] = r.Member
		}
		return m
	}
	if l := list(btok); len(l) != 1 || l[pub] {
		t.Fatalf("bob's rooms = %v, want only room %d as non-member", l, pub)
	}
	if a := ts.do(t, "GET", fmt.Sprintf("%s/%d", rooms, pub), nil, btok); a.Status != 200 || !strings.Contains(string(a.Body), `"members":[{"username":"alice","online":true}]`) {
		t.Fatalf("public room details for an outsider = %d %s", a.Status, a.Body)
	}
	// alice adds bob to the private room; alice's session hears it.
	if a := ts.do(t, "POST", fmt.Sprintf("%s/%d/members", rooms, priv), []byte(`{"username":"BOB"}`), atok); a.Status != 201 {
		t.Fatalf("add bob = %d %s", a.Status, a.Body)
	}
	alice.waitMatch(protocol.TypeRoomMemberJoined, func(e protocol.Envelope) bool {
		var m protocol.MemberEvent
		return e.Unmarshal(&m) == nil && m.RoomID == priv && m.Username == "bob"
	})
	if l := list(btok); !l[priv] {
		t.Fatalf("bob's rooms after being added = %v, want member of %d", l, priv)
	}
	// A direct room is made once.
	first := ts.do(t, "POST", rooms+"/direct", []byte(`{"username":"bob"}`), atok)
	again := ts.do(t, "POST", rooms+"/direct", []byte(`{"username":"alice"}`), btok)
	var r1, r2 struct {
		ID   int64
		Kind string
		Peer string
	}
	_ = json.Unmarshal(first.Body, &r1)
	_ = json.Unmarshal(again.Body, &r2)
	if first.Status != 201 || again.Status != 200 || r1.ID != r2.ID || r1.Kind != "direct" || r1.Peer != "bob" || r2.Peer != "alice" {
		t.Fatalf("direct rooms: %d %s then %d %s", first.Status, first.Body, again.Status, again.Body)
	}
}

func TestRoomLeave(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1")
	room := ts.createRoom(t, atok, "r", "public")
	alice, bob := ts.dial(t, atok), ts.dial(t, btok)
	bob.send(protocol.TypeRoomJoin, protocol.RoomRef{RoomID: room})
	bob.waitFor(protocol.TypeRoomJoined)
	id := bob.send(protocol.TypeRoomLeave, protocol.RoomRef{RoomID: room})
	bob.waitMatch(protocol.TypeRoomLeft, func(e protocol.Envelope) bool {
		var l protocol.RoomLeft
		return e.Unmarshal(&l) == nil && l.RefID == id && l.RoomID == room
	})
	alice.waitMatch(protocol.TypeRoomMemberLeft, func(e protocol.Envelope) bool { return e.From == "bob" })
	// bob no longer receives the room's messages: alice's next message to a
	// room bob is in arrives after anything from the room he left.
	alice.say(room, "after bob left")
	dm := alice.ack(alice.send(protocol.TypeChatSend, protocol.ChatSend{ToUser: "bob", Text: "barrier", ClientMsgID: "b"}))
	var got protocol.Message
	bob.waitMatch(protocol.TypeChatCreated, func(e protocol.Envelope) bool {
		var cc protocol.ChatCreated
		_ = e.Unmarshal(&cc) // a bad frame simply does not match
		if cc.Message.Text == "after bob left" {
			t.Fatal("bob received a message from a room he left")
		}
		got = cc.Message
		return cc.Message.Text == "barrier"
	})
	if got.RoomID != dm.RoomID {
		t.Fatalf("barrier in room %d, want %d", got.RoomID, dm.RoomID)
	}
	if pe := bob.waitError(bob.send(protocol.TypeRoomLeave, protocol.RoomRef{RoomID: dm.RoomID})); pe.Code != protocol.CodeInvalid {
		t.Fatalf("leaving a DM: %+v, want invalid", pe)
	}
}
