package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/creack/pty"

	"mesh/agent/peer"
	"mesh/protocol"
	"mesh/terminal"
)

// BenchmarkTerminalShare measures a shared terminal over the production
// transport, in one run: the keystroke → echo round trip of a joiner typing
// into `cat` on the sharer's PTY (joiner → QUIC → PTY → QUIC → joiner)
// beside the bare round trip on the PTY itself, and output throughput of a
// program writing 32 MiB through the share vs read straight off the PTY.
//
//	go test -run '^$' -bench TerminalShare -benchtime 1x ./agent
func BenchmarkTerminalShare(b *testing.B) {
	const samples, block = 2000, 250
	for b.Loop() {
		// Blocks of bare and shared round trips alternate, so both see the
		// same (noisy, virtual) machine.
		bareRT, sharedRT := ptyEcho(b, nil), ptyEcho(b, newSharePair(b))
		var bare, shared []time.Duration
		for range samples / block {
			for range block {
				bare = append(bare, bareRT())
			}
			for range block {
				shared = append(shared, sharedRT())
			}
		}
		b.ReportMetric(micros(pct(bare, 50)), "bare-p50-µs")
		b.ReportMetric(micros(pct(bare, 99)), "bare-p99-µs")
		b.ReportMetric(micros(pct(shared, 50)), "share-p50-µs")
		b.ReportMetric(micros(pct(shared, 99)), "share-p99-µs")
		b.ReportMetric(micros(pct(shared, 50)-pct(bare, 50)), "added-p50-µs")

		var bares, shares []float64 // alternating runs; the medians are reported
		for range 3 {
			bares = append(bares, ptyOutput(b, nil))
			shares = append(shares, ptyOutput(b, newSharePair(b)))
		}
		slices.Sort(bares)
		slices.Sort(shares)
		bareMBps, shareMBps := bares[1], shares[1]
		b.ReportMetric(bareMBps, "bare-MB/s")
		b.ReportMetric(shareMBps, "share-MB/s")
		b.ReportMetric(shareMBps/bareMBps, "ratio")
	}
}

// sharePair is a joiner's QUIC stream to a host being served on loopback.
type sharePair struct {
	ctx    context.Context
	joiner *peer.Session
	serve  func(h *terminal.Host, in io.Writer) // starts Host.Serve on the target's stream
}

func newSharePair(b *testing.B) *sharePair {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	a, t := newTestPeer(b, "joiner"), newTestPeer(b, "sharer")
	got := make(chan *peer.Session, 1)
	go func() {
		_ = t.ep.Serve(ctx, func(ctx context.Context, ps *peer.Session) { // ends with ctx
			got <- ps
			<-ctx.Done()
		})
	}()
	s := session("bench-term", a, t, time.Now().Add(time.Minute))
	s.Kind = protocol.SessionTerminal
	t.cfg.Sessions.Add(s, "alice")
	ps, err := a.ep.Dial(ctx, s)
	if err != nil {
		b.Fatal(err)
	}
	target := <-got
	return &sharePair{ctx: ctx, joiner: ps, serve: func(h *terminal.Host, in io.Writer) {
		go func() { _ = h.Serve(ctx, target.Stream, "alice", true, in) }() // ends with ctx
	}}
}

// startBenchPTY runs script in a PTY, as share-terminal does, and waits
// for it to print "ready".
func startBenchPTY(b *testing.B, script string) *os.File {
	cmd := exec.Command("sh", "-c", script)
	ptmx, err := startPTY(cmd, 80, 24)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); ptmx.Close() })
	waitReady(b, ptmx)
	return ptmx
}

func waitReady(b *testing.B, ptmx *os.File) {
	var seen []byte
	buf := make([]byte, 256)
	for !bytes.Contains(seen, []byte("ready")) {
		n, err := ptmx.Read(buf)
		if err != nil {
			b.Fatalf("PTY before ready: %v (%q)", err, seen)
		}
		seen = append(seen, buf[:n]...)
	}
}

// ptyEcho returns a function timing one round trip of a byte through
// `cat` on a raw PTY: bare (write the master, read it back; creack/pty's
// blocking master, the fastest way) or through a share (the joiner sends an
// input frame, the host writes the PTY, the pump sends the echo back).
func ptyEcho(b *testing.B, sp *sharePair) func() time.Duration {
	const script = "stty raw -echo; echo ready; exec cat"
	key := []byte{'x'}
	if sp == nil {
		cmd := exec.Command("sh", "-c", script)
		ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 80, Rows: 24})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); ptmx.Close() })
		waitReady(b, ptmx)
		buf := make([]byte, 1)
		return func() time.Duration {
			start := time.Now()
			if _, err := ptmx.Write(key); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(ptmx, buf); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
	}
	ptmx := startBenchPTY(b, script)
	h := terminal.NewHost(terminal.HostConfig{Cols: 80, Rows: 24, AllowInput: true})
	go func() { _ = h.Pump(ptmx, nil) }() // ends when the PTY closes
	sp.serve(h, ptmx)
	r := terminal.NewReader(sp.joiner.Stream)
	if f, err := r.Next(); err != nil || f.Type != terminal.FrameHello {
		b.Fatalf("first frame %+v, %v; want hello", f, err)
	}
	return func() time.Duration {
		start := time.Now()
		if err := terminal.WriteFrame(sp.joiner.Stream, terminal.Frame{Type: terminal.FrameInput, Data: key}); err != nil {
			b.Fatal(err)
		}
		for {
			f, err := r.Next()
			if err != nil {
				b.Fatal(err)
			}
			if f.Type == terminal.FrameOutput && len(f.Data) > 0 {
				return time.Since(start)
			}
		}
	}
}

// ptyOutput returns MB/s of a program writing 32 MiB to its terminal, read
// bare off the master or received by a joiner through a share.
func ptyOutput(b *testing.B, sp *sharePair) float64 {
	const size = 32 << 20
	src := filepath.Join(b.TempDir(), "out.txt")
	line := bytes.Repeat([]byte("0123456789abcdef"), 4)
	line = append(line[:63], '\n')
	if err := os.WriteFile(src, bytes.Repeat(line, size/len(line)), 0o644); err != nil {
		b.Fatal(err)
	}
	ptmx := startBenchPTY(b, fmt.Sprintf("stty raw -echo; echo ready; read x; cat %s; echo DONE-$((40+2))", src))
	want := []byte("DONE-42")
	start := time.Now()
	n := 0
	if sp == nil {
		if _, err := ptmx.Write([]byte("\n")); err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 64<<10)
		var tail []byte
		for !bytes.Contains(tail, want) {
			m, err := ptmx.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			n += m
			tail = append(tail[max(0, len(tail)-16):], buf[:m]...)
		}
		return float64(n) / 1e6 / time.Since(start).Seconds()
	}
	h := terminal.NewHost(terminal.HostConfig{Cols: 80, Rows: 24, AllowInput: true})
	go func() { _ = h.Pump(ptmx, nil) }() // ends when the PTY closes
	sp.serve(h, ptmx)
	r := terminal.NewReader(sp.joiner.Stream)
	if f, err := r.Next(); err != nil || f.Type != terminal.FrameHello {
		b.Fatalf("first frame %+v, %v; want hello", f, err)
	}
	start = time.Now()
	if err := terminal.WriteFrame(sp.joiner.Stream, terminal.Frame{Type: terminal.FrameInput, Data: []byte("\n")}); err != nil {
		b.Fatal(err)
	}
	var tail []byte
	for !bytes.Contains(tail, want) {
		f, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		if f.Type != terminal.FrameOutput {
			continue
		}
		n += len(f.Data)
		tail = append(tail[max(0, len(tail)-16):], f.Data...)
	}
	return float64(n) / 1e6 / time.Since(start).Seconds()
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
