package transfer

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testUmask reads this process's umask the way a user would look it up.
func testUmask(t *testing.T) fs.FileMode {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status to read the umask from: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				t.Fatalf("Umask line %q: %v", line, err)
			}
			return fs.FileMode(m)
		}
	}
	t.Skip("no Umask line in /proc/self/status")
	return 0
}

// modesTree writes what the mode tests send: a lone 0777 file and a tree
// with every kind of mode a sender has.
func modesTree(t *testing.T, src string) []string {
	writeFile(t, filepath.Join(src, "solo.sh"), []byte("#!/bin/sh\n"), 0o777)
	writeFile(t, filepath.Join(src, "tree", "run.sh"), []byte("run"), 0o777)
	writeFile(t, filepath.Join(src, "tree", "notes.txt"), []byte("notes"), 0o666)
	writeFile(t, filepath.Join(src, "tree", "plain.txt"), []byte("plain"), 0o644)
	writeFile(t, filepath.Join(src, "tree", "secret"), []byte("secret"), 0o600)
	mkdir(t, filepath.Join(src, "tree", "open"), 0o777)
	mkdir(t, filepath.Join(src, "tree"), 0o775)
	return []string{filepath.Join(src, "solo.sh"), filepath.Join(src, "tree")}
}

// modesWant is what modesTree lands as under umask.
func modesWant(umask fs.FileMode) map[string]fs.FileMode {
	m := func(sent fs.FileMode) fs.FileMode { return sent &^ umask }
	return map[string]fs.FileMode{
		"solo.sh": m(0o777), "tree": m(0o775), "tree/open": m(0o777),
		"tree/run.sh": m(0o777), "tree/notes.txt": m(0o666), "tree/plain.txt": m(0o644), "tree/secret": m(0o600),
	}
}

func modes(t *testing.T, inbox string) map[string]fs.FileMode {
	got := map[string]fs.FileMode{}
	for p, n := range snapshot(t, inbox) {
		got[p] = n.Mode
	}
	return got
}

// TestModesFollowTheProcessUmask: by default a received file or directory
// gets the sender's permission bits less the receiving process's umask, as
// any file the receiver creates would.
func TestModesFollowTheProcessUmask(t *testing.T) {
	t.Parallel()
	umask := testUmask(t)
	if umask&0o077 == 0 {
		t.Skipf("umask %04o clears no group or other bits: nothing to tell apart", umask)
	}
	src, inbox := t.TempDir(), t.TempDir()
	out := transfer(t, inbox, modesTree(t, src), transferOpts{umask: ProcessUmask})
	if out.sendErr != nil || out.recvErr != nil {
		t.Fatalf("Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
	}
	if diff := cmp.Diff(modesWant(umask), modes(t, inbox)); diff != "" {
		t.Errorf("modes under umask %04o (-want +got):\n%s", umask, diff)
	}
}

// TestModesFollowTheReceiversUmask: whatever the umask, a bit survives
// only if the sender had it and the umask lets it through; a resumed file
// and a lone file are treated alike.
func TestModesFollowTheReceiversUmask(t *testing.T) {
	t.Parallel()
	for _, umask := range []fs.FileMode{0, 0o002, 0o027, 0o077, 0o177} {
		t.Run(fmt.Sprintf("%04o", umask), func(t *testing.T) {
			t.Parallel()
			src, inbox := t.TempDir(), t.TempDir()
			paths := modesTree(t, src)
			// An earlier interrupted transfer left part of run.sh behind.
			writeFile(t, filepath.Join(inbox, "tree.part", "run.sh"), nil, 0o600)
			out := transfer(t, inbox, paths, transferOpts{umask: func() fs.FileMode { return umask }})
			if out.sendErr != nil || out.recvErr != nil {
				t.Fatalf("Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
			}
			if diff := cmp.Diff(modesWant(umask), modes(t, inbox)); diff != "" {
				t.Errorf("modes (-want +got):\n%s", diff)
			}
		})
	}
}
