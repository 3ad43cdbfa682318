package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"mesh/protocol"
)

// validatedPayloads maps every type a client may send to a new pointer to
// its payload, each of which has a Validate method. The server decodes
// exactly these with Unmarshal and Validate before acting on them.
func validatedPayloads() map[protocol.Type]func() validator {
	call := func() validator { return new(protocol.Call) }
	ref := func() validator { return new(protocol.RoomRef) }
	term := func() validator { return new(protocol.TerminalRef) }
	return map[protocol.Type]func() validator{
		protocol.TypeSystemHello:       func() validator { return new(protocol.Hello) },
		protocol.TypeRoomJoin:          ref,
		protocol.TypeRoomLeave:         ref,
		protocol.TypeRoomSync:          func() validator { return new(protocol.RoomSync) },
		protocol.TypeChatSend:          func() validator { return new(protocol.ChatSend) },
		protocol.TypeChatTyping:        func() validator { return new(protocol.Typing) },
		protocol.TypeP2PSessionRequest: func() validator { return new(protocol.P2PSessionRequest) },
		protocol.TypeCallInvite:        call,
		protocol.TypeCallAccept:        call,
		protocol.TypeCallReject:        call,
		protocol.TypeCallOffer:         call,
		protocol.TypeCallAnswer:        call,
		protocol.TypeCallICE:           call,
		protocol.TypeCallHangup:        call,
		protocol.TypeTerminalOpen:      func() validator { return new(protocol.TerminalOpen) },
		protocol.TypeTerminalResize:    func() validator { return new(protocol.TerminalResize) },
		protocol.TypeTerminalExit:      func() validator { return new(protocol.TerminalExit) },
		protocol.TypeTerminalWatch:     term,
		protocol.TypeTerminalUnwatch:   term,
		protocol.TypeTerminalViewers:   func() validator { return new(protocol.TerminalViewers) },
		protocol.TypeTransferReport:    func() validator { return new(protocol.TransferReport) },
		protocol.TypeTransferStart:     func() validator { return new(protocol.TransferStart) },
	}
}

// FuzzPayload feeds Envelope.Unmarshal and Validate arbitrary payload bytes
// for every client-sent type (typ picks one, modulo their number). Rejecting
// is fine, panicking is not, and every refusal wraps ErrMalformed. A payload
// that validates must survive New → Encode → Decode → Unmarshal unchanged,
// validate again, and marshal to the same bytes both times.
func FuzzPayload(f *testing.F) {
	table := validatedPayloads()
	types := make([]protocol.Type, 0, len(table))
	for typ, client := range allTypes() {
		if _, ok := table[typ]; ok != client {
			f.Fatalf("%s: client-sent %v, but in the fuzz table %v; keep validatedPayloads in step with ClientSent", typ, client, ok)
		}
		if client {
			types = append(types, typ)
		}
	}
	slices.Sort(types)
	index := func(t protocol.Type) uint8 { return uint8(slices.Index(types, t)) }
	for _, s := range samples() {
		if _, ok := table[s.typ]; ok {
			b, err := json.Marshal(s.payload)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(index(s.typ), b)
		}
	}
	frames := []string{}
	for _, tc := range decodeCases() {
		frames = append(frames, tc.frame)
	}
	if golden, err := os.ReadFile(goldenPath); err == nil {
		frames = append(frames, string(golden))
	}
	for _, fr := range frames { // the payloads of decodable client-sent seeds
		for _, line := range bytes.Split([]byte(fr), []byte("\n")) {
			if e, err := protocol.Decode(line); err == nil && e.Payload != nil && e.Type.ClientSent() {
				f.Add(index(e.Type), []byte(e.Payload))
			}
		}
	}
	for _, p := range []string{``, `null`, `[]`, `"x"`, `7`, `{"room_id":"7"}`, `{"room_id":1e400}`, `{"room_id":7.5}`,
		`{"text":"\ud800","room_id":1}`, `{"paths":["/a","/b\u0000"],"from_device":"a","to_device":"b"}`,
		`{"call_id":"c","to_user":"bob","candidate":{ "candidate" : "x" }}`, `{"share_id":"a b","cols":80,"rows":24}`} {
		f.Add(uint8(0), []byte(p))
	}
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		typ := types[int(which)%len(types)]
		v := table[typ]()
		e := protocol.Envelope{Type: typ, Payload: payload}
		if err := e.Unmarshal(v); err != nil {
			if !errors.Is(err, protocol.ErrMalformed) {
				t.Fatalf("%s Unmarshal(%q) error %v does not wrap ErrMalformed", typ, payload, err)
			}
			return
		}
		if err := v.Validate(); err != nil {
			if !errors.Is(err, protocol.ErrMalformed) {
				t.Fatalf("%s Validate(%+v) error %v does not wrap ErrMalformed", typ, v, err)
			}
			return
		}
		b1, v2 := roundTrip(t, typ, v, table[typ]())
		if b1 == nil {
			return // too large for one frame
		}
		if err := v2.Validate(); err != nil {
			t.Fatalf("%s %s validated, but after a round trip it does not: %v", typ, b1, err)
		}
		if diff := cmp.Diff(v, v2, cmp.Comparer(jsonEqual)); diff != "" {
			t.Fatalf("%s payload %q changed in a round trip (-first +second):\n%s", typ, payload, diff)
		}
		if b2, _ := roundTrip(t, typ, v2, table[typ]()); !bytes.Equal(b1, b2) {
			t.Fatalf("unstable encoding of %s payload %q:\n%s\n%s", typ, payload, b1, b2)
		}
	})
}

// roundTrip sends v through New, Encode, Decode and Unmarshal into into,
// returning the payload's wire bytes and into; nil bytes when the frame is
// over MaxFrame (re-encoding may grow: U+FFFD for bad UTF-8, an id added).
func roundTrip(t *testing.T, typ protocol.Type, v any, into validator) ([]byte, validator) {
	t.Helper()
	e, err := protocol.New(typ, v)
	if err != nil {
		t.Fatalf("New(%s, %+v): %v", typ, v, err)
	}
	b := mustEncode(t, e)
	if len(b) > protocol.MaxFrame {
		return nil, nil
	}
	e = mustDecode(t, b)
	if err := e.Unmarshal(into); err != nil {
		t.Fatalf("%s: Unmarshal of re-encoded %s: %v", typ, b, err)
	}
	return e.Payload, into
}

// jsonEqual compares two raw JSON values (a call's candidate, passed through
// untouched) by their compacted form, which is how Encode writes them.
func jsonEqual(a, b json.RawMessage) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
