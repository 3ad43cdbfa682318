package peer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestControlRoundTrip(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := Hello{SessionID: "s1", Token: "t", DeviceID: "d", Kind: "file"}
	for _, m := range []struct {
		typ string
		v   any
	}{{TypeHello, h}, {TypeOK, nil}, {TypeDeny, Deny{Reason: "wrong kind"}}} {
		if err := WriteControl(&buf, m.typ, m.v); err != nil {
			t.Fatal(err)
		}
	}
	var got Hello
	if err := readBody(&buf, TypeHello, &got); err != nil || got != h {
		t.Errorf("read hello = %+v, %v; want %+v", got, err, h)
	}
	if typ, body, err := ReadControl(&buf); typ != TypeOK || body != nil || err != nil {
		t.Errorf("ReadControl = %q, %s, %v; want %s without body", typ, body, err, TypeOK)
	}
	if err := readBody(&buf, TypeOK, nil); err == nil || err.Error() != "denied: wrong kind" {
		t.Errorf("reading a deny while waiting for OK = %v, want denied: wrong kind", err)
	}
	if _, _, err := ReadControl(&buf); err != io.EOF {
		t.Errorf("ReadControl at the end = %v, want io.EOF", err)
	}
}

func TestControlLimits(t *testing.T) {
	t.Parallel()
	frame := func(n uint32, body string) []byte {
		return append(binary.BigEndian.AppendUint32(nil, n), body...)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"4 GiB length", frame(1<<32-1, ""), ErrProtocol},
		{"just over the limit", frame(MaxControl+1, ""), ErrProtocol},
		{"zero length", frame(0, ""), ErrProtocol},
		{"not JSON", frame(3, "abc"), ErrProtocol},
		{"no type", frame(2, "{}"), ErrProtocol},
		{"cut short", frame(10, `{"type"`), io.ErrUnexpectedEOF},
		{"cut in the length", []byte{0, 0}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		if _, _, err := ReadControl(bytes.NewReader(tt.in)); !errors.Is(err, tt.want) {
			t.Errorf("%s: ReadControl = %v, want %v", tt.name, err, tt.want)
		}
	}
	big := Deny{Reason: strings.Repeat("x", MaxControl)}
	if err := WriteControl(io.Discard, TypeDeny, big); !errors.Is(err, ErrProtocol) {
		t.Errorf("WriteControl(%d-byte reason) = %v, want ErrProtocol", len(big.Reason), err)
	}
}

func FuzzReadControl(f *testing.F) {
	for _, m := range []struct {
		typ string
		v   any
	}{{TypeHello, Hello{SessionID: "s", Token: "t", DeviceID: "d", Kind: "file"}}, {TypeOK, nil}, {TypeDeny, Deny{"no"}}} {
		var b bytes.Buffer
		if err := WriteControl(&b, m.typ, m.v); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Add([]byte{0, 0, 0, 14, '{', '"', 't', 'y', 'p', 'e', '"', ':', '"', 'x', '"', '}', ' ', ' '})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, body, err := ReadControl(bytes.NewReader(b))
		if err != nil { // rejecting is fine; panicking is not
			return
		}
		var b2 bytes.Buffer
		if err := WriteControl(&b2, typ, body); err != nil {
			t.Fatalf("accepted %q %s but cannot re-encode it: %v", typ, body, err)
		}
		typ2, body2, err := ReadControl(bytes.NewReader(b2.Bytes()))
		if err != nil || typ2 != typ || !jsonEqual(body, body2) {
			t.Fatalf("re-encoded %q %s reads back as %q %s, %v", typ, body, typ2, body2, err)
		}
		var b3 bytes.Buffer
		if err := WriteControl(&b3, typ2, body2); err != nil || !bytes.Equal(b2.Bytes(), b3.Bytes()) {
			t.Fatalf("unstable encoding: %v\n%q\n%q", err, b2.Bytes(), b3.Bytes())
		}
	})
}

// jsonEqual compares two bodies as compacted JSON (nil stands for absent).
func jsonEqual(a, b json.RawMessage) bool {
	compact := func(m json.RawMessage) string {
		if m == nil {
			return ""
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, m); err != nil {
			return fmt.Sprintf("invalid %q", m)
		}
		return buf.String()
	}
	return compact(a) == compact(b)
}
