package protocol_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"mesh/protocol"
)

func TestTermFrameRoundTrip(t *testing.T) {
	t.Parallel()
	for _, f := range []protocol.TermFrame{
		{Kind: protocol.TermOutput, ShareID: "sh-1", Offset: 1 << 40, Data: []byte("\x1b[1mhi\r\n\xff")},
		{Kind: protocol.TermOutput, ShareID: "s", Data: []byte{}},
		{Kind: protocol.TermInput, ShareID: "abc_DEF-9", Data: []byte("ls\r")},
	} {
		b := protocol.AppendTermFrame(nil, f)
		got, err := protocol.DecodeTermFrame(b)
		if err != nil {
			t.Fatalf("DecodeTermFrame(%q) = %v", b, err)
		}
		if diff := cmp.Diff(f, got); diff != "" {
			t.Errorf("round trip of %+v (-want +got):\n%s", f, diff)
		}
	}
}

func TestTermFrameRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "of 0 bytes"},
		{"unknown kind", []byte{9, 1, 'a'}, "kind 9"},
		{"cut id", []byte{protocol.TermInput, 5, 'a'}, "cut inside"},
		{"empty id", []byte{protocol.TermInput, 0, 'x'}, "share_id"},
		{"odd id", []byte{protocol.TermInput, 3, 'a', '/', 'b'}, "letters, digits"},
		{"no offset", []byte{protocol.TermOutput, 1, 'a', 0, 0}, "without its offset"},
		{"huge", append([]byte{protocol.TermInput, 1, 'a'}, bytes.Repeat([]byte{'x'}, protocol.MaxFrame)...), "limit"},
	} {
		_, err := protocol.DecodeTermFrame(tc.b)
		if !errors.Is(err, protocol.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: DecodeTermFrame = %v, want ErrMalformed containing %q", tc.name, err, tc.want)
		}
	}
}

// FuzzDecodeTermFrame: rejecting is fine, panicking is not; what decodes
// must encode to the same bytes.
func FuzzDecodeTermFrame(f *testing.F) {
	f.Add(protocol.AppendTermFrame(nil, protocol.TermFrame{Kind: protocol.TermOutput, ShareID: "sh-1", Offset: 7, Data: []byte("hi")}))
	f.Add(protocol.AppendTermFrame(nil, protocol.TermFrame{Kind: protocol.TermInput, ShareID: "x", Data: []byte("\x03")}))
	f.Add([]byte{1, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := protocol.DecodeTermFrame(b)
		if err != nil {
			if !errors.Is(err, protocol.ErrMalformed) {
				t.Fatalf("DecodeTermFrame(%q) error %v is not ErrMalformed", b, err)
			}
			return
		}
		if b2 := protocol.AppendTermFrame(nil, fr); !bytes.Equal(b, b2) {
			t.Fatalf("DecodeTermFrame(%q) re-encodes as %q", b, b2)
		}
	})
}
