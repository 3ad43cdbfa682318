package transfer

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/zeebo/blake3"
)

// wireBuf builds what a sender writes, for seeds.
type wireBuf struct {
	tb testing.TB
	bytes.Buffer
}

func (w *wireBuf) msg(v any) *wireBuf {
	if err := WriteMsg(&w.Buffer, v); err != nil {
		w.tb.Fatal(err)
	}
	return w
}

func (w *wireBuf) manifest(more bool, entries ...entry) *wireBuf {
	return w.msg(manifestMsg{Type: typeManifest, Version: Version, ChunkSize: rawChunk, Entries: entries, More: more})
}

// data writes file index i's frames from off; flip corrupts the chunk at
// that offset after it was hashed (-1: none).
func (w *wireBuf) data(i int, off int64, data []byte, flip int64) *wireBuf {
	return w.dataEnd(i, off, data, flip, blake3.Sum256(data))
}

// dataEnd is data with the end frame claiming sum.
func (w *wireBuf) dataEnd(i int, off int64, data []byte, flip int64, sum [32]byte) *wireBuf {
	var ff [fileFrameLen]byte
	putFileFrame(&ff, uint32(i), off)
	w.Write(ff[:])
	running := blake3.New()
	running.Write(data[:off])
	for ; off < int64(len(data)); off += rawChunk {
		b := bytes.Clone(data[off:min(off+rawChunk, int64(len(data)))])
		h := chunkHeader{index: uint32(i), offset: off, length: uint32(len(b)), sum: prefixSum(running, b)}
		if off == flip {
			b[0] ^= 0x10
		}
		var cf [chunkFrameLen]byte
		h.put(&cf)
		w.Write(cf[:])
		w.Write(b)
	}
	var ef [endFrameLen]byte
	end := endFrame{index: uint32(i), sum: sum}
	end.put(&ef)
	w.Write(ef[:])
	return w
}

func (w *wireBuf) done() *wireBuf { return w.msg(doneMsg{Type: typeDone}) }

// fuzzLinks are the symlinks out of the inbox that every FuzzReceive input
// meets where its names land; beside them lies "r.bin.part" holding
// fuzzResumeData's first chunk, for a resume.
var fuzzLinks = map[string]string{"evil": "../outside", "f.txt.part": "../outside/target", "tree.part": "../outside"}

func fuzzResumeData() []byte { return randBytes(3, 2*rawChunk+7) }

// addReceiveSeeds adds the wire sequences of the receiver's table tests
// (hostile_test.go), each split into its manifest and what follows it.
func addReceiveSeeds(f *testing.F) {
	small, big := []byte("payload"), randBytes(1, rawChunk+100)
	resume := fuzzResumeData()
	seed := func(head, rest *wireBuf) { f.Add(head.Bytes(), rest.Bytes()) }
	w := func() *wireBuf { return &wireBuf{tb: f} }

	seed(w().manifest(false, fileEntry("f.txt", small)), w().data(0, 0, small, -1).done())
	seed(w().manifest(false, fileEntry("big.bin", big)), w().data(0, 0, big, -1).done())
	tree := []entry{{Path: "tree", Kind: kindDir, Mode: 0o755}, fileEntry("tree/a.txt", small),
		{Path: "tree/sub", Kind: kindDir, Mode: 0o750}, fileEntry("tree/sub/b.bin", big), fileEntry("tree/empty", nil)}
	seed(w().manifest(false, tree...), w().data(1, 0, small, -1).data(3, 0, big, -1).data(4, 0, nil, -1).done())
	seed(w().manifest(true, fileEntry("m/a", small)).manifest(false, fileEntry("m/b", big)),
		w().data(0, 0, small, -1).data(1, 0, big, -1).done())
	seed(w().manifest(false, fileEntry("r.bin", resume)), w().data(0, rawChunk, resume, -1).done())
	seed(w().manifest(false, fileEntry("r.bin", resume)), w().data(0, 0, resume, -1).done())

	hostile := []string{"../../etc/passwd", "/abs", "a/../../b", "x\x00y", strings.Repeat("n", 300), "a\\b",
		"..", ".", "", "ok/../x", "ctl\x1b[2J"}
	var entries []entry
	for _, name := range hostile {
		entries = append(entries, fileEntry(name, small))
	}
	entries = append(entries, fileEntry("evil/x", small), fileEntry("f.txt", small), fileEntry("tree/y", small),
		fileEntry("good.txt", small), fileEntry("good.txt", small), fileEntry("good.txt/inside", small),
		entry{Path: "dev", Kind: "device", Mode: 0o644})
	rest := w()
	for i := range 4 { // the entries TestHostileNames sees accepted
		rest.data(len(hostile)+i, 0, small, -1)
	}
	seed(w().manifest(false, entries...), rest.done())

	seed(w().manifest(false, fileEntry("f.bin", big), fileEntry("tree/g", big)),
		w().dataEnd(0, 0, big, -1, blake3.Sum256([]byte("something else"))).data(1, 0, big, -1).done())
	seed(w().manifest(false, fileEntry("f.bin", big)), w().data(0, 0, big, rawChunk).done())
	seed(w().manifest(false, fileEntry("f.bin", big)),
		w().data(0, 0, big[:rawChunk], -1).msg(abortMsg{Type: typeAbort, Code: codeError, Reason: "gone"}))

	// TestReceiverRejectsBadSenders.
	seed(w().msg(manifestMsg{Type: typeManifest, Version: 3, ChunkSize: rawChunk}), w())
	seed(w().msg(manifestMsg{Type: typeManifest, Version: Version, ChunkSize: 1}), w())
	seed(w().manifest(false, entry{Path: "f", Kind: kindFile, Size: -1}), w())
	seed(w().msg(manifestMsg{Type: typeManifest, Version: 1, ChunkSize: rawChunk}), w())
	f.Add([]byte{0, 1, 0, 1}, []byte{})
	seed(w().done(), w())
	var cf [chunkFrameLen]byte
	h := chunkHeader{offset: rawChunk, length: uint32(len(big) - rawChunk), sum: blake3.Sum256(big[rawChunk:])}
	h.put(&cf)
	off := w().data(0, 0, nil, -1)
	off.Write(cf[:])
	seed(w().manifest(false, fileEntry("f", big)), off)
	seed(w().manifest(false, fileEntry("f", big)), w().done())
}

// FuzzReceive feeds a real Receiver a manifest and whatever follows it, both
// hostile. Whatever the bytes, Receive returns, writes nothing outside its
// inbox, replaces nothing already there, and every file that lands under its
// own name is one the Result reports verified, with the BLAKE3 the manifest
// gave it.
func FuzzReceive(f *testing.F) {
	addReceiveSeeds(f)
	f.Fuzz(func(t *testing.T, head, rest []byte) {
		base := fuzzDir(t)
		inbox, outside := filepath.Join(base, "inbox"), filepath.Join(base, "outside")
		mkdir(t, inbox, 0o755)
		writeFile(t, filepath.Join(outside, "target"), []byte("untouched"), 0o644)
		for link, to := range fuzzLinks {
			if err := os.Symlink(to, filepath.Join(inbox, link)); err != nil {
				t.Fatal(err)
			}
		}
		writeFile(t, filepath.Join(inbox, "r.bin.part"), fuzzResumeData()[:rawChunk], 0o600)

		wire := append(bytes.Clone(head), rest...)
		res, err := receiveBytes(t, inbox, wire)

		want := map[string]node{"target": {Kind: "file", Mode: 0o644, BLAKE3: b3([]byte("untouched"))}}
		if diff := cmp.Diff(want, snapshot(t, outside)); diff != "" {
			t.Fatalf("outside the inbox (-want +got):\n%s", diff)
		}
		if es, _ := os.ReadDir(base); len(es) != 2 {
			t.Fatalf("%s holds %d entries, want inbox and outside only", base, len(es))
		}
		checkLanded(t, inbox, claimedSums(wire), res, err)
	})
}

// fuzzDir returns a fresh directory for one input, on tmpfs when the machine
// has one: the receiver fsyncs what it lands, which on a disk made every
// input three times slower.
func fuzzDir(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "mesh-FuzzReceive-"); err == nil {
			t.Cleanup(func() {
				if err := os.RemoveAll(d); err != nil {
					t.Error(err)
				}
			})
			return d
		}
	}
	return t.TempDir()
}

// receiveBytes runs Receive over a stream that reads wire and then ends,
// and discards what the receiver says. A stream that ends cannot block, so
// a Receive that does not return is a hang of its own.
func receiveBytes(t *testing.T, inbox string, wire []byte) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := &Receiver{
		Inbox:     inbox,
		FreeSpace: func(string) (uint64, error) { return 64 << 20, nil },
		Umask:     func() fs.FileMode { return 0o022 },
	}
	type ret struct {
		res Result
		err error
	}
	done := make(chan ret, 1)
	go func() {
		res, err := r.Receive(ctx, struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(wire), io.Discard})
		done <- ret{res, err}
	}()
	select {
	case got := <-done:
		if errors.Is(got.err, ErrCanceled) {
			t.Fatalf("Receive of %d bytes ran out of time: %v", len(wire), got.err)
		}
		return got.res, got.err
	case <-time.After(20 * time.Second):
		t.Fatalf("Receive of %d bytes did not return within 20 s, its context ended at 10 s", len(wire))
		return Result{}, nil
	}
}

// claimedSums returns every whole-file BLAKE3 an end frame anywhere in wire
// claims (since version 2 the hashes travel after the data).
func claimedSums(wire []byte) map[string]bool {
	sums := map[string]bool{}
	for i := 0; i+endFrameLen <= len(wire); i++ {
		if binary.BigEndian.Uint32(wire[i:]) == tagEnd {
			var e endFrame
			e.parse(wire[i+4:])
			sums[hex.EncodeToString(e.sum[:])] = true
		}
	}
	return sums
}

// checkLanded checks the inbox after a hostile transfer: the setup's
// symlinks are still there, no other symlink appeared, and every regular
// file outside a ".part" is reported verified by res with its own BLAKE3,
// one an end frame claimed.
func checkLanded(t *testing.T, inbox string, claimed map[string]bool, res Result, rerr error) {
	t.Helper()
	ok := map[string]string{}
	for _, fr := range res.Files {
		if fr.Status == StatusOK {
			ok[fr.Name] = fr.BLAKE3
		}
	}
	for link, to := range fuzzLinks {
		if got, err := os.Readlink(filepath.Join(inbox, link)); err != nil || got != to {
			t.Errorf("symlink %s = %q, %v; want it left pointing at %q", link, got, err, to)
		}
	}
	for rel, n := range snapshot(t, inbox) {
		if _, setup := fuzzLinks[rel]; setup {
			continue
		}
		switch {
		case n.Kind == "symlink":
			t.Errorf("the receiver made symlink %s", rel)
		case n.Kind != "file" || inPart(rel):
		case ok[rel] == "":
			t.Errorf("%s landed but is not reported verified (Receive: %v; results %+v)", rel, rerr, res.Files)
		case ok[rel] != n.BLAKE3 || !claimed[n.BLAKE3]:
			t.Errorf("%s landed with BLAKE3 %s; reported %s, which an end frame claims: %v",
				rel, n.BLAKE3, ok[rel], claimed[ok[rel]])
		}
	}
}

// inPart reports whether rel is a ".part" or inside one: data not landed.
func inPart(rel string) bool {
	for c := range strings.SplitSeq(rel, "/") {
		if strings.HasSuffix(c, partSuffix) {
			return true
		}
	}
	return false
}
