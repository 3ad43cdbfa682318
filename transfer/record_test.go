package transfer

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// interrupted sends a 16 MiB file cut off after about half of it and
// returns the source, its data and the inbox holding the .part.
func interrupted(t *testing.T) (src string, data []byte, inbox string) {
	t.Helper()
	const size = 16 << 20
	src, inbox = filepath.Join(t.TempDir(), "big.bin"), t.TempDir()
	data = randBytes(31, size)
	writeFile(t, src, data, 0o644)
	cut := func(c net.Conn) net.Conn { return &cutConn{Conn: c, limit: size / 2} }
	if out := transfer(t, inbox, []string{src}, transferOpts{wrapSend: cut}); out.sendErr == nil {
		t.Fatal("the interrupted send succeeded")
	}
	return src, data, inbox
}

// partRecord returns the .part's resume record, skipping the test where
// the file system keeps none.
func partRecord(t *testing.T, part string) (resumeRecord, os.FileInfo) {
	t.Helper()
	f, err := os.Open(part)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	r, ok := getRecord(f)
	if !ok {
		if putRecord(f, resumeRecord{}) != nil {
			t.Skip("this file system keeps no resume records")
		}
		t.Fatalf("%s has no resume record", part)
	}
	return r, fi
}

// TestResumeRecord: an interrupted .part records its verified prefix, the
// rerun resumes from it, and the landed file carries no record.
func TestResumeRecord(t *testing.T) {
	t.Parallel()
	src, data, inbox := interrupted(t)
	part := filepath.Join(inbox, "big.bin.part")
	r, fi := partRecord(t, part)
	if !r.trusted(fi, DefaultChunkSize, int64(len(data))) || hexSum(r.sum) != b3(data[:r.offset]) {
		t.Fatalf("record %+v for a %d-byte .part, want it to describe its data", r, fi.Size())
	}
	out := transfer(t, inbox, []string{src}, transferOpts{})
	if out.sendErr != nil || out.recvErr != nil {
		t.Fatalf("rerun: Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
	}
	if out.send.Resumed != r.offset || out.recv.Resumed != r.offset {
		t.Errorf("Resumed = %d, %d, want %d", out.send.Resumed, out.recv.Resumed, r.offset)
	}
	want := map[string]node{"big.bin": {Kind: "file", Mode: 0o644, BLAKE3: b3(data)}}
	if diff := cmp.Diff(want, snapshot(t, inbox)); diff != "" {
		t.Errorf("inbox (-want +got):\n%s", diff)
	}
	f, err := os.Open(filepath.Join(inbox, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := getRecord(f); ok {
		t.Errorf("the landed file still has a resume record")
	}
}

// TestResumeRecordThatLies: a .part changed behind its record's back (same
// size and mtime) is caught before a new byte lands; the record goes, and
// the next run hashes the .part, sees it differ and sends it all again.
func TestResumeRecordThatLies(t *testing.T) {
	t.Parallel()
	src, data, inbox := interrupted(t)
	part := filepath.Join(inbox, "big.bin.part")
	r, fi := partRecord(t, part)
	f, err := os.OpenFile(part, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{data[100] ^ 1}, 100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(part, time.Time{}, fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	out := transfer(t, inbox, []string{src}, transferOpts{})
	if !errors.Is(out.recvErr, ErrMismatch) || !errors.Is(out.sendErr, ErrMismatch) {
		t.Fatalf("Send = %v, Receive = %v, want both to wrap ErrMismatch", out.sendErr, out.recvErr)
	}
	if pf, err := os.Open(part); err == nil {
		if _, ok := getRecord(pf); ok {
			t.Errorf("the .part kept its lying record")
		}
		pf.Close()
	}
	out = transfer(t, inbox, []string{src}, transferOpts{})
	if out.sendErr != nil || out.recvErr != nil {
		t.Fatalf("third run: Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
	}
	if out.send.Resumed != 0 {
		t.Errorf("Resumed = %d of a .part that differs, want 0 (record offset was %d)", out.send.Resumed, r.offset)
	}
	want := map[string]node{"big.bin": {Kind: "file", Mode: 0o644, BLAKE3: b3(data)}}
	if diff := cmp.Diff(want, snapshot(t, inbox)); diff != "" {
		t.Errorf("inbox (-want +got):\n%s", diff)
	}
}

// TestRecordEncoding: a record survives its encoding, and anything else is
// not taken for one.
func TestRecordEncoding(t *testing.T) {
	t.Parallel()
	r := resumeRecord{chunk: 1 << 20, offset: 5 << 20, mtime: 1234567890123, sum: [32]byte{1, 2, 3}}
	b := r.encode()
	if got, ok := decodeRecord(b[:]); !ok || got != r {
		t.Errorf("decodeRecord(encode(%+v)) = %+v, %v", r, got, ok)
	}
	for _, bad := range [][]byte{nil, b[:recordLen-1], append(b[:], 0), append([]byte("xxxx"), b[4:]...)} {
		if _, ok := decodeRecord(bad); ok {
			t.Errorf("decodeRecord(%x) took it for a record", bad)
		}
	}
}
