package transfer

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

const benchSize = 256 << 20

// benchSetup makes a benchSize source file and returns it with a function
// that gives each iteration an empty inbox (outside the timer).
func benchSetup(b *testing.B) (src string, inbox func() string) {
	b.Helper()
	dir := b.TempDir()
	src = filepath.Join(dir, "src.bin")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	for i := range benchSize >> 24 {
		if _, err := f.Write(randBytes(uint64(i), 1<<24)); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	n := 0
	return src, func() string {
		b.StopTimer()
		defer b.StartTimer()
		n++
		p := filepath.Join(dir, "inbox", string(rune('a'+n%26)))
		if err := os.RemoveAll(filepath.Dir(p)); err != nil {
			b.Fatal(err)
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			b.Fatal(err)
		}
		return p
	}
}

// BenchmarkSend moves one 256 MiB file through Send and Receive over TCP
// loopback: one BLAKE3 pass on each side (the chunk digests are the whole-file hasher's), the
// receiver's whole-file hash, fsync and rename included.
func BenchmarkSend(b *testing.B) {
	src, inbox := benchSetup(b)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		out := transfer(b, inbox(), []string{src}, transferOpts{})
		if out.sendErr != nil || out.recvErr != nil {
			b.Fatalf("Send = %v, Receive = %v", out.sendErr, out.recvErr)
		}
	}
}

// BenchmarkBareCopy is the yardstick: the same bytes io.Copy'd from the file
// over the same kind of connection into a file (with sendfile and splice,
// as io.Copy picks them), then fsynced.
func BenchmarkBareCopy(b *testing.B) { benchCopy(b, false) }

// BenchmarkBareCopyBuffered is the yardstick with 1 MiB buffers through user
// space and no sendfile/splice, as over a QUIC stream.
func BenchmarkBareCopyBuffered(b *testing.B) { benchCopy(b, true) }

type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

func benchCopy(b *testing.B, buffered bool) {
	src, inbox := benchSetup(b)
	copyFn := func(dst io.Writer, src io.Reader) (int64, error) {
		if buffered {
			return io.CopyBuffer(onlyWriter{dst}, onlyReader{src}, make([]byte, 1<<20))
		}
		return io.Copy(dst, src)
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		dst := filepath.Join(inbox(), "dst.bin")
		c, s := tcpPair(b)
		var wg sync.WaitGroup
		wg.Go(func() {
			defer s.Close()
			f, err := os.Create(dst)
			if err != nil {
				b.Error(err)
				return
			}
			if n, err := copyFn(f, s); err != nil || n != benchSize {
				b.Errorf("received %d bytes: %v", n, err)
			}
			if err := f.Sync(); err != nil {
				b.Error(err)
			}
			f.Close()
		})
		f, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := copyFn(c, f); err != nil {
			b.Error(err)
		}
		f.Close()
		c.(*net.TCPConn).CloseWrite()
		wg.Wait()
		c.Close()
	}
}
