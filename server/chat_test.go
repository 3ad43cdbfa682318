package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"mesh/protocol"
)

func TestChatBothWaysWithHistory(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1")
	room := ts.createRoom(t, atok, "general", "public")
	alice, bob := ts.dial(t, atok), ts.dial(t, btok)

	id := bob.send(protocol.TypeRoomJoin, protocol.RoomRef{RoomID: room})
	joined := bob.waitFor(protocol.TypeRoomJoined)
	var rj protocol.RoomJoined
	if err := joined.Unmarshal(&rj); err != nil || rj.RefID != id || rj.Room.ID != room || len(rj.Members) != 2 {
		t.Fatalf("room.joined = %s (%v)", joined.Payload, err)
	}
	for _, m := range rj.Members {
		if !m.Online {
			t.Errorf("member %s shown offline while connected", m.Username)
		}
	}
	alice.waitMatch(protocol.TypeRoomMemberJoined, func(e protocol.Envelope) bool { return e.From == "bob" })

	m1 := alice.say(room, "hi bob")
	if got := bob.message("hi bob"); got.From != "alice" || got.Seq != m1.Seq {
		t.Fatalf("bob got %+v, want alice's seq %d", got, m1.Seq)
	}
	m2 := bob.say(room, "hi alice")
	if got := alice.message("hi alice"); got.From != "bob" || got.Seq != m1.Seq+1 {
		t.Fatalf("alice got %+v, want bob's message with seq %d", got, m1.Seq+1)
	}
	if m2.Seq != m1.Seq+1 {
		t.Fatalf("seqs %d then %d, want consecutive", m1.Seq, m2.Seq)
	}
	// A client's claimed from is overwritten.
	forged := fmt.Sprintf(`{"type":"chat.message.send","id":"f1","from":"bob","payload":{"room_id":%d,"text":"forged","client_msg_id":"f1"}}`, room)
	alice.sendRaw([]byte(forged))
	if got := bob.message("forged"); got.From != "alice" {
		t.Fatalf("forged from = %q, want alice", got.From)
	}
	h := history(t, ts, btok, room, "")
	if len(h.Messages) != 3 || h.Messages[0].Text != "forged" || h.Messages[2].Text != "hi bob" {
		t.Fatalf("history = %+v, want 3 messages newest first", h.Messages)
	}
}

func TestHistoryPagination(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, t.TempDir())
	cfg.Auth.Registration = "open"
	cfg.HTTP.WSBurst = 200 // 120 sends at once
	ts := startServer(t, cfg)
	tok := ts.register(t, "alice", "secret1")
	room := ts.createRoom(t, tok, "log", "private")
	c := ts.dial(t, tok)
	for i := range 120 {
		c.send(protocol.TypeChatSend, protocol.ChatSend{RoomID: room, Text: fmt.Sprintf("m%03d", i), ClientMsgID: fmt.Sprint(i)})
	}
	c.message("m119")
	var all []protocol.Message
	query := "?limit=50"
	for {
		p := history(t, ts, tok, room, query)
		all = append(all, p.Messages...)
		if !p.HasMore {
			break
		}
		query = fmt.Sprintf("?limit=50&before=%d", p.Messages[len(p.Messages)-1].Seq)
	}
	if len(all) != 120 {
		t.Fatalf("paged %d messages, want 120", len(all))
	}
	for i, m := range all {
		if want := fmt.Sprintf("m%03d", 119-i); m.Text != want || m.Seq != int64(120-i) {
			t.Fatalf("message %d = %q seq %d, want %q seq %d", i, m.Text, m.Seq, want, 120-i)
		}
	}
	if p := history(t, ts, tok, room, ""); len(p.Messages) != 50 || !p.HasMore {
		t.Errorf("default limit gave %d messages (has_more %t), want 50 and more", len(p.Messages), p.HasMore)
	}
	for _, q := range []string{"?limit=0", "?limit=201", "?before=-1", "?limit=x"} {
		if a := ts.do(t, http.MethodGet, fmt.Sprintf("/api/rooms/%d/messages%s", room, q), nil, tok); a.Status != 400 {
			t.Errorf("history%s = %d %s, want 400", q, a.Status, a.Body)
		}
	}
}

func TestDirectMessagePrivacy(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok, ctok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1"), ts.register(t, "carol", "secret1")
	alice, bob, carol := ts.dial(t, atok), ts.dial(t, btok), ts.dial(t, ctok)
	carolRoom := ts.createRoom(t, ctok, "carols", "private")

	id := alice.send(protocol.TypeChatSend, protocol.ChatSend{ToUser: "bob", Text: "psst", ClientMsgID: "dm1"})
	dm := alice.ack(id)
	if got := bob.message("psst"); got.RoomID != dm.RoomID {
		t.Fatalf("bob got the DM in room %d, want %d", got.RoomID, dm.RoomID)
	}
	// Messages are published in commit order, so once carol has her own
	// later message, the DM would already have reached her.
	carol.say(carolRoom, "barrier")
	select {
	case env := <-carol.in:
		t.Fatalf("carol received %s %s", env.Type, env.Payload)
	default:
	}
	// A room carol is not in answers as if it did not exist.
	if a := ts.do(t, http.MethodGet, fmt.Sprintf("/api/rooms/%d/messages", dm.RoomID), nil, ctok); a.Status != 404 || a.errCode() != "not_found" {
		t.Errorf("carol reads the DM history: %d %s, want 404 not_found", a.Status, a.Body)
	}
	if pe := carol.waitError(carol.send(protocol.TypeRoomJoin, protocol.RoomRef{RoomID: dm.RoomID})); pe.Code != protocol.CodeNotFound {
		t.Errorf("carol joins the DM: %+v, want not_found", pe)
	}
	if pe := carol.waitError(carol.send(protocol.TypeChatSend, protocol.ChatSend{RoomID: dm.RoomID, Text: "hi", ClientMsgID: "x"})); pe.Code != protocol.CodeForbidden {
		t.Errorf("carol posts in the DM: %+v, want forbidden", pe)
	}
	// The room list shows the DM to alice with bob as peer, and not to carol.
	a := ts.do(t, http.MethodGet, "/api/rooms", nil, ctok)
	if strings.Contains(string(a.Body), fmt.Sprintf(`"id":%d,`, dm.RoomID)) {
		t.Errorf("carol's room list shows the DM: %s", a.Body)
	}
	if a := ts.do(t, http.MethodGet, "/api/rooms", nil, atok); !strings.Contains(string(a.Body), `"peer":"bob"`) {
		t.Errorf("alice's room list lacks the DM with bob: %s", a.Body)
	}
}

func TestDuplicateClientMsgID(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	tok := ts.register(t, "alice", "secret1")
	room := ts.createRoom(t, tok, "r", "public")
	c := ts.dial(t, tok)
	first := c.ack(c.send(protocol.TypeChatSend, protocol.ChatSend{RoomID: room, Text: "once", ClientMsgID: "same"}))
	again := c.ack(c.send(protocol.TypeChatSend, protocol.ChatSend{RoomID: room, Text: "once", ClientMsgID: "same"}))
	if first.ID != again.ID || first.Seq != again.Seq {
		t.Fatalf("retry stored a new message: %+v vs %+v", first, again)
	}
	if h := history(t, ts, tok, room, ""); len(h.Messages) != 1 {
		t.Fatalf("history has %d messages, want 1", len(h.Messages))
	}
}

func TestResumeWithSince(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1")
	room := ts.createRoom(t, atok, "r", "public")
	alice, bob := ts.dial(t, atok), ts.dial(t, btok)
	bob.waitError(bob.send(protocol.TypeChatSend, protocol.ChatSend{RoomID: room, Text: "x", ClientMsgID: "x"})) // not a member yet
	bob.send(protocol.TypeRoomJoin, protocol.RoomRef{RoomID: room})
	bob.waitFor(protocol.TypeRoomJoined)
	last := bob.message(alice.say(room, "before").Text).Seq
	_ = bob.ws.Close() // the connection drops
	<-bob.closed
	for i := range 5 {
		alice.say(room, fmt.Sprintf("missed %d", i))
	}
	bob = ts.dial(t, btok)
	id := bob.send(protocol.TypeRoomSync, protocol.RoomSync{RoomID: room, Since: last})
	env := bob.waitFor(protocol.TypeRoomSynced)
	var rs protocol.RoomSynced
	if err := env.Unmarshal(&rs); err != nil || rs.RefID != id {
		t.Fatalf("room.synced = %s (%v)", env.Payload, err)
	}
	if len(rs.Messages) != 5 || rs.HasMore {
		t.Fatalf("resumed %d messages (has_more %t), want 5", len(rs.Messages), rs.HasMore)
	}
	for i, m := range rs.Messages {
		if m.Text != fmt.Sprintf("missed %d", i) || m.Seq != last+1+int64(i) {
			t.Fatalf("resumed[%d] = %q seq %d", i, m.Text, m.Seq)
		}
	}
	// Membership, not a join, is what delivers live events after reconnecting.
	alice.say(room, "live")
	bob.message("live")
}

// TestSyncPagesFitTheFrameCap: room.sync pages are cut by size, so a
// client applying the same 64 KiB cap as the server (this test's client
// decodes with protocol.Decode) can resume a room of long messages.
func TestSyncPagesFitTheFrameCap(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	tok := ts.register(t, "alice", "secret1")
	room := ts.createRoom(t, tok, "long", "public")
	alice := ts.dial(t, tok)
	long := strings.Repeat("é", protocol.MaxTextRunes-10) // 2 bytes each: ~8 KB a message
	const n = 30                                          // ~240 KB: one page of 30 would be far over the cap
	for i := range n {
		alice.ack(alice.send(protocol.TypeChatSend, protocol.ChatSend{RoomID: room, Text: fmt.Sprintf("%02d %s", i, long), ClientMsgID: fmt.Sprint(i)}))
	}
	reader := ts.dial(t, tok)
	var got []protocol.Message
	since, pages := int64(0), 0
	for {
		reader.send(protocol.TypeRoomSync, protocol.RoomSync{RoomID: room, Since: since})
		var rs protocol.RoomSynced
		if err := reader.waitFor(protocol.TypeRoomSynced).Unmarshal(&rs); err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, rs.Messages...)
		if !rs.HasMore {
			break
		}
		if len(rs.Messages) == 0 {
			t.Fatal("room.synced with has_more and no messages: the client cannot advance")
		}
		since = rs.Messages[len(rs.Messages)-1].Seq
	}
	if len(got) != n {
		t.Fatalf("synced %d messages in %d pages, want %d", len(got), pages, n)
	}
	for i, m := range got {
		if m.Seq != int64(i+1) || !strings.HasPrefix(m.Text, fmt.Sprintf("%02d ", i)) {
			t.Fatalf("synced[%d] = seq %d %.8q", i, m.Seq, m.Text)
		}
	}
	if pages < 4 {
		t.Errorf("%d pages for ~240 KB of messages; pages must stay under 64 KiB", pages)
	}
}
