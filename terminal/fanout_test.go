package terminal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestStalledViewerSlowsNobody(t *testing.T) {
	t.Parallel()
	const n = 4 << 20
	alone := fanOut(t, n, false)
	beside := fanOut(t, n, true)
	t.Logf("fast viewer over TCP: %.1f MB/s alone, %.1f MB/s beside a viewer that never reads", alone, beside)
}

// fanOut shares a PTY writing n bytes with one viewer that reads as fast as
// it can and, if stalled, one that never reads. It checks the fast viewer
// got every byte and the pump finished, and returns the fast viewer's
// throughput in MB/s.
func fanOut(t *testing.T, n int, stalled bool) float64 {
	t.Helper()
	joins := make(chan []string, 8)
	// A ring as large as the output lets even a fast viewer that falls
	// behind on a loaded machine catch up without a gap.
	h := NewHost(HostConfig{RingSize: n, Queue: 64, OnViewers: func(names []string) { joins <- names }})
	if stalled {
		a, b := net.Pipe() // b is never read, so every write to a blocks
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- h.Serve(ctx, a, "stalled", false, nil) }()
		t.Cleanup(func() {
			cancel()
			<-served
			a.Close()
			b.Close()
		})
		recv(t, joins, "the stalled viewer to join")
	}
	fast := view(t, h, "fast", false, nil)

	master, _ := startPTY(t, t.TempDir(), fmt.Sprintf("stty raw -echo; yes abcdefgh | head -c %d", n))
	start := time.Now()
	pumped := make(chan error, 1)
	go func() {
		err := h.Pump(master, nil)
		h.Exit(0, "")
		pumped <- err
	}()
	fast.untilExit(t)
	elapsed := time.Since(start)
	if err := recv(t, pumped, "Pump to return"); err != nil {
		t.Fatalf("Pump = %v", err)
	}
	want := bytes.Repeat([]byte("abcdefgh\n"), n/9+1)[:n]
	if !bytes.Equal(fast.out, want) {
		t.Fatalf("fast viewer got %d bytes, want the %d bytes written (first frames %+v)", len(fast.out), n, fast.frames[:min(3, len(fast.frames))])
	}
	return float64(n) / elapsed.Seconds() / 1e6
}

func TestViewerBehindResyncsFromRing(t *testing.T) {
	t.Parallel()
	joins := make(chan []string, 4)
	h := NewHost(HostConfig{Queue: 1, RingSize: 32, OnViewers: func(names []string) { joins <- names }})
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	served := make(chan error, 1)
	go func() { served <- h.Serve(context.Background(), server, "slow", false, nil) }()
	recv(t, joins, "the viewer to join")

	// Nobody reads client yet, so the viewer's writer is stuck on the hello
	// and its queue of one frame overflows: the pump does not wait.
	out := pattern(10000)
	if err := h.Pump(bytes.NewReader(out), nil); err != nil {
		t.Fatalf("Pump = %v", err)
	}
	h.Exit(7, "gone")

	v := &testViewer{conn: client, fr: NewReader(client)}
	if f := v.read(t); f.Type != FrameHello {
		t.Fatalf("first frame %+v, want hello", f)
	}
	exit := v.untilExit(t)
	if exit.Code != 7 || exit.Reason != "gone" {
		t.Errorf("exit frame %+v, want code 7, reason gone", exit)
	}
	for _, f := range v.frames {
		if f.Type == FrameOutput && !bytes.Equal(f.Data, out[f.Offset:f.Offset+uint64(len(f.Data))]) {
			t.Errorf("output frame at %d holds %v, not the output at that offset", f.Offset, f.Data)
		}
	}
	if v.next != 10000 || len(v.out) >= 10000 || !bytes.HasSuffix(v.out, out[10000-32:]) {
		t.Errorf("viewer got %d bytes up to offset %d, want a gap and then the ring's last 32 bytes up to 10000", len(v.out), v.next)
	}
	if err := recv(t, served, "Serve to return"); err != nil {
		t.Errorf("Serve = %v, want nil after the exit frame", err)
	}
}

func TestStalledViewerIsDropped(t *testing.T) {
	t.Parallel()
	h := NewHost(HostConfig{WriteTimeout: 50 * time.Millisecond})
	client, server := net.Pipe() // client is never read
	t.Cleanup(func() { client.Close(); server.Close() })
	err := h.Serve(context.Background(), server, "stuck", false, nil)
	if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "viewer stuck") {
		t.Errorf("Serve to a viewer that never reads = %v, want a deadline error naming the viewer", err)
	}
}

func TestPumpErrors(t *testing.T) {
	t.Parallel()
	h := NewHost(HostConfig{})
	err := h.Pump(bytes.NewReader(pattern(100)), failingWriter{})
	if err == nil || !strings.Contains(err.Error(), "write local terminal: broken") {
		t.Errorf("Pump to a broken local terminal = %v, want its error", err)
	}
	if got := h.Offset(); got != 100 {
		t.Errorf("Offset() after a broken local terminal = %d, want 100: viewers still get the output", got)
	}
	broken := errors.New("read failed")
	if err := NewHost(HostConfig{}).Pump(iotest.ErrReader(broken), nil); !errors.Is(err, broken) {
		t.Errorf("Pump of a failing reader = %v, want %v", err, broken)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken") }
