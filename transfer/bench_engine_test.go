package transfer

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

// cpuNow is the CPU time (user+system) this process has used so far.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pipeTransfer runs Send and Receive over net.Pipe, an in-memory stream
// with deadlines, so a benchmark measures the engine and not a transport.
// firstByte, if set, gets the time from the start until the receiver
// verified its first chunk.
func pipeTransfer(tb testing.TB, inbox string, paths []string, o Options, sendWrap func(net.Conn) net.Conn) (outcome, time.Duration) {
	tb.Helper()
	c, s := net.Pipe()
	if sendWrap != nil {
		c = sendWrap(c)
	}
	start := time.Now()
	var first time.Duration
	var once sync.Once
	var out outcome
	var wg sync.WaitGroup
	wg.Go(func() {
		defer s.Close()
		r := &Receiver{Inbox: inbox, Options: Options{Progress: func(p Progress) {
			if p.FileBytes > 0 {
				once.Do(func() { first = time.Since(start) })
			}
		}}}
		out.recv, out.recvErr = r.Receive(context.Background(), s)
	})
	out.send, out.sendErr = Send(context.Background(), c, paths, o)
	c.Close()
	wg.Wait()
	return out, first
}

// benchFile writes a file of size pseudo-random bytes in dir.
func benchFile(b *testing.B, dir string, size int) string {
	b.Helper()
	p := filepath.Join(dir, fmt.Sprintf("src-%d.bin", size))
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < size; off += 16 << 20 {
		if _, err := f.Write(randBytes(uint64(off), min(16<<20, size-off))); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

// freshDir returns an empty directory under base, removing the last one.
func freshDir(b *testing.B, base string, n int) string {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	_ = os.RemoveAll(filepath.Join(base, fmt.Sprint(n-1))) // best effort: disk space only
	p := filepath.Join(base, fmt.Sprint(n))
	if err := os.MkdirAll(p, 0o755); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkEngine moves one file through Send and Receive over net.Pipe
// and reports MB/s, the CPU both sides spent per GiB (one process), and the
// time to first byte: until the receiver verified its first chunk. The
// time to first byte must not grow with the file.
func BenchmarkEngine(b *testing.B) {
	for _, size := range []int{64 << 20, 512 << 20} {
		b.Run(fmt.Sprintf("size=%dMiB", size>>20), func(b *testing.B) {
			dir := b.TempDir()
			src := benchFile(b, dir, size)
			b.SetBytes(int64(size))
			var cpu, ttfb time.Duration
			b.ResetTimer()
			for i := range b.N {
				inbox := freshDir(b, filepath.Join(dir, "inbox"), i)
				c0 := cpuNow()
				out, first := pipeTransfer(b, inbox, []string{src}, Options{}, nil)
				cpu += cpuNow() - c0
				ttfb += first
				if out.sendErr != nil || out.recvErr != nil {
					b.Fatalf("Send = %v, Receive = %v", out.sendErr, out.recvErr)
				}
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N)/(float64(size)/(1<<30)), "cpu-s/GiB")
			b.ReportMetric(float64(ttfb.Milliseconds())/float64(b.N), "ttfb-ms")
		})
	}
}

// smallTree writes the small-file benchmark's tree: 20 directories of 101
// files of 0–16 KiB, 2,020 files.
func smallTree(b *testing.B, root string) {
	b.Helper()
	for i := range 2020 {
		p := filepath.Join(root, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%04d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, randBytes(uint64(i), (i*7919)%(16<<10)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSmallFiles sends a tree of 2,020 small files through the engine
// over net.Pipe, and reports beside it a tar pipe (tar c | tar x into a
// fresh directory) over the same tree in the same run: the goal is at most
// 3× the tar pipe.
func BenchmarkSmallFiles(b *testing.B) {
	b.Run("disk", func(b *testing.B) { benchSmallFiles(b, b.TempDir()) })
	b.Run("tmpfs", func(b *testing.B) { // the engine's own cost, without the disk's file creation
		d, err := os.MkdirTemp("/dev/shm", "mesh-bench-")
		if err != nil {
			b.Skipf("no tmpfs: %v", err)
		}
		defer os.RemoveAll(d)
		benchSmallFiles(b, d)
	})
}

func benchSmallFiles(b *testing.B, dir string) {
	src := filepath.Join(dir, "src", "tree")
	smallTree(b, src)
	tarPath, tarErr := exec.LookPath("tar")
	var engine, tar time.Duration
	b.ResetTimer()
	for i := range b.N {
		inbox := freshDir(b, filepath.Join(dir, "inbox"), i)
		t0 := time.Now()
		out, _ := pipeTransfer(b, inbox, []string{src}, Options{}, nil)
		engine += time.Since(t0)
		if out.sendErr != nil || out.recvErr != nil {
			b.Fatalf("Send = %v, Receive = %v", out.sendErr, out.recvErr)
		}
		if tarErr != nil {
			continue
		}
		dst := freshDir(b, filepath.Join(dir, "tar"), i)
		t0 = time.Now()
		cmd := exec.Command("sh", "-c", `"$0" c -C "$1" tree | "$0" x -C "$2"`, tarPath, filepath.Dir(src), dst)
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("tar pipe: %v: %s", err, o)
		}
		tar += time.Since(t0)
	}
	b.ReportMetric(float64(engine.Microseconds())/1e3/float64(b.N), "engine-ms")
	if tarErr != nil {
		b.Skipf("no tar pipe to compare with: %v", tarErr)
	}
	b.ReportMetric(float64(tar.Microseconds())/1e3/float64(b.N), "tar-ms")
	b.ReportMetric(float64(engine)/float64(tar), "x-tar")
}

// pacedConn writes at most rate bytes per second: a link as fast as
// mesh's QUIC path (170-300 MB/s on loopback), not as fast as memory.
type pacedConn struct {
	net.Conn
	rate  float64
	start time.Time
	sent  int64
}

func (c *pacedConn) Write(p []byte) (int, error) {
	if c.start.IsZero() {
		c.start = time.Now()
	}
	n, err := c.Conn.Write(p)
	c.sent += int64(n)
	if d := time.Duration(float64(c.sent)/c.rate*1e9) - time.Since(c.start); d > 0 {
		time.Sleep(d) // pacing, not synchronisation
	}
	return n, err
}

// BenchmarkResume sends a 256 MiB file interrupted half way, then reruns
// it, and reports the pair's time against one uninterrupted send in the
// same run (the goal is at most 1.2×), over net.Pipe as fast as memory
// and paced at 300 MB/s, about mesh's QUIC path.
func BenchmarkResume(b *testing.B) {
	const size = 256 << 20
	dir := b.TempDir()
	src := benchFile(b, dir, size)
	for _, rate := range []float64{0, 300e6} {
		name := "memory"
		if rate > 0 {
			name = fmt.Sprintf("paced=%.0fMB/s", rate/1e6)
		}
		b.Run(name, func(b *testing.B) {
			wrap := func(limit int64) func(net.Conn) net.Conn {
				return func(c net.Conn) net.Conn {
					if rate > 0 {
						c = &pacedConn{Conn: c, rate: rate}
					}
					if limit > 0 {
						c = &cutConn{Conn: c, limit: limit}
					}
					return c
				}
			}
			var clean, resumed, rerun time.Duration
			b.SetBytes(size)
			b.ResetTimer()
			for i := range b.N {
				inbox := freshDir(b, filepath.Join(dir, "clean"), i)
				t0 := time.Now()
				out, _ := pipeTransfer(b, inbox, []string{src}, Options{}, wrap(0))
				clean += time.Since(t0)
				if out.sendErr != nil || out.recvErr != nil {
					b.Fatalf("Send = %v, Receive = %v", out.sendErr, out.recvErr)
				}
				inbox = freshDir(b, filepath.Join(dir, "resumed"), i)
				t0 = time.Now()
				if out, _ = pipeTransfer(b, inbox, []string{src}, Options{}, wrap(size/2)); out.sendErr == nil {
					b.Fatal("the interrupted send succeeded")
				}
				t1 := time.Now()
				out, _ = pipeTransfer(b, inbox, []string{src}, Options{}, wrap(0))
				resumed += time.Since(t0)
				rerun += time.Since(t1)
				if out.sendErr != nil || out.recvErr != nil || out.send.Resumed == 0 {
					b.Fatalf("rerun: Send = %v, Receive = %v, Resumed %d", out.sendErr, out.recvErr, out.send.Resumed)
				}
			}
			b.ReportMetric(float64(clean.Milliseconds())/float64(b.N), "clean-ms")
			b.ReportMetric(float64(rerun.Milliseconds())/float64(b.N), "rerun-ms")
			b.ReportMetric(float64(resumed.Milliseconds())/float64(b.N), "cut+rerun-ms")
			b.ReportMetric(float64(resumed)/float64(clean), "x-clean")
		})
	}
}

// BenchmarkHashPass measures one BLAKE3 pass over 64 MiB in 1 MiB chunks,
// as each side does it: a hash per chunk (the verification), a whole-file
// hasher fed chunk by chunk, and that hasher with a digest of the prefix
// taken after every chunk (one pass that verifies and hashes the file).
func BenchmarkHashPass(b *testing.B) {
	data := randBytes(1, 64<<20)
	const chunk = 1 << 20
	b.Run("per-chunk", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			for off := 0; off < len(data); off += chunk {
				_ = blake3.Sum256(data[off : off+chunk])
			}
		}
	})
	b.Run("whole-file", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			h := blake3.New()
			for off := 0; off < len(data); off += chunk {
				h.Write(data[off : off+chunk])
			}
			_ = h.Sum(nil)
		}
	})
	b.Run("running-digest", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		var sum [32]byte
		for range b.N {
			h := blake3.New()
			for off := 0; off < len(data); off += chunk {
				h.Write(data[off : off+chunk])
				h.Sum(sum[:0])
			}
		}
	})
}
