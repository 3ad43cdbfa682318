package protocol_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mesh/protocol"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

const goldenPath = "testdata/envelope.golden"

// goldenFrames encodes one envelope of every event a client can receive,
// one per line, with fixed ids and timestamps.
func goldenFrames(t testing.TB) []byte {
	var buf bytes.Buffer
	for _, s := range samples() {
		if serverOnlyInput(s.typ) {
			continue
		}
		e, err := protocol.New(s.typ, s.payload)
		if err != nil {
			t.Fatalf("New(%q): %v", s.typ, err)
		}
		e.Timestamp = fixed
		if !strings.HasPrefix(string(s.typ), "system.") { // the server speaks for itself
			e.From = "alice"
		}
		buf.Write(mustEncode(t, e))
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// TestGolden pins the wire form of every server event, and checks each
// pinned line decodes and re-encodes to itself. A diff here is a protocol
// change that browsers and agents will see.
func TestGolden(t *testing.T) {
	t.Parallel()
	got := goldenFrames(t)
	if *update {
		if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (run go test ./protocol -run TestGolden -update to create it)", err)
	}
	gotLines, wantLines := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	for i := 0; i < max(len(gotLines), len(wantLines)); i++ {
		var g, w []byte
		if i < len(gotLines) {
			g = gotLines[i]
		}
		if i < len(wantLines) {
			w = wantLines[i]
		}
		if !bytes.Equal(g, w) {
			t.Errorf("%s line %d:\n got %s\nwant %s", filepath.Base(goldenPath), i+1, g, w)
		}
	}
	for _, line := range bytes.Split(bytes.TrimSpace(want), []byte("\n")) {
		if got := mustEncode(t, mustDecode(t, line)); !bytes.Equal(got, line) {
			t.Errorf("golden line re-encoded:\n got %s\nwant %s", got, line)
		}
	}
}
