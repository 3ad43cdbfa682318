package transfer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteReadMsg(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in  any
		out any // a pointer to the zero value of in's type
	}{
		{manifestMsg{Type: typeManifest, Version: Version, ChunkSize: 1 << 20, More: true,
			Entries: []entry{{Path: "t/a", Kind: kindFile, Size: 3, Mode: 0o644}}}, &manifestMsg{}},
		{planMsg{Type: typePlan, Tops: []landing{{Name: "t", As: "t (1)"}},
			Files: []planEntry{{Index: 1, Offset: 4096, Prefix: "00"}, {Index: 2, Refused: "no"}}}, &planMsg{}},
		{ackMsg{Type: typeAck, Index: 3, Status: StatusOK, Name: "t (1)/a"}, &ackMsg{}},
		{doneMsg{Type: typeDone, Files: 2, Bytes: 9}, &doneMsg{}},
		{summaryMsg{Type: typeSummary, OK: 1, Renamed: []landing{{Name: "t", As: "t.part"}}}, &summaryMsg{}},
		{abortMsg{Type: typeAbort, Code: codeNoSpace, Reason: "full"}, &abortMsg{}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%T", tt.in), func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := WriteMsg(&buf, tt.in); err != nil {
				t.Fatal(err)
			}
			if n := binary.BigEndian.Uint32(buf.Bytes()); int(n) != buf.Len()-4 {
				t.Errorf("length prefix %d, body %d bytes", n, buf.Len()-4)
			}
			if err := ReadMsg(&buf, tt.out); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.in, deref(tt.out), cmp.AllowUnexported(entry{})); diff != "" {
				t.Errorf("round trip (-in +out):\n%s", diff)
			}
		})
	}
}

func deref(p any) any {
	switch v := p.(type) {
	case *manifestMsg:
		return *v
	case *planMsg:
		return *v
	case *ackMsg:
		return *v
	case *doneMsg:
		return *v
	case *summaryMsg:
		return *v
	case *abortMsg:
		return *v
	}
	panic(fmt.Sprintf("deref %T", p))
}

func TestWriteMsgRefusesLargeMessages(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	err := WriteMsg(&buf, abortMsg{Type: typeAbort, Reason: strings.Repeat("x", MaxControl)})
	if !errors.Is(err, ErrProtocol) || buf.Len() != 0 {
		t.Errorf("WriteMsg(70 KiB) = %v and %d bytes written, want ErrProtocol and none", err, buf.Len())
	}
}

// strictReader fails the test if more than its bytes are asked for.
type strictReader struct {
	t *testing.T
	b []byte
}

func (r *strictReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		r.t.Fatal("ReadMsg read past the length word")
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestReadMsg(t *testing.T) {
	t.Parallel()
	frame := func(body string) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
		return append(b, body...)
	}
	tests := []struct {
		name string
		in   []byte
		into any
		want error // matched with errors.Is
	}{
		{"ok", frame(`{"type":"ack","index":1,"status":"ok"}`), &ackMsg{}, nil},
		{"any type into raw", frame(`{"type":"future"}`), &rawMsg{}, nil},
		{"over MaxControl", binary.BigEndian.AppendUint32(nil, MaxControl+1), &ackMsg{}, ErrProtocol},
		{"a data tag", binary.BigEndian.AppendUint32(nil, tagChunk), &rawMsg{}, ErrProtocol},
		{"no type", frame(`{"index":1}`), &ackMsg{}, ErrProtocol},
		{"empty type", frame(`{"type":""}`), &rawMsg{}, ErrProtocol},
		{"type not a string", frame(`{"type":7}`), &rawMsg{}, ErrProtocol},
		{"not an object", frame(`[1,2]`), &rawMsg{}, ErrProtocol},
		{"not JSON", frame(`{"type":"ack"`), &ackMsg{}, ErrProtocol},
		{"wrong type", frame(`{"type":"done"}`), &ackMsg{}, ErrProtocol},
		{"wrong field type", frame(`{"type":"ack","index":"1"}`), &ackMsg{}, ErrProtocol},
		{"empty stream", nil, &ackMsg{}, io.EOF},
		{"short length", []byte{0, 0}, &ackMsg{}, io.ErrUnexpectedEOF},
		{"short body", frame(`{"type":"ack"}`)[:8], &ackMsg{}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var r io.Reader = bytes.NewReader(tt.in)
			if tt.want == ErrProtocol && len(tt.in) == 4 {
				r = &strictReader{t: t, b: tt.in}
			}
			if err := ReadMsg(r, tt.into); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("ReadMsg = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestManifestIsSplit(t *testing.T) {
	t.Parallel()
	var entries []entry
	for i := range 3000 {
		entries = append(entries, entry{Path: fmt.Sprintf("tree/%s-%d", strings.Repeat("x", 40), i),
			Kind: kindFile, Size: int64(i), Mode: 0o644})
	}
	var buf bytes.Buffer
	err := writeBatched(&buf, entries, func(b []entry, more bool) any {
		return manifestMsg{Type: typeManifest, Version: Version, ChunkSize: MinChunkSize, Entries: b, More: more}
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []entry
	msgs := 0
	for more := true; more; msgs++ {
		var m manifestMsg
		if err := ReadMsg(&buf, &m); err != nil {
			t.Fatal(err)
		}
		got, more = append(got, m.Entries...), m.More
	}
	if msgs < 5 || buf.Len() != 0 {
		t.Errorf("%d messages and %d bytes left, want several and none", msgs, buf.Len())
	}
	if diff := cmp.Diff(entries, got, cmp.AllowUnexported(entry{})); diff != "" {
		t.Errorf("entries (-sent +read):\n%s", diff)
	}
}

func FuzzReadMsg(f *testing.F) {
	for _, v := range []any{
		manifestMsg{Type: typeManifest, Version: 1, ChunkSize: 1 << 20, Entries: []entry{{Path: "a", Kind: kindDir}}},
		planMsg{Type: typePlan, Files: []planEntry{{Index: 1, Offset: 2}}},
		ackMsg{Type: typeAck, Status: StatusOK}, abortMsg{Type: typeAbort, Code: codeMismatch},
	} {
		var buf bytes.Buffer
		if err := WriteMsg(&buf, v); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0x80, 0, 0, 2, 1, 2, 3})
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var raw rawMsg
		if err := ReadMsg(bytes.NewReader(b), &raw); err != nil {
			return // rejecting is fine; panicking is not
		}
		if len(raw) > MaxControl {
			t.Fatalf("accepted a %d-byte message", len(raw))
		}
		for _, v := range []any{&manifestMsg{}, &planMsg{}, &ackMsg{}, &summaryMsg{}, &doneMsg{}} {
			if err := raw.decode(v); err != nil {
				continue
			}
			b2, err := json.Marshal(v) // a decoded message encodes stably
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			v2 := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := decodeMsg(b2, v2); err != nil {
				t.Fatalf("decode own encoding %s: %v", b2, err)
			}
			if b3, _ := json.Marshal(v2); !bytes.Equal(b2, b3) {
				t.Fatalf("unstable encoding:\n%s\n%s", b2, b3)
			}
		}
	})
}
