package protocol_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mesh/protocol"
)

func TestTypes(t *testing.T) {
	t.Parallel()
	for typ, client := range allTypes() {
		if !typ.Known() {
			t.Errorf("%q.Known() = false, want true", typ)
		}
		if got := typ.ClientSent(); got != client {
			t.Errorf("%q.ClientSent() = %v, want %v", typ, got, client)
		}
	}
	for _, typ := range []protocol.Type{"", "system", "chat.message", "System.Hello", "system.hello ", "room.synced.x"} {
		if typ.Known() || typ.ClientSent() {
			t.Errorf("%q: Known() = %v, ClientSent() = %v, want false, false", typ, typ.Known(), typ.ClientSent())
		}
	}
}

func TestSamplesCoverEveryType(t *testing.T) {
	t.Parallel()
	seen := make(map[protocol.Type]bool)
	for _, s := range samples() {
		seen[s.typ] = true
	}
	for typ := range allTypes() {
		if !seen[typ] {
			t.Errorf("no sample payload for %q", typ)
		}
	}
}

// TestRoundTrip sends every payload through New, Encode, Decode and Unmarshal.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range samples() {
		t.Run(string(s.typ), func(t *testing.T) {
			t.Parallel()
			before := time.Now().UTC()
			e, err := protocol.New(s.typ, s.payload)
			if err != nil {
				t.Fatalf("New(%q): %v", s.typ, err)
			}
			if e.Timestamp.Before(before) || e.Timestamp.Location() != time.UTC {
				t.Errorf("New timestamp = %v, want now in UTC", e.Timestamp)
			}
			e.ID, e.From, e.To = "id-1", "alice", "bob"
			got := mustDecode(t, mustEncode(t, e))
			if diff := cmp.Diff(e, got); diff != "" {
				t.Errorf("envelope mismatch (-want +got):\n%s", diff)
			}
			out := reflect.New(reflect.TypeOf(s.payload))
			if err := got.Unmarshal(out.Interface()); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if diff := cmp.Diff(s.payload, out.Elem().Interface()); diff != "" {
				t.Errorf("payload mismatch (-want +got):\n%s", diff)
			}
			if v, ok := s.payload.(interface{ Validate() error }); ok {
				if err := v.Validate(); err != nil {
					t.Errorf("sample %T: Validate() = %v, want nil", s.payload, err)
				}
			}
		})
	}
}

func TestEncode(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 1, 5, 1, 0, 0, 5, time.FixedZone("EET", 2*3600))
	for _, tc := range []struct {
		name    string
		in      protocol.Envelope
		want    string
		wantErr error
	}{
		{name: "minimal", in: protocol.Envelope{Type: protocol.TypeSystemHello},
			want: `{"type":"system.hello","timestamp":"0001-01-01T00:00:00Z"}`},
		{name: "UTC nanos, compact, no HTML escaping", in: protocol.Envelope{Type: protocol.TypeChatTyping, ID: "a&b", Timestamp: ts,
			From: "<alice>", Payload: json.RawMessage("{ \"room_id\" : 7 }")},
			want: `{"type":"chat.typing","id":"a&b","timestamp":"2026-01-04T23:00:00.000000005Z","from":"<alice>","payload":{"room_id":7}}`},
		{name: "null payload left out", in: protocol.Envelope{Type: protocol.TypeSystemHello, Payload: json.RawMessage("null")},
			want: `{"type":"system.hello","timestamp":"0001-01-01T00:00:00Z"}`},
		{name: "no type", in: protocol.Envelope{}, wantErr: protocol.ErrMalformed},
		{name: "unknown type", in: protocol.Envelope{Type: "x.y"}, wantErr: protocol.ErrUnknownType},
		{name: "array payload", in: protocol.Envelope{Type: protocol.TypeSystemHello, Payload: json.RawMessage("[]")}, wantErr: protocol.ErrMalformed},
		{name: "invalid payload", in: protocol.Envelope{Type: protocol.TypeSystemHello, Payload: json.RawMessage("{")}, wantErr: protocol.ErrMalformed},
		{name: "year 10000", in: protocol.Envelope{Type: protocol.TypeSystemHello, Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
			wantErr: protocol.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := protocol.Encode(tc.in)
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("Encode(%+v) error = %v, want %v", tc.in, err, tc.wantErr)
			}
			if string(got) != tc.want {
				t.Errorf("Encode(%+v) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	e, err := protocol.New(protocol.TypeSystemHello, nil)
	if err != nil || e.Payload != nil || e.Type != protocol.TypeSystemHello {
		t.Errorf("New(hello, nil) = %+v, %v; want no payload", e, err)
	}
	if _, err := protocol.New("x.y", nil); !errors.Is(err, protocol.ErrUnknownType) {
		t.Errorf("New(unknown) error = %v, want ErrUnknownType", err)
	}
	if _, err := protocol.New(protocol.TypeSystemHello, []int{1}); !errors.Is(err, protocol.ErrMalformed) {
		t.Errorf("New(hello, array) error = %v, want ErrMalformed", err)
	}
	if _, err := protocol.New(protocol.TypeSystemHello, func() {}); !errors.Is(err, protocol.ErrMalformed) {
		t.Errorf("New(hello, func) error = %v, want ErrMalformed", err)
	}
}

func TestUnmarshal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		payload string
		want    protocol.ChatSend
		wantMsg string // "" for success
	}{
		{name: "empty is {}", payload: ""},
		{name: "unknown fields ignored", payload: `{"room_id":3,"text":"hi","client_msg_id":"c","mood":"happy"}`,
			want: protocol.ChatSend{RoomID: 3, Text: "hi", ClientMsgID: "c"}},
		{name: "string for number", payload: `{"room_id":"3"}`, wantMsg: `"room_id" must be an integer, not a string`},
		{name: "fraction for integer", payload: `{"room_id":1.5}`, wantMsg: `"room_id" must be an integer, not number 1.5`},
		{name: "number for string", payload: `{"text":5}`, wantMsg: `"text" must be a string, not number`},
		{name: "overflow", payload: `{"room_id":1e30}`, wantMsg: `"room_id" must be an integer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := protocol.Envelope{Type: protocol.TypeChatSend, Payload: json.RawMessage(tc.payload)}
			var got protocol.ChatSend
			err := e.Unmarshal(&got)
			if tc.wantMsg != "" {
				checkErr(t, err, protocol.ErrMalformed, tc.wantMsg)
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s) = %v, want nil", tc.payload, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Unmarshal(%s) mismatch (-want +got):\n%s", tc.payload, diff)
			}
		})
	}
}

func TestUnmarshalNestedAndBytes(t *testing.T) {
	t.Parallel()
	e := protocol.Envelope{Type: protocol.TypeP2PSessionCreated,
		Payload: json.RawMessage(`{"endpoints":{"target":{"port":"5000"}}}`)}
	checkErr(t, e.Unmarshal(&protocol.P2PSession{}), protocol.ErrMalformed, `"endpoints.target.port" must be an integer`)

	e = protocol.Envelope{Type: protocol.TypeChatCreated, Payload: json.RawMessage(`{"message":{"created_at":"noon"}}`)}
	checkErr(t, e.Unmarshal(&protocol.ChatCreated{}), protocol.ErrMalformed, "chat.message.created payload")
}

func TestUnmarshalProgrammerError(t *testing.T) {
	t.Parallel()
	e := protocol.Envelope{Type: protocol.TypeRoomJoin, Payload: json.RawMessage(`{"room_id":1}`)}
	err := e.Unmarshal(protocol.RoomRef{}) // not a pointer
	if err == nil || errors.Is(err, protocol.ErrMalformed) || !strings.Contains(err.Error(), "room.join") {
		t.Errorf("Unmarshal(non-pointer) = %v, want a non-ErrMalformed error naming the type", err)
	}
}
