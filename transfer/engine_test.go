package transfer

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/zeebo/blake3"
)

// TestHashAfterTheData: the manifest carries no hash (nothing is read
// before the first byte is sent), and both sides report the standard
// BLAKE3 of the file, as b3sum prints it, from the end frame.
func TestHashAfterTheData(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	data := randBytes(21, 3<<20+17)
	writeFile(t, filepath.Join(src, "f"), data, 0o644)
	c, wait := startSender(t, []string{filepath.Join(src, "f")})
	var raw rawMsg
	if err := ReadMsg(c, &raw); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "blake3") {
		t.Errorf("the manifest %s names a hash", raw)
	}
	var m manifestMsg
	if err := json.Unmarshal(raw, &m); err != nil || m.Version != Version {
		t.Fatalf("manifest %s: %v", raw, err)
	}
	c.Close()
	wait()

	out := transfer(t, t.TempDir(), []string{filepath.Join(src, "f")}, transferOpts{})
	if out.sendErr != nil || out.recvErr != nil {
		t.Fatalf("Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
	}
	for side, res := range map[string]Result{"sender": out.send, "receiver": out.recv} {
		if got := res.Files[0].BLAKE3; got != b3(data) {
			t.Errorf("%s: BLAKE3 %s, want %s", side, got, b3(data))
		}
	}
}

// TestFileChangedWhileSent: a file that grows while it is sent does not
// land, and both sides say why.
func TestFileChangedWhileSent(t *testing.T) {
	t.Parallel()
	src, inbox := t.TempDir(), t.TempDir()
	p := filepath.Join(src, "f")
	writeFile(t, p, randBytes(22, 8<<20), 0o644)
	var once sync.Once
	o := transferOpts{}
	o.send.Progress = func(pr Progress) {
		if pr.FileBytes > 0 {
			once.Do(func() {
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
				if err == nil {
					_, err = f.Write([]byte("more"))
					f.Close()
				}
				if err != nil {
					t.Error(err)
				}
			})
		}
	}
	out := transfer(t, inbox, []string{p}, o)
	if !errors.Is(out.sendErr, ErrMismatch) || !errors.Is(out.recvErr, ErrMismatch) {
		t.Fatalf("Send = %v, Receive = %v, want both to wrap ErrMismatch", out.sendErr, out.recvErr)
	}
	if r := out.send.Files[0].Reason; !strings.Contains(r, "changed") {
		t.Errorf("sender's reason %q, want it to say the file changed", r)
	}
	if _, err := os.Lstat(filepath.Join(inbox, "f")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("f: %v, want it not to land", err)
	}
}

// TestChunkSumIsThePrefixDigest: each chunk frame carries the BLAKE3 of the
// file up to the chunk's end (one hashing pass per side), and the end frame
// that of the whole file.
func TestChunkSumIsThePrefixDigest(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	data := randBytes(23, 3*MinChunkSize+100)
	writeFile(t, filepath.Join(src, "f"), data, 0o644)
	c, wait := startSender(t, []string{filepath.Join(src, "f")})
	readRawManifest(t, c)
	if err := WriteMsg(c, planMsg{Type: typePlan}); err != nil {
		t.Fatal(err)
	}
	var ff [fileFrameLen]byte
	if _, err := io.ReadFull(c, ff[:]); err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += MinChunkSize {
		var cf [chunkFrameLen]byte
		if _, err := io.ReadFull(c, cf[:]); err != nil {
			t.Fatal(err)
		}
		var h chunkHeader
		h.parse(cf[4:])
		body := make([]byte, h.length)
		if _, err := io.ReadFull(c, body); err != nil {
			t.Fatal(err)
		}
		end := off + int(h.length)
		if got, want := hex.EncodeToString(h.sum[:]), b3(data[:end]); got != want {
			t.Errorf("chunk at %d: sum %s, want the BLAKE3 of bytes 0-%d, %s", off, got, end, want)
		}
	}
	var ef [endFrameLen]byte
	if _, err := io.ReadFull(c, ef[:]); err != nil {
		t.Fatal(err)
	}
	var e endFrame
	e.parse(ef[4:])
	if got := hex.EncodeToString(e.sum[:]); got != b3(data) {
		t.Errorf("end frame: %s, want %s", got, b3(data))
	}
	c.Close()
	wait()
}

// TestChunkHashedAlone: a chunk frame with the chunk's own hash (what
// version 1 sent) is refused before the chunk lands.
func TestChunkHashedAlone(t *testing.T) {
	t.Parallel()
	inbox := t.TempDir()
	data := randBytes(24, 2*rawChunk)
	c, wait := startReceiver(t, inbox)
	writeManifest(t, c, fileEntry("f", data))
	readRawPlan(t, c, 1)
	var ff [fileFrameLen]byte
	putFileFrame(&ff, 0, 0)
	c.Write(ff[:])
	for off := 0; off < len(data); off += rawChunk {
		var cf [chunkFrameLen]byte
		h := chunkHeader{offset: int64(off), length: rawChunk, sum: blake3.Sum256(data[off : off+rawChunk])}
		h.put(&cf)
		c.Write(append(cf[:], data[off:off+rawChunk]...))
	}
	if _, err := wait(); !errors.Is(err, ErrMismatch) {
		t.Errorf("Receive = %v, want ErrMismatch", err)
	}
	if part, err := os.ReadFile(filepath.Join(inbox, "f.part")); err != nil || len(part) != rawChunk {
		t.Errorf("f.part holds %d bytes (%v), want the first chunk only", len(part), err)
	}
}

// TestSyncFS: the one flush a tree gets before its rename works on the
// inbox's file system, and a tree still lands whole and readable.
func TestSyncFS(t *testing.T) {
	t.Parallel()
	if !haveSyncFS {
		t.Skip("no syncfs here: each file is synced instead")
	}
	if err := syncFS(t.TempDir()); err != nil {
		t.Fatalf("syncFS = %v", err)
	}
	src, inbox := t.TempDir(), t.TempDir()
	for i := range 50 {
		writeFile(t, filepath.Join(src, "tree", "d", strings.Repeat("f", i+1)), randBytes(uint64(i), i*100), 0o644)
	}
	out := transfer(t, inbox, []string{filepath.Join(src, "tree")}, transferOpts{})
	if out.sendErr != nil || out.recvErr != nil {
		t.Fatalf("Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
	}
	if err := syncFS(filepath.Join(inbox, "missing")); err == nil {
		t.Errorf("syncFS of a missing directory = nil, want an error")
	}
}

// TestOldPeer: a version 1 sender hears, and its receiver says, that the
// versions differ and what to do about it.
func TestOldPeer(t *testing.T) {
	t.Parallel()
	c, wait := startReceiver(t, t.TempDir())
	if err := WriteMsg(c, manifestMsg{Type: typeManifest, Version: 1, ChunkSize: rawChunk}); err != nil {
		t.Fatal(err)
	}
	_, err := wait()
	if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "version 1, this side 2") {
		t.Errorf("Receive = %v, want ErrProtocol naming both versions", err)
	}
	var a abortMsg
	if err := ReadMsg(c, &a); err != nil || a.Code != codeProtocol || !strings.Contains(a.Reason, "same mesh version") {
		t.Errorf("the old sender read %+v, %v; want a protocol abort saying to run the same version", a, err)
	}
}
