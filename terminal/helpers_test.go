package terminal

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// patience bounds every wait of a test; reaching it means a bug, not a slow machine.
const patience = 20 * time.Second

// tcpPair returns both ends of a real TCP loopback connection.
func tcpPair(tb testing.TB) (client, server net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			tb.Error(err)
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		tb.FailNow()
	}
	tb.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// startPTY runs sh -c script on a new 80×24 PTY in dir and returns its
// master, non-blocking as the agent makes it (so Pump reads it raw).
// Cleanup kills the process if it still runs.
func startPTY(tb testing.TB, dir, script string) (*os.File, *exec.Cmd) {
	tb.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "PS1=$ ", "TERM=dumb"}
	blocking, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		tb.Fatalf("start %q on a PTY: %v", script, err)
	}
	fd, err := syscall.Dup(int(blocking.Fd()))
	if err == nil {
		err = syscall.SetNonblock(fd, true)
	}
	blocking.Close()
	if err != nil {
		tb.Fatal(err)
	}
	master := os.NewFile(uintptr(fd), "ptmx")
	if rawReader(master) == nil {
		tb.Fatal("the non-blocking master is not read raw")
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill() // it may have exited already
		_ = cmd.Wait()         // its status does not matter any more
		master.Close()
	})
	return master, cmd
}

// share is an interactive sh on a PTY shared by a Host whose Pump runs.
type share struct {
	host    *Host
	pty     *os.File
	cmd     *exec.Cmd
	dir     string
	local   *watchWriter  // what the sharer's own terminal got
	pumped  func() error  // waits for Pump's result
	outputs func() []byte // what OnOutput got, in order
}

func newShare(t *testing.T, cfg HostConfig) *share {
	t.Helper()
	s := &share{dir: t.TempDir(), local: newWatchWriter()}
	var mu sync.Mutex
	var next uint64
	var all []byte
	cfg.OnOutput = func(offset uint64, data []byte) {
		mu.Lock()
		defer mu.Unlock()
		if offset != next {
			t.Errorf("OnOutput offset %d, want %d", offset, next)
		}
		next = offset + uint64(len(data))
		all = append(all, data...)
	}
	s.outputs = func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return bytes.Clone(all)
	}
	s.host = NewHost(cfg)
	s.pty, s.cmd = startPTY(t, s.dir, "exec sh")
	done := make(chan error, 1)
	go func() { done <- s.host.Pump(s.pty, s.local) }()
	s.pumped = sync.OnceValue(func() error { return <-done })
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill() // ends the pump with EIO, if the test has not
		_ = s.pumped()           // checked by the tests that care
	})
	return s
}

// typeIn writes text to the PTY as the sharer typing it.
func (s *share) typeIn(t *testing.T, text string) {
	t.Helper()
	if _, err := s.pty.Write([]byte(text)); err != nil {
		t.Fatalf("type %q: %v", text, err)
	}
}

// watchWriter collects what is written to it and lets a test wait for it.
type watchWriter struct {
	mu      sync.Mutex // guards buf, changed
	buf     []byte
	changed chan struct{} // closed and replaced on every write
}

func newWatchWriter() *watchWriter { return &watchWriter{changed: make(chan struct{})} }

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	close(w.changed)
	w.changed = make(chan struct{})
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

// waitFor waits until what was written contains want.
func (w *watchWriter) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(patience)
	for {
		w.mu.Lock()
		found, changed := bytes.Contains(w.buf, []byte(want)), w.changed
		w.mu.Unlock()
		if found {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("waited %v for %q; got %q", patience, want, w.String())
		}
	}
}

// testViewer is a viewer speaking raw frames to a Host over TCP.
type testViewer struct {
	conn   net.Conn
	fr     *Reader
	hello  Hello
	out    []byte  // every output byte received
	frames []Frame // every frame after Hello, Data copied
	next   uint64  // the offset after the last output frame
	served chan error
}

// view starts Host.Serve on one end of a TCP pair and reads its Hello on
// the other. Cleanup ends Serve.
func view(t *testing.T, h *Host, name string, canType bool, in io.Writer) *testViewer {
	t.Helper()
	client, server := tcpPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	v := &testViewer{conn: client, fr: NewReader(client), served: make(chan error, 1)}
	go func() { v.served <- h.Serve(ctx, server, name, canType, in) }()
	t.Cleanup(func() {
		cancel()
		<-v.served
	})
	f := v.read(t)
	hello, err := f.Hello()
	if err != nil {
		t.Fatalf("first frame %+v: %v", f, err)
	}
	v.hello, v.next = hello, hello.Offset
	return v
}

// read returns the next frame, checking output offsets never go back.
func (v *testViewer) read(t *testing.T) Frame {
	t.Helper()
	_ = v.conn.SetReadDeadline(time.Now().Add(patience)) // a TCP conn takes it
	f, err := v.fr.Next()
	if err != nil {
		t.Fatalf("read frame: %v (output so far %q)", err, v.out)
	}
	f.Data = bytes.Clone(f.Data)
	if f.Type == FrameOutput {
		if f.Offset < v.next {
			t.Fatalf("output at offset %d, before %d", f.Offset, v.next)
		}
		v.out = append(v.out, f.Data...)
		v.next = f.Offset + uint64(len(f.Data))
	}
	if f.Type != FrameHello {
		v.frames = append(v.frames, f)
	}
	return f
}

// until reads frames until the output contains want.
func (v *testViewer) until(t *testing.T, want string) {
	t.Helper()
	for !strings.Contains(string(v.out), want) {
		if f := v.read(t); f.Type == FrameExit {
			t.Fatalf("exit %+v before %q in %q", f, want, v.out)
		}
	}
}

// untilExit reads frames up to the exit frame and returns it.
func (v *testViewer) untilExit(t *testing.T) Frame {
	t.Helper()
	for {
		if f := v.read(t); f.Type == FrameExit {
			return f
		}
	}
}

// send writes keystrokes as an input frame.
func (v *testViewer) send(t *testing.T, keys string) {
	t.Helper()
	if err := WriteFrame(v.conn, Frame{Type: FrameInput, Data: []byte(keys)}); err != nil {
		t.Fatalf("send %q: %v", keys, err)
	}
}

// waitServed waits for Serve to return and gives its error.
func (v *testViewer) waitServed(t *testing.T) error {
	t.Helper()
	select {
	case err := <-v.served:
		v.served <- err // for the cleanup
		return err
	case <-time.After(patience):
		t.Fatalf("Serve still runs after %v", patience)
		return nil
	}
}

// pattern returns n bytes whose value at offset i is i%251, so that any
// slice of it shows where it came from.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// recv waits for a value on c.
func recv[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(patience):
		t.Fatalf("waited %v for %s", patience, what)
		panic("unreachable")
	}
}
