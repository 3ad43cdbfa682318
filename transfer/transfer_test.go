package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSendReceive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, src, inbox string) []string // returns the paths to send
		want  func(src string) map[string]node               // what the inbox holds after
		names []string                                       // Result names, sorted
	}{{
		name: "one file",
		setup: func(t *testing.T, src, inbox string) []string {
			writeFile(t, filepath.Join(src, "a.txt"), []byte("hello"), 0o640)
			return []string{filepath.Join(src, "a.txt")}
		},
		want: func(string) map[string]node {
			return map[string]node{"a.txt": {Kind: "file", Mode: 0o640, BLAKE3: b3([]byte("hello"))}}
		},
		names: []string{"a.txt"},
	}, {
		name: "several files, one large and one empty",
		setup: func(t *testing.T, src, inbox string) []string {
			writeFile(t, filepath.Join(src, "big.bin"), randBytes(1, 5<<20+123), 0o600)
			writeFile(t, filepath.Join(src, "empty"), nil, 0o644)
			writeFile(t, filepath.Join(src, ".hidden"), []byte("x"), 0o755)
			return []string{filepath.Join(src, "big.bin"), filepath.Join(src, "empty"), filepath.Join(src, ".hidden")}
		},
		want: func(string) map[string]node {
			return map[string]node{
				"big.bin": {Kind: "file", Mode: 0o600, BLAKE3: b3(randBytes(1, 5<<20+123))},
				"empty":   {Kind: "file", Mode: 0o644, BLAKE3: b3(nil)},
				".hidden": {Kind: "file", Mode: 0o755, BLAKE3: b3([]byte("x"))},
			}
		},
		names: []string{".hidden", "big.bin", "empty"},
	}, {
		name: "tree of 1000 small files, an empty file and an empty dir",
		setup: func(t *testing.T, src, inbox string) []string {
			for i := range 1000 {
				p := filepath.Join(src, "tree", fmt.Sprintf("d%02d", i%10), fmt.Sprintf("file-%04d.txt", i))
				writeFile(t, p, randBytes(uint64(i), i%3000), []fs.FileMode{0o600, 0o644, 0o755}[i%3])
			}
			writeFile(t, filepath.Join(src, "tree", "empty"), nil, 0o600)
			mkdir(t, filepath.Join(src, "tree", "nothing"), 0o750)
			mkdir(t, filepath.Join(src, "tree", "d03"), 0o700)
			mkdir(t, filepath.Join(src, "tree"), 0o755)
			return []string{filepath.Join(src, "tree")}
		},
		want: func(src string) map[string]node {
			want := snapshot(t, src)
			want["tree"] = node{Kind: "dir", Mode: 0o755}
			return want
		},
	}, {
		name: "names taken",
		setup: func(t *testing.T, src, inbox string) []string {
			writeFile(t, filepath.Join(src, "name.ext"), []byte("new"), 0o644)
			writeFile(t, filepath.Join(src, "tree", "f"), []byte("new f"), 0o644)
			mkdir(t, filepath.Join(src, "tree"), 0o755)
			writeFile(t, filepath.Join(inbox, "name.ext"), []byte("old"), 0o644)
			writeFile(t, filepath.Join(inbox, "tree", "f"), []byte("old f"), 0o644)
			mkdir(t, filepath.Join(inbox, "tree"), 0o755)
			return []string{filepath.Join(src, "name.ext"), filepath.Join(src, "tree")}
		},
		want: func(string) map[string]node {
			f := func(s string) node { return node{Kind: "file", Mode: 0o644, BLAKE3: b3([]byte(s))} }
			return map[string]node{
				"name.ext": f("old"), "name (1).ext": f("new"),
				"tree": {Kind: "dir", Mode: 0o755}, "tree/f": f("old f"),
				"tree (1)": {Kind: "dir", Mode: 0o755}, "tree (1)/f": f("new f"),
			}
		},
		names: []string{"name (1).ext", "tree (1)/f"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src, inbox := t.TempDir(), t.TempDir()
			paths := tt.setup(t, src, inbox)
			out := transfer(t, inbox, paths, transferOpts{})
			if out.sendErr != nil || out.recvErr != nil {
				t.Fatalf("Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
			}
			if diff := cmp.Diff(tt.want(src), snapshot(t, inbox)); diff != "" {
				t.Errorf("inbox (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(out.send.Files, out.recv.Files); diff != "" {
				t.Errorf("sender and receiver disagree (-send +recv):\n%s", diff)
			}
			if tt.names != nil {
				if diff := cmp.Diff(tt.names, resultNames(out.send)); diff != "" {
					t.Errorf("Result names (-want +got):\n%s", diff)
				}
			}
			checkResult(t, out.send)
		})
	}
}

// checkResult checks every file is ok, its hash is that of the landed
// data, and the byte counts add up.
func checkResult(t *testing.T, res Result) {
	t.Helper()
	var size int64
	for _, f := range res.Files {
		if f.Status != StatusOK {
			t.Errorf("%s: status %q (%s), want ok", f.Name, f.Status, f.Reason)
		}
		size += f.Size
	}
	if res.Bytes+res.Resumed != size {
		t.Errorf("Bytes %d + Resumed %d != %d bytes of files", res.Bytes, res.Resumed, size)
	}
}

func resultNames(res Result) []string {
	var names []string
	for _, f := range res.Files {
		names = append(names, f.Name)
	}
	sort.Strings(names)
	return names
}

func mkdir(t *testing.T, p string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func TestSymlinksAndSpecialFilesAreSkipped(t *testing.T) {
	t.Parallel()
	src, inbox := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "tree", "real"), []byte("data"), 0o644)
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "tree", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(src, "lone-link")); err != nil {
		t.Fatal(err)
	}
	out := transfer(t, inbox, []string{filepath.Join(src, "tree"), filepath.Join(src, "lone-link")}, transferOpts{})
	if out.sendErr != nil || out.recvErr != nil {
		t.Fatalf("Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
	}
	var skipped []string
	for _, f := range out.send.Files {
		if f.Status == StatusSkipped {
			skipped = append(skipped, f.Name+": "+f.Reason)
		}
	}
	want := []string{"tree/link: symlink not sent", "lone-link: symlink not sent"}
	if diff := cmp.Diff(want, skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	if _, ok := snapshot(t, inbox)["tree/link"]; ok {
		t.Errorf("the symlink arrived")
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	const size, chunk = 64 << 20, 1 << 20
	src, inbox := t.TempDir(), t.TempDir()
	data := randBytes(7, size)
	writeFile(t, filepath.Join(src, "big.bin"), data, 0o644)
	paths := []string{filepath.Join(src, "big.bin")}

	cut := func(c net.Conn) net.Conn { return &cutConn{Conn: c, limit: size / 2} }
	out := transfer(t, inbox, paths, transferOpts{wrapSend: cut})
	if out.sendErr == nil || out.recvErr == nil {
		t.Fatalf("interrupted transfer: Send = %v, Receive = %v, want errors", out.sendErr, out.recvErr)
	}
	if _, err := os.Lstat(filepath.Join(inbox, "big.bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after the interruption, big.bin: %v, want it not to exist", err)
	}
	part, err := os.ReadFile(filepath.Join(inbox, "big.bin.part"))
	if err != nil {
		t.Fatal(err)
	}
	if len(part) == 0 || len(part)%chunk != 0 || !bytes.Equal(part, data[:len(part)]) {
		t.Fatalf(".part has %d bytes, want a non-empty prefix of whole %d-byte chunks of the source", len(part), chunk)
	}

	out = transfer(t, inbox, paths, transferOpts{})
	if out.sendErr != nil || out.recvErr != nil {
		t.Fatalf("rerun: Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
	}
	want := map[string]node{"big.bin": {Kind: "file", Mode: 0o644, BLAKE3: b3(data)}}
	if diff := cmp.Diff(want, snapshot(t, inbox)); diff != "" {
		t.Errorf("inbox after the rerun (-want +got):\n%s", diff)
	}
	if out.send.Resumed != int64(len(part)) || out.recv.Resumed != int64(len(part)) {
		t.Errorf("Resumed = %d (sender), %d (receiver), want %d", out.send.Resumed, out.recv.Resumed, len(part))
	}
	checkResult(t, out.send)
}

func TestResumeRestartsWhenThePrefixDiffers(t *testing.T) {
	t.Parallel()
	src, inbox := t.TempDir(), t.TempDir()
	data := randBytes(8, 3<<20)
	writeFile(t, filepath.Join(src, "f"), data, 0o644)
	writeFile(t, filepath.Join(inbox, "f.part"), randBytes(9, 2<<20+5), 0o600) // some other file's data
	out := transfer(t, inbox, []string{filepath.Join(src, "f")}, transferOpts{})
	if out.sendErr != nil || out.recvErr != nil {
		t.Fatalf("Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
	}
	if out.send.Resumed != 0 || out.send.Bytes != int64(len(data)) {
		t.Errorf("Resumed, Bytes = %d, %d, want 0, %d", out.send.Resumed, out.send.Bytes, len(data))
	}
	want := map[string]node{"f": {Kind: "file", Mode: 0o644, BLAKE3: b3(data)}}
	if diff := cmp.Diff(want, snapshot(t, inbox)); diff != "" {
		t.Errorf("inbox (-want +got):\n%s", diff)
	}
}

func TestResumeTree(t *testing.T) {
	t.Parallel()
	src, inbox := t.TempDir(), t.TempDir()
	for i := range 8 {
		writeFile(t, filepath.Join(src, "tree", fmt.Sprintf("f%d", i)), randBytes(uint64(i), 1<<20+i), 0o644)
	}
	mkdir(t, filepath.Join(src, "tree"), 0o755)
	paths := []string{filepath.Join(src, "tree")}
	out := transfer(t, inbox, paths, transferOpts{wrapSend: func(c net.Conn) net.Conn {
		return &cutConn{Conn: c, limit: 5 << 20}
	}})
	if out.sendErr == nil || out.recvErr == nil {
		t.Fatalf("interrupted transfer: Send = %v, Receive = %v, want errors", out.sendErr, out.recvErr)
	}
	if _, err := os.Lstat(filepath.Join(inbox, "tree.part")); err != nil {
		t.Fatalf("after the interruption: %v", err)
	}
	out = transfer(t, inbox, paths, transferOpts{})
	if out.sendErr != nil || out.recvErr != nil {
		t.Fatalf("rerun: Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
	}
	if out.send.Resumed < 1<<20 {
		t.Errorf("Resumed = %d, want at least a whole file", out.send.Resumed)
	}
	if diff := cmp.Diff(snapshot(t, src), snapshot(t, inbox)); diff != "" {
		t.Errorf("inbox (-want +got):\n%s", diff)
	}
}

func TestFlippedByteInTransit(t *testing.T) {
	t.Parallel()
	const chunk = 1 << 20
	src, inbox := t.TempDir(), t.TempDir()
	data := randBytes(3, 16<<20)
	writeFile(t, filepath.Join(src, "f.bin"), data, 0o644)
	// Past the manifest and 10 chunks, inside the 11th chunk's data.
	flip := func(c net.Conn) net.Conn { return &flipConn{Conn: c, at: 10*(chunk+chunkFrameLen) + 4096} }
	out := transfer(t, inbox, []string{filepath.Join(src, "f.bin")}, transferOpts{wrapRecv: flip})
	if !errors.Is(out.recvErr, ErrMismatch) || !errors.Is(out.sendErr, ErrMismatch) {
		t.Fatalf("Send = %v, Receive = %v, want both to wrap ErrMismatch", out.sendErr, out.recvErr)
	}
	if _, err := os.Lstat(filepath.Join(inbox, "f.bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("f.bin: %v, want it not to exist", err)
	}
	part, err := os.ReadFile(filepath.Join(inbox, "f.bin.part"))
	if err != nil {
		t.Fatal(err)
	}
	if len(part)%chunk != 0 || len(part) > 11*chunk || !bytes.Equal(part, data[:len(part)]) {
		t.Errorf(".part has %d bytes, want whole chunks before the bad one, matching the source", len(part))
	}
}

func TestNoSpace(t *testing.T) {
	t.Parallel()
	src, inbox := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "tree", "f"), randBytes(1, 1<<20), 0o644)
	mkdir(t, filepath.Join(src, "tree", "sub"), 0o755)
	var moved int64
	out := transfer(t, inbox, []string{filepath.Join(src, "tree")}, transferOpts{
		freeSpace: func(string) (uint64, error) { return 1 << 19, nil },
		recvProg:  func(p Progress) { moved = p.Bytes },
	})
	if !errors.Is(out.sendErr, ErrNoSpace) || !errors.Is(out.recvErr, ErrNoSpace) {
		t.Fatalf("Send = %v, Receive = %v, want both to wrap ErrNoSpace", out.sendErr, out.recvErr)
	}
	if got := snapshot(t, inbox); len(got) != 0 || moved != 0 || out.send.Bytes != 0 {
		t.Errorf("inbox %v, %d bytes moved, want nothing", got, moved)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "big.bin"), randBytes(5, 64<<20), 0o644)
	for _, side := range []string{"sender", "receiver"} {
		t.Run(side, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stopAt := func(p Progress) {
				if p.Bytes > 8<<20 {
					cancel()
				}
			}
			o := transferOpts{sendCtx: ctx}
			if side == "receiver" {
				o = transferOpts{recvCtx: ctx, recvProg: stopAt}
			} else {
				o.send.Progress = stopAt
			}
			start := time.Now()
			out := transfer(t, t.TempDir(), []string{filepath.Join(src, "big.bin")}, o)
			if out.sendErr == nil || out.recvErr == nil {
				t.Fatalf("Send = %v, Receive = %v, want errors", out.sendErr, out.recvErr)
			}
			err := out.sendErr
			if side == "receiver" {
				err = out.recvErr
			}
			if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) {
				t.Errorf("the %s's error %v, want ErrCanceled and context.Canceled", side, err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
