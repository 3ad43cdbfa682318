package transfer

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLargeFilesLandExactly covers the direct-I/O path of large files:
// aligned chunks, unaligned chunk sizes and a short tail (both leave direct
// I/O mid-file), and a tmpfs inbox that may refuse it outright.
func TestLargeFilesLandExactly(t *testing.T) {
	t.Parallel()
	inboxes := map[string]func() string{"disk": t.TempDir}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		inboxes["tmpfs"] = func() string {
			d, err := os.MkdirTemp("/dev/shm", "mesh-test-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	const size = directMin + 1<<20 + 123
	data := randBytes(11, size)
	src := filepath.Join(t.TempDir(), "big.bin")
	writeFile(t, src, data, 0o640)
	for name, inbox := range inboxes {
		for _, chunk := range []int{1 << 20, 1<<20 + 1000} {
			t.Run(fmt.Sprintf("%s/chunk=%d", name, chunk), func(t *testing.T) {
				in := inbox()
				out := transfer(t, in, []string{src}, transferOpts{send: Options{ChunkSize: chunk}})
				if out.sendErr != nil || out.recvErr != nil {
					t.Fatalf("Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
				}
				want := map[string]node{"big.bin": {Kind: "file", Mode: 0o640, BLAKE3: b3(data)}}
				if diff := cmp.Diff(want, snapshot(t, in)); diff != "" {
					t.Errorf("inbox (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestOpenPartUsesDirectIO: on a file system that supports it, a large
// file is opened for direct I/O and a small one is not.
func TestOpenPartUsesDirectIO(t *testing.T) {
	if directFlag == 0 {
		t.Skip("direct I/O is used on Linux only")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		size int64
		want bool
	}{{directMin, true}, {directMin - 1, false}} {
		it := &item{entry: entry{Size: tc.size}, disk: filepath.Join(dir, fmt.Sprint(tc.size)), fresh: true}
		f, direct, err := openPart(it, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if direct != tc.want {
			t.Errorf("size %d: direct = %v, want %v", tc.size, direct, tc.want)
		}
	}
}
