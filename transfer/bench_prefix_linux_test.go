package transfer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"
)

// BenchmarkHashPrefixFromDisk hashes a 128 MiB .part the page cache does
// not hold (as after direct I/O), as a resumed receiver does: the cost that
// bounds a resume when the link is as fast as memory. (Reading the next
// buffer on a goroutine while hashing the other gained nothing here: the
// kernel's readahead already overlaps them.)
func BenchmarkHashPrefixFromDisk(b *testing.B) {
	const size = 128 << 20
	p := benchFile(b, b.TempDir(), size)
	buf := make([]byte, DefaultChunkSize)
	b.SetBytes(size)
	for range b.N {
		b.StopTimer()
		f, err := os.Open(filepath.Clean(p))
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fadvise(int(f.Fd()), 0, size, unix.FADV_DONTNEED); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := hashFrom(context.Background(), blake3.New(), f, size, buf); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
