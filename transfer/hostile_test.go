package transfer

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/zeebo/blake3"
)

const rawChunk = MinChunkSize

// startReceiver runs a real Receiver on one end of a TCP pair and returns the
// other end, for a hand-written sender, and a wait for the Receiver's result.
func startReceiver(t *testing.T, inbox string) (net.Conn, func() (Result, error)) {
	t.Helper()
	c, s := tcpPair(t)
	type ret struct {
		res Result
		err error
	}
	done := make(chan ret, 1)
	go func() {
		defer s.Close()
		r := &Receiver{Inbox: inbox}
		res, err := r.Receive(context.Background(), s)
		done <- ret{res, err}
	}()
	return c, func() (Result, error) { r := <-done; return r.res, r.err }
}

// fileEntry is a manifest entry for data, hashed right.
func fileEntry(path string, data []byte) entry {
	return entry{Path: path, Kind: kindFile, Size: int64(len(data)), Mode: 0o644, BLAKE3: b3(data)}
}

func writeManifest(t *testing.T, c net.Conn, entries ...entry) {
	t.Helper()
	m := manifestMsg{Type: typeManifest, Version: Version, ChunkSize: rawChunk, Entries: entries}
	if err := WriteMsg(c, m); err != nil {
		t.Fatal(err)
	}
}

// readRawPlan reads the plan the way a sender does.
func readRawPlan(t *testing.T, c net.Conn, n int) plan {
	t.Helper()
	p, err := readPlan(c, n)
	if err != nil {
		t.Fatalf("reading the plan: %v", err)
	}
	return p
}

// sendData sends file index i's data from 0 as a file frame, chunks and an
// end frame with the data's BLAKE3.
func sendData(t *testing.T, c net.Conn, i int, data []byte) {
	t.Helper()
	sendDataEnd(t, c, i, data, blake3.Sum256(data))
}

// prefixSum feeds b to the whole-file hasher h and returns its digest: what
// a chunk frame carries.
func prefixSum(h *blake3.Hasher, b []byte) (sum [32]byte) {
	h.Write(b)
	h.Sum(sum[:0])
	return sum
}

// sendDataEnd is sendData with the end frame claiming sum.
func sendDataEnd(t *testing.T, c net.Conn, i int, data []byte, sum [32]byte) {
	t.Helper()
	var ff [fileFrameLen]byte
	putFileFrame(&ff, uint32(i), 0)
	if _, err := c.Write(ff[:]); err != nil {
		t.Fatal(err)
	}
	running := blake3.New()
	for off := 0; off < len(data); off += rawChunk {
		b := data[off:min(off+rawChunk, len(data))]
		var cf [chunkFrameLen]byte
		h := chunkHeader{index: uint32(i), offset: int64(off), length: uint32(len(b)), sum: prefixSum(running, b)}
		h.put(&cf)
		if _, err := c.Write(append(cf[:], b...)); err != nil {
			t.Fatal(err)
		}
	}
	var ef [endFrameLen]byte
	end := endFrame{index: uint32(i), sum: sum}
	end.put(&ef)
	if _, err := c.Write(ef[:]); err != nil {
		t.Fatal(err)
	}
}

// finishRaw sends done and reads acknowledgements until the summary.
func finishRaw(t *testing.T, c net.Conn) map[int]ackMsg {
	t.Helper()
	if err := WriteMsg(c, doneMsg{Type: typeDone}); err != nil {
		t.Fatal(err)
	}
	acks := map[int]ackMsg{}
	for {
		var raw rawMsg
		if err := ReadMsg(c, &raw); err != nil {
			t.Fatalf("reading acks: %v", err)
		}
		var a ackMsg
		switch err := raw.decode(&a); {
		case err == nil:
			acks[a.Index] = a
		case raw.typ() == typeSummary:
			return acks
		default:
			t.Fatalf("reading acks: %v", err)
		}
	}
}

func TestHostileNames(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	inbox, outside := filepath.Join(base, "inbox"), filepath.Join(base, "outside")
	mkdir(t, inbox, 0o755)
	writeFile(t, filepath.Join(outside, "target"), []byte("untouched"), 0o644)
	for link, to := range map[string]string{"evil": outside, "f.txt.part": filepath.Join(outside, "target"), "tree.part": outside} {
		if err := os.Symlink(to, filepath.Join(inbox, link)); err != nil {
			t.Fatal(err)
		}
	}
	data := []byte("payload")
	hostile := []string{"../../etc/passwd", "/abs", "a/../../b", "x\x00y", strings.Repeat("n", 300), "a\\b",
		"..", ".", "", "ok/../x", "ctl\x1b[2J"}
	var entries []entry
	for _, name := range hostile {
		entries = append(entries, fileEntry(name, data))
	}
	entries = append(entries,
		fileEntry("evil/x", data), fileEntry("f.txt", data), fileEntry("tree/y", data),
		fileEntry("good.txt", data), fileEntry("good.txt", data), // a duplicate
		fileEntry("good.txt/inside", data),
		entry{Path: "dev", Kind: "device", Mode: 0o644},
	)
	c, wait := startReceiver(t, inbox)
	writeManifest(t, c, entries...)
	p := readRawPlan(t, c, len(entries))
	var refused []string
	for i, e := range entries {
		if p.files[i].Refused != "" {
			refused = append(refused, e.Path)
		} else {
			sendData(t, c, i, data)
		}
	}
	acks := finishRaw(t, c)
	res, err := wait()
	if !errors.Is(err, ErrUnsafeName) {
		t.Errorf("Receive = %v, want ErrUnsafeName", err)
	}
	wantRefused := append(hostile, "good.txt", "good.txt/inside", "dev")
	if diff := cmp.Diff(wantRefused, refused); diff != "" {
		t.Errorf("refused (-want +got):\n%s", diff)
	}
	var landed []string
	for _, a := range acks {
		landed = append(landed, a.Status+" "+a.Name)
	}
	wantLanded := []string{"ok evil (1)/x", "ok f (1).txt", "ok tree (1)/y", "ok good.txt"}
	if diff := cmp.Diff(wantLanded, landed, sortStrings); diff != "" {
		t.Errorf("acknowledged (-want +got):\n%s", diff)
	}
	if got := len(res.Files); got != len(entries) {
		t.Errorf("Receive's Result has %d files, want %d", got, len(entries))
	}
	wantOutside := map[string]node{"target": {Kind: "file", Mode: 0o644, BLAKE3: b3([]byte("untouched"))}}
	if diff := cmp.Diff(wantOutside, snapshot(t, outside)); diff != "" {
		t.Errorf("outside the inbox (-want +got):\n%s", diff)
	}
	if es, _ := os.ReadDir(base); len(es) != 2 {
		t.Errorf("%s holds %d entries, want inbox and outside only", base, len(es))
	}
}

var sortStrings = cmpopts.SortSlices(func(a, b string) bool { return a < b })

func TestWholeFileMismatch(t *testing.T) {
	t.Parallel()
	inbox := t.TempDir()
	data := randBytes(1, 3*rawChunk+10)
	c, wait := startReceiver(t, inbox)
	writeManifest(t, c, fileEntry("f.bin", data), fileEntry("tree/g", data))
	readRawPlan(t, c, 2)
	sendDataEnd(t, c, 0, data, blake3.Sum256([]byte("something else")))
	sendData(t, c, 1, data)
	acks := finishRaw(t, c)
	if _, err := wait(); !errors.Is(err, ErrMismatch) {
		t.Errorf("Receive = %v, want ErrMismatch", err)
	}
	if acks[0].Status != StatusMismatch || acks[1].Status != StatusOK {
		t.Errorf("acks = %+v, want mismatch, ok", acks)
	}
	want := map[string]node{"tree": {Kind: "dir", Mode: 0o700}, "tree/g": {Kind: "file", Mode: 0o644, BLAKE3: b3(data)}}
	if diff := cmp.Diff(want, snapshot(t, inbox)); diff != "" {
		t.Errorf("inbox (-want +got):\n%s", diff)
	}
}

func TestReceiverRejectsBadSenders(t *testing.T) {
	t.Parallel()
	data := randBytes(2, 2*rawChunk)
	tests := []struct {
		name string
		send func(t *testing.T, c net.Conn)
	}{{
		name: "unknown version",
		send: func(t *testing.T, c net.Conn) {
			WriteMsg(c, manifestMsg{Type: typeManifest, Version: 3, ChunkSize: rawChunk})
		},
	}, {
		name: "tiny chunks",
		send: func(t *testing.T, c net.Conn) {
			WriteMsg(c, manifestMsg{Type: typeManifest, Version: Version, ChunkSize: 1})
		},
	}, {
		name: "negative size",
		send: func(t *testing.T, c net.Conn) {
			writeManifest(t, c, entry{Path: "f", Kind: kindFile, Size: -1})
		},
	}, {
		name: "a version 1 peer",
		send: func(t *testing.T, c net.Conn) {
			WriteMsg(c, manifestMsg{Type: typeManifest, Version: 1, ChunkSize: rawChunk})
		},
	}, {
		name: "no end frame",
		send: func(t *testing.T, c net.Conn) {
			writeManifest(t, c, fileEntry("f", data))
			readRawPlan(t, c, 1)
			var ff [fileFrameLen]byte
			putFileFrame(&ff, 0, 0)
			c.Write(ff[:])
			running := blake3.New()
			for off := 0; off < len(data); off += rawChunk {
				var cf [chunkFrameLen]byte
				h := chunkHeader{offset: int64(off), length: rawChunk, sum: prefixSum(running, data[off:off+rawChunk])}
				h.put(&cf)
				c.Write(append(cf[:], data[off:off+rawChunk]...))
			}
			WriteMsg(c, doneMsg{Type: typeDone})
		},
	}, {
		name: "oversized control message",
		send: func(t *testing.T, c net.Conn) { c.Write([]byte{0, 1, 0, 1}) },
	}, {
		name: "not a manifest",
		send: func(t *testing.T, c net.Conn) { WriteMsg(c, doneMsg{Type: typeDone}) },
	}, {
		name: "chunk at the wrong offset",
		send: func(t *testing.T, c net.Conn) {
			writeManifest(t, c, fileEntry("f", data))
			readRawPlan(t, c, 1)
			sendData(t, c, 0, data[:0])
			var cf [chunkFrameLen]byte
			h := chunkHeader{offset: rawChunk, length: rawChunk, sum: blake3.Sum256(data[rawChunk:])}
			h.put(&cf)
			c.Write(cf[:])
		},
	}, {
		name: "done before the data",
		send: func(t *testing.T, c net.Conn) {
			writeManifest(t, c, fileEntry("f", data))
			readRawPlan(t, c, 1)
			WriteMsg(c, doneMsg{Type: typeDone})
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inbox := t.TempDir()
			c, wait := startReceiver(t, inbox)
			tt.send(t, c)
			_, err := wait()
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("Receive = %v, want ErrProtocol", err)
			}
			var a abortMsg
			if err := ReadMsg(c, &a); err != nil || a.Code != codeProtocol {
				t.Errorf("the sender read %+v, %v; want an abort with code %q", a, err, codeProtocol)
			}
		})
	}
}
