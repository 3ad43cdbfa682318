package protocol_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mesh/protocol"
)

type decodeCase struct {
	name    string
	frame   string
	want    protocol.Envelope // checked when wantErr is nil
	wantErr error             // the sentinel the error must wrap
	wantMsg string            // a substring of the error message
}

// decodeCases is shared with FuzzDecode as its seed corpus.
func decodeCases() []decodeCase {
	ts := time.Date(2026, 1, 4, 23, 0, 0, 0, time.UTC)
	return []decodeCase{
		{name: "full", frame: `{"type":"room.join","id":"r1","timestamp":"2026-01-04T23:00:00Z","from":"alice","to":"bob","payload":{"room_id":7}}`,
			want: protocol.Envelope{Type: protocol.TypeRoomJoin, ID: "r1", Timestamp: ts, From: "alice", To: "bob",
				Payload: json.RawMessage(`{"room_id":7}`)}},
		{name: "type only", frame: `{"type":"system.hello"}`,
			want: protocol.Envelope{Type: protocol.TypeSystemHello}},
		{name: "whitespace compacted", frame: " \n{ \"type\" : \"room.join\", \"payload\" : { \"room_id\" : 7 } }\r\n",
			want: protocol.Envelope{Type: protocol.TypeRoomJoin, Payload: json.RawMessage(`{"room_id":7}`)}},
		{name: "wscat top-level payload", frame: `{"type":"system.hello","device_id":"test-device"}`,
			want: protocol.Envelope{Type: protocol.TypeSystemHello, Payload: json.RawMessage(`{"device_id":"test-device"}`)}},
		{name: "gathered keys sorted, envelope keys kept", frame: `{"z":1,"type":"chat.message.send","id":"x","text":"a<b","room_id":2}`,
			want: protocol.Envelope{Type: protocol.TypeChatSend, ID: "x", Payload: json.RawMessage(`{"room_id":2,"text":"a<b","z":1}`)}},
		{name: "payload key wins over top-level", frame: `{"type":"room.join","room_id":1,"payload":{"room_id":2}}`,
			want: protocol.Envelope{Type: protocol.TypeRoomJoin, Payload: json.RawMessage(`{"room_id":2}`)}},
		{name: "null payload and fields", frame: `{"type":"room.join","id":null,"timestamp":null,"from":null,"payload":null}`,
			want: protocol.Envelope{Type: protocol.TypeRoomJoin}},
		{name: "timestamp offset to UTC", frame: `{"type":"system.hello","timestamp":"2026-01-05T01:00:00.5+02:00"}`,
			want: protocol.Envelope{Type: protocol.TypeSystemHello, Timestamp: ts.Add(500 * time.Millisecond)}},
		{name: "last duplicate wins", frame: `{"type":"nope","type":"chat.typing"}`,
			want: protocol.Envelope{Type: protocol.TypeChatTyping}},

		{name: "oversize", frame: `{"type":"chat.message.send","text":"` + strings.Repeat("a", protocol.MaxFrame) + `"}`,
			wantErr: protocol.ErrTooLarge, wantMsg: "the limit is 65536"},
		{name: "empty", frame: "", wantErr: protocol.ErrMalformed, wantMsg: "empty frame"},
		{name: "blank", frame: " \n", wantErr: protocol.ErrMalformed, wantMsg: "empty frame"},
		{name: "not JSON", frame: "hello", wantErr: protocol.ErrMalformed, wantMsg: "invalid JSON at byte 1"},
		{name: "array", frame: `[{"type":"system.hello"}]`, wantErr: protocol.ErrMalformed, wantMsg: "not an array"},
		{name: "string", frame: `"system.hello"`, wantErr: protocol.ErrMalformed, wantMsg: "not a string"},
		{name: "null", frame: `null`, wantErr: protocol.ErrMalformed, wantMsg: "not null"},
		{name: "invalid JSON", frame: `{"type":"system.hello",}`, wantErr: protocol.ErrMalformed, wantMsg: "invalid JSON at byte"},
		{name: "cut short", frame: `{"type":"system.hello"`, wantErr: protocol.ErrMalformed, wantMsg: "cut short"},
		{name: "trailing garbage", frame: `{"type":"system.hello"} x`, wantErr: protocol.ErrMalformed, wantMsg: "data after the JSON object"},
		{name: "two objects", frame: `{"type":"system.hello"}{"type":"system.hello"}`, wantErr: protocol.ErrMalformed, wantMsg: "data after"},
		{name: "missing type", frame: `{"device_id":"d"}`, wantErr: protocol.ErrMalformed, wantMsg: `no "type"`},
		{name: "empty type", frame: `{"type":""}`, wantErr: protocol.ErrMalformed, wantMsg: `no "type"`},
		{name: "type not string", frame: `{"type":7}`, wantErr: protocol.ErrMalformed, wantMsg: `"type" must be a string, not a number`},
		{name: "type case matters", frame: `{"Type":"system.hello"}`, wantErr: protocol.ErrMalformed, wantMsg: `no "type"`},
		{name: "unknown type", frame: `{"type":"chat.explode","id":"u1"}`, wantErr: protocol.ErrUnknownType, wantMsg: `"chat.explode"`},
		{name: "id not string", frame: `{"type":"system.hello","id":1}`, wantErr: protocol.ErrMalformed, wantMsg: `"id" must be a string`},
		{name: "to not string", frame: `{"type":"system.hello","to":["bob"]}`, wantErr: protocol.ErrMalformed, wantMsg: `"to" must be a string, not an array`},
		{name: "bad timestamp", frame: `{"type":"system.hello","timestamp":"yesterday"}`, wantErr: protocol.ErrMalformed, wantMsg: "not RFC3339"},
		{name: "empty timestamp", frame: `{"type":"system.hello","timestamp":""}`, wantErr: protocol.ErrMalformed, wantMsg: "not RFC3339"},
		{name: "numeric timestamp", frame: `{"type":"system.hello","timestamp":1767567600}`, wantErr: protocol.ErrMalformed, wantMsg: `"timestamp" must be a string`},
		{name: "timestamp year out of range in UTC", frame: `{"type":"system.hello","timestamp":"0000-01-01T00:00:00+01:00"}`,
			wantErr: protocol.ErrMalformed, wantMsg: "0000-9999"},
		{name: "payload array", frame: `{"type":"room.join","payload":[7]}`, wantErr: protocol.ErrMalformed, wantMsg: "payload must be a JSON object, not an array"},
		{name: "payload string", frame: `{"type":"room.join","payload":"{\"room_id\":7}"}`, wantErr: protocol.ErrMalformed, wantMsg: "not a string"},
		{name: "payload number", frame: `{"type":"room.join","payload":7}`, wantErr: protocol.ErrMalformed, wantMsg: "not a number"},
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	for _, tc := range decodeCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := protocol.Decode([]byte(tc.frame))
			if tc.wantErr != nil {
				checkErr(t, err, tc.wantErr, tc.wantMsg)
				return
			}
			if err != nil {
				t.Fatalf("Decode(%q) = %v, want nil", tc.frame, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Decode(%q) mismatch (-want +got):\n%s", tc.frame, diff)
			}
		})
	}
}

// checkErr checks err wraps want and none of the other sentinels, and that
// its message contains msg.
func checkErr(t *testing.T, err, want error, msg string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want one wrapping %v", err, want)
	}
	for _, other := range []error{protocol.ErrMalformed, protocol.ErrUnknownType, protocol.ErrTooLarge} {
		if other != want && errors.Is(err, other) {
			t.Errorf("error %q also wraps %v", err, other)
		}
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error = %q, want it to contain %q", err, msg)
	}
}

func TestDecodeWscatHello(t *testing.T) {
	t.Parallel()
	e := mustDecode(t, []byte(`{"type":"system.hello","device_id":"test-device"}`))
	var h protocol.Hello
	if err := e.Unmarshal(&h); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if diff := cmp.Diff(protocol.Hello{DeviceID: "test-device"}, h); diff != "" {
		t.Errorf("Hello mismatch (-want +got):\n%s", diff)
	}
	if err := h.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
}

func TestDecodeKeepsIDOnError(t *testing.T) {
	t.Parallel()
	for frame, want := range map[string]string{
		`{"type":"chat.explode","id":"u1"}`:                   "u1",
		`{"id":"m1"}`:                                         "m1",
		`{"type":"system.hello","id":"t1","timestamp":"bad"}`: "t1",
		`{"type":"room.join","id":"p1","payload":[]}`:         "p1",
		`{"type":"room.join","id":"p1"`:                       "",
	} {
		e, err := protocol.Decode([]byte(frame))
		if err == nil {
			t.Fatalf("Decode(%q) = nil error, want one", frame)
		}
		if diff := cmp.Diff(protocol.Envelope{ID: want}, e); diff != "" {
			t.Errorf("Decode(%q) envelope mismatch (-want +got):\n%s", frame, diff)
		}
	}
}

func TestErrorCode(t *testing.T) {
	t.Parallel()
	_, malformed := protocol.Decode([]byte("x"))
	_, unknown := protocol.Decode([]byte(`{"type":"x.y"}`))
	_, large := protocol.Decode(make([]byte, protocol.MaxFrame+1))
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{malformed, protocol.CodeMalformed},
		{unknown, protocol.CodeUnknownType},
		{large, protocol.CodeFrameTooLarge},
		{protocol.ChatSend{}.Validate(), protocol.CodeMalformed},
		{errors.New("disk on fire"), protocol.CodeInternal},
	} {
		if got := protocol.ErrorCode(tc.err); got != tc.want {
			t.Errorf("ErrorCode(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
