package protocol_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"mesh/protocol"
)

// FuzzDecode feeds Decode arbitrary bytes. Rejecting is fine, panicking is
// not; whatever Decode accepts must survive Encode → Decode unchanged and
// encode to the same bytes every time.
func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases() {
		if len(tc.frame) <= protocol.MaxFrame {
			f.Add([]byte(tc.frame))
		}
	}
	if golden, err := os.ReadFile(goldenPath); err == nil {
		for _, line := range bytes.Split(golden, []byte("\n")) {
			f.Add(line)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := protocol.Decode(b)
		if err != nil {
			if protocol.ErrorCode(err) == protocol.CodeInternal {
				t.Fatalf("Decode(%q) error %v wraps no sentinel", b, err)
			}
			return
		}
		b2 := mustEncode(t, e)
		if len(b2) > protocol.MaxFrame {
			return // re-encoding may grow (U+FFFD for bad UTF-8, a timestamp added)
		}
		e2 := mustDecode(t, b2)
		if diff := cmp.Diff(e, e2); diff != "" {
			t.Fatalf("Decode(Encode(Decode(%q))) mismatch (-first +second):\n%s", b, diff)
		}
		if b3 := mustEncode(t, e2); !bytes.Equal(b2, b3) {
			t.Fatalf("unstable encoding of %q:\n%s\n%s", b, b2, b3)
		}
	})
}
