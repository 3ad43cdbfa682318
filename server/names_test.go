package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"mesh/protocol"
)

// TestRoomNameCharacters checks room names refuse control, bidi and other
// invisible characters, naming the character, and accept scripts that
// need none of them.
func TestRoomNameCharacters(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	tok := ts.register(t, "alice", "secret1")
	for _, tc := range []struct {
		name, room string
		label      string // "" means created
	}{
		{"NUL", "gen\x00eral", "U+0000 (null)"},
		{"right-to-left override", "general\u202e", "U+202E (right-to-left override)"},
		{"right-to-left isolate", "\u2067general", "U+2067 (right-to-left isolate)"},
		{"zero width space", "gen\u200beral", "U+200B (zero width space)"},
		{"right-to-left mark", "general\u200f", "U+200F (right-to-left mark)"},
		{"newline", "two\nlines", "U+000A (newline)"},
		{"tab", "a\tb", "U+0009 (tab)"},
		{"C1 control", "a\u0085b", "U+0085 (control character)"},
		{"hangul filler", "\u3164", "U+3164 (hangul filler)"},
		{"line separator", "a\u2028b", "U+2028 (line separator)"},
		{"hebrew", "שלום עולם", ""},
		{"arabic", "غرفة الأخبار", ""},
		{"emoji", "party \U0001F389", ""},
	} {
		a := ts.do(t, http.MethodPost, "/api/rooms", mustJSON(t, map[string]string{"name": tc.room}), tok)
		if tc.label == "" {
			if a.Status != http.StatusCreated {
				t.Errorf("%s: create room %q = %d %s, want 201", tc.name, tc.room, a.Status, a.Body)
			}
			continue
		}
		if a.Status != http.StatusBadRequest || a.errCode() != "invalid_name" || !strings.Contains(a.errMessage(), tc.label) {
			t.Errorf("%s: create room %q = %d %s, want 400 invalid_name naming %s", tc.name, tc.room, a.Status, a.Body, tc.label)
		}
	}
}

// TestRoomNamesNFC checks a name is stored in NFC and compared after
// normalising: "Café" written with a combining accent is the same name as
// "café" written with é, not a second room that looks like the first.
func TestRoomNamesNFC(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1")
	const composed, decomposed = "Caf\u00e9", "Cafe\u0301"
	a := ts.do(t, http.MethodPost, "/api/rooms", mustJSON(t, map[string]string{"name": decomposed}), atok)
	var r struct{ Name string }
	if a.Status != http.StatusCreated || json.Unmarshal(a.Body, &r) != nil {
		t.Fatalf("create room %q = %d %s, want 201", decomposed, a.Status, a.Body)
	}
	if r.Name != composed {
		t.Errorf("room created as %+q has name %+q, want NFC %+q", decomposed, r.Name, composed)
	}
	for _, name := range []string{composed, "caf\u00e9", "CAFE\u0301"} {
		a := ts.do(t, http.MethodPost, "/api/rooms", mustJSON(t, map[string]string{"name": name}), btok)
		if a.Status != http.StatusConflict || a.errCode() != "room_name_taken" {
			t.Errorf("create room %+q after %+q = %d %s, want 409 room_name_taken", name, decomposed, a.Status, a.Body)
		}
	}
	// 64 characters once composed, 128 code points as sent: the limit counts what is stored.
	long := strings.Repeat("e\u0301", 64)
	if a := ts.do(t, http.MethodPost, "/api/rooms", mustJSON(t, map[string]string{"name": long}), atok); a.Status != http.StatusCreated {
		t.Errorf("create room of 64 composed characters = %d %s, want 201", a.Status, a.Body)
	}
}

// TestChatTextRefusedCharacters checks chat.message.send with a control
// or bidi character is answered invalid_text, naming it, and stores nothing.
func TestChatTextRefusedCharacters(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	tok := ts.register(t, "alice", "secret1")
	room := ts.createRoom(t, tok, "general", "public")
	c := ts.dial(t, tok)
	for text, label := range map[string]string{
		"invoice\u202egnp.exe": "U+202E (right-to-left override)",
		"a\x00b":               "U+0000 (null)",
		"\x1b[2Jgone":          "U+001B (escape)",
	} {
		id := c.send(protocol.TypeChatSend, protocol.ChatSend{RoomID: room, Text: text, ClientMsgID: "bad"})
		if pe := c.waitError(id); pe.Code != protocol.CodeInvalidText || !strings.Contains(pe.Message, label) {
			t.Errorf("send %q: system.error %+v, want code %s naming %s", text, pe, protocol.CodeInvalidText, label)
		}
	}
	if m := c.say(room, "שלום\u200f\n\tok"); m.Seq != 1 {
		t.Errorf("first accepted message has seq %d, want 1 (a refused one was stored)", m.Seq)
	}
}
