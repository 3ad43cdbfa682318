package terminal

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestViewerSeesShellOutput(t *testing.T) {
	t.Parallel()
	s := newShare(t, HostConfig{Cols: 80, Rows: 24, Command: "sh"})
	v := view(t, s.host, "bob", false, s.pty)
	if want := (Hello{Cols: 80, Rows: 24, Command: "sh"}); v.hello != want {
		t.Errorf("hello = %+v, want %+v", v.hello, want)
	}
	// The typed command echoes as "he%sllo"; only its output reads "hello".
	s.typeIn(t, "printf 'he%sllo\\n' X\r")
	v.until(t, "heXllo")
	s.local.waitFor(t, "heXllo")

	// OnOutput runs after the viewers got each chunk, so one of the two
	// has seen a prefix of what the other has.
	seen := s.outputs()
	if !bytes.HasPrefix(seen, v.out) && !bytes.HasPrefix(v.out, seen) {
		t.Errorf("viewer got %q, OnOutput %q: neither is a prefix of the other", v.out, seen)
	}
}

func TestInputPermissions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		allowInput bool
		canType    bool
	}{
		{"host allows, viewer may", true, true},
		{"host allows, viewer may not", true, false},
		{"host forbids, viewer may", false, true},
		{"host forbids, viewer may not", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newShare(t, HostConfig{AllowInput: tc.allowInput})
			v := view(t, s.host, "eve", tc.canType, s.pty)
			want := tc.allowInput && tc.canType
			if v.hello.Input != want {
				t.Errorf("hello input = %v, want %v", v.hello.Input, want)
			}
			file := filepath.Join(s.dir, "typed")
			v.send(t, "touch "+file+"\r")
			if want {
				waitFile(t, file)
				return
			}
			// Once Serve has returned, it has handled every frame the viewer
			// sent; the marker's output then proves the shell has read all
			// that was written to it before.
			if err := v.conn.(*net.TCPConn).CloseWrite(); err != nil { // a Close with output unread may reset
				t.Fatal(err)
			}
			if err := v.waitServed(t); err != nil {
				t.Errorf("Serve after the viewer left = %v, want nil", err)
			}
			s.typeIn(t, "echo mark$((6*7))\r")
			s.local.waitFor(t, "mark42")
			if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a read-only viewer's input reached the shell: stat %s = %v", file, err)
			}
		})
	}
}

// waitFile polls for a file an external process makes.
func waitFile(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		if _, err := os.Stat(name); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("%s still missing after %v: %v", name, patience, err)
		}
		time.Sleep(10 * time.Millisecond) // polling another process, not synchronising goroutines
	}
}

func TestLateJoinerGetsRecentOutput(t *testing.T) {
	t.Parallel()
	s := newShare(t, HostConfig{})
	s.typeIn(t, "printf 'late%s\\n' 42\r")
	s.local.waitFor(t, "late42")

	v := view(t, s.host, "late", false, nil)
	f := v.read(t)
	if f.Type != FrameOutput || f.Offset != 0 || v.hello.Offset != 0 {
		t.Fatalf("first frame %+v after hello offset %d, want output at offset 0", f, v.hello.Offset)
	}
	if !bytes.Contains(f.Data, []byte("late42")) {
		t.Errorf("first output frame %q lacks the output before the join", f.Data)
	}
}

func TestRingWrapsForLateJoiner(t *testing.T) {
	t.Parallel()
	h := NewHost(HostConfig{RingSize: 64})
	out := pattern(1000)
	if err := h.Pump(bytes.NewReader(out), nil); err != nil {
		t.Fatalf("Pump = %v", err)
	}
	h.Exit(0, "done")
	v := view(t, h, "late", false, nil)
	want := []Frame{
		{Type: FrameOutput, Offset: 936, Data: out[936:]},
		{Type: FrameExit, Reason: "done"},
	}
	v.untilExit(t)
	if v.hello.Offset != 936 {
		t.Errorf("hello offset = %d, want 936", v.hello.Offset)
	}
	if diff := cmp.Diff(want, v.frames); diff != "" {
		t.Errorf("frames after hello (-want +got):\n%s", diff)
	}
	if err := v.waitServed(t); err != nil {
		t.Errorf("Serve after the exit frame = %v, want nil", err)
	}
}

func TestRing(t *testing.T) {
	t.Parallel()
	out := pattern(100)
	for _, tc := range []struct {
		name      string
		writes    []int // lengths of successive writes
		from      uint64
		wantStart uint64
	}{
		{"empty", nil, 0, 0},
		{"partly full", []int{5, 3}, 0, 0},
		{"from the middle", []int{5, 3}, 6, 0},
		{"exactly full", []int{16}, 0, 0},
		{"wrapped", []int{10, 10}, 0, 4},
		{"wrapped twice", []int{7, 7, 7, 7, 7}, 0, 19},
		{"one write larger than the ring", []int{3, 40}, 0, 27},
		{"asked from past the start", []int{30}, 20, 14},
	} {
		r := ring{buf: make([]byte, 16)}
		var end int
		for _, n := range tc.writes {
			r.write(out[end : end+n])
			end += n
		}
		if r.end != uint64(end) || r.start() != tc.wantStart {
			t.Errorf("%s: ring holds [%d, %d), want [%d, %d)", tc.name, r.start(), r.end, tc.wantStart, end)
		}
		var got []byte
		next := max(tc.from, tc.wantStart)
		for _, f := range r.frames(nil, tc.from) {
			if f.Offset != next {
				t.Errorf("%s: frame at %d, want %d", tc.name, f.Offset, next)
			}
			got = append(got, f.Data...)
			next += uint64(len(f.Data))
		}
		if want := out[max(tc.from, tc.wantStart):end]; !bytes.Equal(got, want) {
			t.Errorf("%s: ring frames hold %v, want %v", tc.name, got, want)
		}
	}
}

func TestExitReachesEveryViewer(t *testing.T) {
	t.Parallel()
	s := newShare(t, HostConfig{})
	type joined struct {
		st  ExitStatus
		err error
	}
	results := make(chan joined, 2)
	for range 2 {
		client, server := tcpPair(t)
		v := &testViewer{served: make(chan error, 1)}
		go func() { v.served <- s.host.Serve(context.Background(), server, "v", false, nil) }()
		go func() {
			st, err := Join(context.Background(), client, JoinOptions{})
			results <- joined{st, err}
		}()
		t.Cleanup(func() {
			if err := v.waitServed(t); err != nil {
				t.Errorf("Serve = %v, want nil after the exit frame", err)
			}
		})
	}
	s.typeIn(t, "exit 3\r")
	if err := s.pumped(); err != nil {
		t.Fatalf("Pump after the shell exited = %v, want nil", err)
	}
	var exitErr *exec.ExitError
	if err := s.cmd.Wait(); !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Fatalf("shell exited with %v, want status 3", err)
	}
	s.host.Exit(exitErr.ExitCode(), exitErr.Error())
	for range 2 {
		got := recv(t, results, "Join to return")
		want := joined{st: ExitStatus{Code: 3, Reason: "exit status 3"}}
		if got != want {
			t.Errorf("Join = %+v, want %+v", got, want)
		}
	}
}

func TestResizeReachesViewers(t *testing.T) {
	t.Parallel()
	h := NewHost(HostConfig{Cols: 80, Rows: 24})
	client, server := tcpPair(t)
	served := make(chan error, 1)
	go func() { served <- h.Serve(context.Background(), server, "v", false, nil) }()
	resized := make(chan [2]int, 1)
	hello := make(chan Hello, 1)
	joined := make(chan error, 1)
	go func() {
		_, err := Join(context.Background(), client, JoinOptions{
			OnHello:  func(h Hello) { hello <- h },
			OnResize: func(cols, rows int) { resized <- [2]int{cols, rows} },
		})
		joined <- err
	}()
	recv(t, hello, "hello")
	h.Resize(100, 40)
	h.Resize(100, 40) // the same size again is not news
	if got := recv(t, resized, "resize"); got != [2]int{100, 40} {
		t.Errorf("OnResize(%d, %d), want (100, 40)", got[0], got[1])
	}
	late := view(t, h, "late", false, nil)
	if late.hello.Cols != 100 || late.hello.Rows != 40 {
		t.Errorf("a later hello says %dx%d, want 100x40", late.hello.Cols, late.hello.Rows)
	}
	h.Exit(0, "")
	if err := recv(t, joined, "Join to return"); err != nil {
		t.Errorf("Join = %v", err)
	}
	if err := recv(t, served, "Serve to return"); err != nil {
		t.Errorf("Serve = %v, want nil after the exit frame", err)
	}
	if got := late.untilExit(t); len(late.frames) != 1 {
		t.Errorf("late viewer got %+v, want only the exit frame %+v", late.frames, got)
	}
}

func TestServeRejectsViewerFrames(t *testing.T) {
	t.Parallel()
	h := NewHost(HostConfig{AllowInput: true})
	v := view(t, h, "mallory", true, nil)
	if err := WriteFrame(v.conn, Frame{Type: FrameResize, Cols: 1, Rows: 1}); err != nil {
		t.Fatal(err)
	}
	if err := v.waitServed(t); !errors.Is(err, ErrProtocol) {
		t.Errorf("Serve after a resize from the viewer = %v, want ErrProtocol", err)
	}
}

func TestOnViewers(t *testing.T) {
	t.Parallel()
	calls := make(chan []string, 10)
	h := NewHost(HostConfig{OnViewers: func(names []string) { calls <- names }})
	var stops []context.CancelFunc
	var served []chan error
	for _, name := range []string{"bob", "alice", "bob"} {
		_, server := tcpPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.Serve(ctx, server, name, false, nil) }()
		stops, served = append(stops, cancel), append(served, done)
		got := recv(t, calls, "OnViewers on join") // one join at a time, so in order
		if name == "bob" && len(stops) == 3 {
			if diff := cmp.Diff([]string{"alice", "bob", "bob"}, got); diff != "" {
				t.Errorf("OnViewers after three joins (-want +got):\n%s", diff)
			}
		}
	}
	for i := range stops {
		stops[i]()
		if err := recv(t, served[i], "Serve to return"); err != nil {
			t.Errorf("Serve after its context was cancelled = %v, want nil", err)
		}
		got := recv(t, calls, "OnViewers on leave")
		want := [][]string{{"alice", "bob"}, {"bob"}, {}}[i]
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("OnViewers after %d left (-want +got):\n%s", i+1, diff)
		}
	}
}

// TestNoGoroutineLeft runs a whole share and then looks for any goroutine
// of the package. It is not parallel: parallel tests are paused while it
// runs, so every goroutine it finds is its own.
func TestNoGoroutineLeft(t *testing.T) {
	s := newShare(t, HostConfig{AllowInput: true})
	leaver := view(t, s.host, "leaver", true, s.pty)
	client, server := tcpPair(t)
	served := make(chan error, 1)
	go func() { served <- s.host.Serve(context.Background(), server, "stayer", true, s.pty) }()
	joined := make(chan joinOutcome, 1)
	go func() {
		st, err := Join(context.Background(), client, JoinOptions{In: strings.NewReader("echo bye$((1+1)); exit 4\r")})
		joined <- joinOutcome{st, err}
	}()
	leaver.until(t, "bye2")
	if err := leaver.conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := leaver.waitServed(t); err != nil {
		t.Errorf("Serve after the viewer left = %v", err)
	}
	if err := s.pumped(); err != nil {
		t.Errorf("Pump = %v", err)
	}
	s.host.Exit(4, "exit status 4")
	if got := recv(t, joined, "Join to return"); got.err != nil || got.st.Code != 4 {
		t.Errorf("Join = %+v, want code 4", got)
	}
	if err := recv(t, served, "Serve to return"); err != nil {
		t.Errorf("Serve = %v", err)
	}

	// A goroutine that has signalled its end may still be returning, so
	// look again for a while, as goleak does, before calling it a leak.
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := packageGoroutines()
		if len(left) == 0 {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("goroutines outlived their call:\n%s", strings.Join(left, "\n\n"))
		}
		runtime.Gosched()
	}
}

// packageGoroutines returns the stacks of the goroutines running code of
// the package itself rather than of its tests.
func packageGoroutines() []string {
	buf := make([]byte, 1<<20)
	var left []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		for _, fn := range []string{"terminal.(*Host).", "terminal.(*joiner).", "terminal.Join", "terminal.readViewer"} {
			if strings.Contains(g, "mesh/"+fn) {
				left = append(left, g)
				break
			}
		}
	}
	return left
}

// TestRecent: Recent is the ring's copy from its start offset, for the
// first browser watcher, whatever has wrapped.
func TestRecent(t *testing.T) {
	t.Parallel()
	h := NewHost(HostConfig{RingSize: 64})
	if off, data := h.Recent(); off != 0 || len(data) != 0 {
		t.Errorf("Recent before output = %d, %q; want 0, nothing", off, data)
	}
	out := pattern(1000)
	if err := h.Pump(bytes.NewReader(out), nil); err != nil {
		t.Fatalf("Pump = %v", err)
	}
	off, data := h.Recent()
	if off != 936 || !bytes.Equal(data, out[936:]) {
		t.Errorf("Recent = %d, %d bytes; want 936 and the last 64 bytes", off, len(data))
	}
}
