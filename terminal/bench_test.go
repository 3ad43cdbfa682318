package terminal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkEchoRoundTrip measures one keystroke echoed by cat on a raw PTY:
// bare (written to and read from the master) and through a share (a
// viewer's input frame over TCP loopback → Serve → PTY → cat → Pump → the
// viewer's output frame). The two alternate in blocks, so that a noisy
// machine weighs on both alike. It reports percentiles of the round trip
// and what sharing adds at the median.
func BenchmarkEchoRoundTrip(b *testing.B) {
	const samples, blocks = 2000, 4
	bare := bareEcho(b)
	shared := sharedEcho(b)
	var bd, sd []time.Duration
	for range b.N {
		for range blocks {
			bd = append(bd, timeEach(b, samples/blocks, bare)...)
			sd = append(sd, timeEach(b, samples/blocks, shared)...)
		}
	}
	bp50, bp99 := percentile(bd, 50), percentile(bd, 99)
	sp50, sp99 := percentile(sd, 50), percentile(sd, 99)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(micros(bp50), "bare-p50-µs")
	b.ReportMetric(micros(bp99), "bare-p99-µs")
	b.ReportMetric(micros(sp50), "share-p50-µs")
	b.ReportMetric(micros(sp99), "share-p99-µs")
	b.ReportMetric(micros(sp50-bp50), "added-p50-µs")
}

const echoScript = "stty raw -echo; echo ready; exec cat"

// timeEach times n calls of roundTrip.
func timeEach(b *testing.B, n int, roundTrip func() error) []time.Duration {
	d := make([]time.Duration, n)
	for i := range d {
		start := time.Now()
		if err := roundTrip(); err != nil {
			b.Fatal(err)
		}
		d[i] = time.Since(start)
	}
	return d
}

// bareEcho returns a round trip through a PTY running cat.
func bareEcho(b *testing.B) func() error {
	master, _ := startPTY(b, b.TempDir(), echoScript)
	readUntil(b, master, "ready\n")
	key, echo := []byte{'x'}, make([]byte, 1)
	return func() error {
		if _, err := master.Write(key); err != nil {
			return err
		}
		_, err := io.ReadFull(master, echo)
		return err
	}
}

// sharedEcho returns a round trip from a viewer through a shared PTY
// running cat. Cleanup ends the share.
func sharedEcho(b *testing.B) func() error {
	master, cmd := startPTY(b, b.TempDir(), echoScript)
	h := NewHost(HostConfig{AllowInput: true})
	pumped := make(chan error, 1)
	go func() { pumped <- h.Pump(master, nil) }()
	client, server := tcpPair(b)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.Serve(ctx, server, "bench", true, master) }()
	b.Cleanup(func() {
		cancel()
		<-served
		_ = cmd.Process.Kill() // the pump ends with EIO
		<-pumped
	})

	fr := NewReader(client)
	var seen []byte
	for !bytes.Contains(seen, []byte("ready\n")) {
		f, err := fr.Next()
		if err != nil {
			b.Fatal(err)
		}
		if f.Type == FrameOutput {
			seen = append(seen, f.Data...)
		}
	}
	key := Frame{Type: FrameInput, Data: []byte{'x'}}
	return func() error {
		if err := WriteFrame(client, key); err != nil {
			return err
		}
		for {
			f, err := fr.Next()
			if err != nil || f.Type == FrameOutput && len(f.Data) > 0 {
				return err
			}
		}
	}
}

// BenchmarkOutputThroughput measures a PTY writing 32 MiB, read bare from
// the master and through Host.Pump to one viewer over TCP loopback. Each
// side runs three times, alternating; the medians are reported.
func BenchmarkOutputThroughput(b *testing.B) {
	const n, rounds = 32 << 20, 3
	script := fmt.Sprintf("stty raw -echo; exec head -c %d /dev/zero", n)
	var bare, shared []float64
	for range b.N {
		for range rounds {
			start := time.Now()
			if got := bareOutput(b, script); got != n {
				b.Fatalf("bare read %d bytes, want %d", got, n)
			}
			bare = append(bare, n/time.Since(start).Seconds()/1e6)
			start = time.Now()
			if got := sharedOutput(b, script); got != n {
				b.Fatalf("viewer got %d bytes, want %d", got, n)
			}
			shared = append(shared, n/time.Since(start).Seconds()/1e6)
		}
	}
	slices.Sort(bare)
	slices.Sort(shared)
	bareMBs, shareMBs := bare[len(bare)/2], shared[len(shared)/2]
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(bareMBs, "bare-MB/s")
	b.ReportMetric(shareMBs, "share-MB/s")
	b.ReportMetric(shareMBs/bareMBs, "ratio")
}

// bareOutput runs script on a PTY and returns how many bytes the master
// gave before EIO.
func bareOutput(b *testing.B, script string) int {
	master, _ := startPTY(b, b.TempDir(), script)
	buf := make([]byte, 64<<10)
	var got int
	for {
		k, err := master.Read(buf)
		got += k
		if errors.Is(err, syscall.EIO) || errors.Is(err, io.EOF) {
			return got
		} else if err != nil {
			b.Fatal(err)
		}
	}
}

// sharedOutput runs script on a shared PTY and returns how many output
// bytes one viewer over TCP got before the exit frame.
func sharedOutput(b *testing.B, script string) int {
	h := NewHost(HostConfig{})
	client, server := tcpPair(b)
	served := make(chan error, 1)
	go func() { served <- h.Serve(context.Background(), server, "bench", false, nil) }()
	fr := NewReader(client)
	if f, err := fr.Next(); err != nil || f.Type != FrameHello {
		b.Fatalf("first frame %+v, %v", f, err)
	}
	master, _ := startPTY(b, b.TempDir(), script)
	pumped := make(chan error, 1)
	go func() {
		err := h.Pump(master, nil)
		h.Exit(0, "")
		pumped <- err
	}()
	var got int
	for {
		f, err := fr.Next()
		if err != nil {
			b.Fatal(err)
		}
		if f.Type == FrameExit {
			break
		}
		got += len(f.Data)
	}
	if err := <-pumped; err != nil {
		b.Fatal(err)
	}
	if err := <-served; err != nil {
		b.Fatal(err)
	}
	return got
}

// readUntil reads r until what it read ends with want.
func readUntil(b *testing.B, r *os.File, want string) {
	var seen []byte
	buf := make([]byte, 256)
	for !bytes.HasSuffix(seen, []byte(want)) {
		k, err := r.Read(buf)
		if err != nil {
			b.Fatalf("read %q so far, waiting for %q: %v", seen, want, err)
		}
		seen = append(seen, buf[:k]...)
	}
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
