package terminal

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sampleFrames is one frame of each kind and edge, shared with FuzzReader.
func sampleFrames() []Frame {
	return []Frame{
		Hello{Cols: 80, Rows: 24, Input: true, Command: "bash", Offset: 1 << 40}.Frame(),
		Hello{}.Frame(),
		{Type: FrameOutput, Offset: 7, Data: []byte("\x1b[1mhi\r\n\xff")},
		{Type: FrameOutput, Offset: math.MaxUint64},
		{Type: FrameOutput, Data: bytes.Repeat([]byte{'x'}, MaxPayload-8)},
		{Type: FrameInput, Data: []byte("ls\r")},
		{Type: FrameInput},
		{Type: FrameResize, Cols: 65535, Rows: 1},
		{Type: FrameExit, Code: -1, Reason: "killed by signal 9"},
		{Type: FrameExit, Code: math.MaxInt32},
	}
}

func TestFrameRoundTrip(t *testing.T) {
	t.Parallel()
	var stream bytes.Buffer
	for _, f := range sampleFrames() {
		if err := WriteFrame(&stream, f); err != nil {
			t.Fatalf("WriteFrame(%+v) = %v", f, err)
		}
	}
	r := NewReader(&stream)
	for _, want := range sampleFrames() {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("Next() = %v, want %+v", err, want)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next() at the end = %v, want io.EOF", err)
	}
}

func TestHelloJSON(t *testing.T) {
	t.Parallel()
	got := string(Hello{Cols: 80, Rows: 24, Input: true, Command: "bash", Offset: 9}.Frame().Data)
	if want := `{"cols":80,"rows":24,"input":true,"command":"bash","offset":9}`; got != want {
		t.Errorf("hello JSON = %s, want %s", got, want)
	}
	h, err := Frame{Type: FrameHello, Data: []byte(`{"cols":1,"rows":2,"future":[1]}`)}.Hello()
	if err != nil || h != (Hello{Cols: 1, Rows: 2}) {
		t.Errorf("hello with an unknown key = %+v, %v; want {Cols:1 Rows:2}", h, err)
	}
}

func TestReaderRejects(t *testing.T) {
	t.Parallel()
	hdr := func(typ byte, n uint32) []byte {
		return []byte{typ, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	frame := func(typ byte, payload string) []byte { return append(hdr(typ, uint32(len(payload))), payload...) }
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr error
		wantMsg string
	}{
		{"unknown type", frame(9, ""), ErrProtocol, "unknown frame type 9"},
		{"type zero", frame(0, "x"), ErrProtocol, "unknown frame type 0"},
		{"too long", hdr(FrameInput, MaxPayload+1), ErrProtocol, "limit is 65536"},
		{"huge", hdr(FrameOutput, math.MaxUint32), ErrProtocol, "limit"},
		{"output without offset", frame(FrameOutput, "1234567"), ErrProtocol, "no offset"},
		{"short resize", frame(FrameResize, "123"), ErrProtocol, "want 4"},
		{"long resize", frame(FrameResize, "12345"), ErrProtocol, "want 4"},
		{"exit without code", frame(FrameExit, "123"), ErrProtocol, "no code"},
		{"hello not JSON", frame(FrameHello, "hi"), ErrProtocol, "not a JSON object"},
		{"hello null", frame(FrameHello, "null"), ErrProtocol, "not a JSON object"},
		{"hello bad field", frame(FrameHello, `{"cols":"80"}`), ErrProtocol, "hello"},
		{"hello size", frame(FrameHello, `{"cols":70000}`), ErrProtocol, "size 70000x0"},
		{"cut header", hdr(FrameInput, 1)[:3], io.ErrUnexpectedEOF, "unexpected EOF"},
		{"cut payload", frame(FrameInput, "abc")[:7], io.ErrUnexpectedEOF, "read frame type 2"},
		{"no payload", hdr(FrameInput, 2), io.ErrUnexpectedEOF, "unexpected EOF"},
	} {
		_, err := NewReader(bytes.NewReader(tc.in)).Next()
		if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("%s: Next() = %v, want %v containing %q", tc.name, err, tc.wantErr, tc.wantMsg)
		}
	}
}

func TestWriteFrameRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		f    Frame
		want string
	}{
		{"unknown type", Frame{Type: 6}, "unknown type 6"},
		{"big output", Frame{Type: FrameOutput, Data: make([]byte, MaxPayload-7)}, "limit is 65536"},
		{"big input", Frame{Type: FrameInput, Data: make([]byte, MaxPayload+1)}, "limit is 65536"},
		{"negative size", Frame{Type: FrameResize, Cols: -1, Rows: 24}, "out of range"},
		{"wide", Frame{Type: FrameResize, Cols: 80, Rows: 65536}, "out of range"},
		{"code", Frame{Type: FrameExit, Code: math.MaxInt32 + 1}, "out of range"},
		{"bad hello", Frame{Type: FrameHello, Data: []byte("[]")}, "not a JSON object"},
	} {
		var w countingWriter
		if err := WriteFrame(&w, tc.f); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: WriteFrame = %v, want an error containing %q", tc.name, err, tc.want)
		}
		if w.writes != 0 {
			t.Errorf("%s: WriteFrame wrote %d times after refusing", tc.name, w.writes)
		}
	}
}

func TestWriteFrameWritesOnce(t *testing.T) {
	t.Parallel()
	for _, f := range sampleFrames() {
		var w countingWriter
		if err := WriteFrame(&w, f); err != nil || w.writes != 1 {
			t.Errorf("WriteFrame(type %d) = %v after %d writes, want one write", f.Type, err, w.writes)
		}
	}
}

type countingWriter struct{ writes int }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return len(p), nil
}

// FuzzReader: rejecting is fine, panicking is not; the only errors are
// ErrProtocol and a stream cut short; what decodes encodes to the same bytes.
func FuzzReader(f *testing.F) {
	var all bytes.Buffer
	for _, fr := range sampleFrames() {
		var b bytes.Buffer
		if err := WriteFrame(&b, fr); err != nil {
			f.Fatal(err)
		}
		all.Write(b.Bytes())
		f.Add(b.Bytes())
	}
	f.Add(all.Bytes())
	f.Add([]byte{FrameHello, 0, 0, 0, 2, '{', '}', FrameExit, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xfe})
	f.Add([]byte{FrameOutput, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b))
		var again bytes.Buffer
		for {
			fr, err := r.Next()
			if err != nil {
				if !errors.Is(err, ErrProtocol) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("Next() = %v, want ErrProtocol, io.EOF or io.ErrUnexpectedEOF", err)
				}
				break
			}
			if err := WriteFrame(&again, fr); err != nil {
				t.Fatalf("WriteFrame(%+v) of a decoded frame = %v", fr, err)
			}
		}
		if !bytes.HasPrefix(b, again.Bytes()) {
			t.Fatalf("re-encoded %q, not a prefix of the input %q", again.Bytes(), b)
		}
	})
}
