package e2e

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file, harness_agent_test.go and harness_http_test.go are the one
// harness of the black-box tests: the binary, a `mesh serve` handle,
// polling with a deadline for what another process does; an agent's
// machine and its processes; HTTP and WebSocket client helpers.

// meshBin is the real binary, built once per test run from the module root.
var meshBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "mesh-bin")
	if err != nil {
		panic(err)
	}
	meshBin = filepath.Join(dir, "mesh")
	if out, err := exec.Command("go", "build", "-o", meshBin, "..").CombinedOutput(); err != nil {
		panic("build mesh: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	_ = os.RemoveAll(dir) // best effort: a temp dir
	os.Exit(code)
}

// mesh runs the binary in dir with stdin, returning combined output and the error.
func mesh(t *testing.T, dir, stdin string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(meshBin, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// cleanEnv is this process's environment without MESH_ variables, so that
// a developer's settings do not leak into the tests.
func cleanEnv() []string {
	// Servers run side by side: each takes its own TURN port, not :3478.
	env := []string{"MESH_RTC_TURN_LISTEN=127.0.0.1:0"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MESH_") {
			env = append(env, kv)
		}
	}
	return env
}

// poll calls cond every interval until it is true or d has passed, and
// says whether it became true. It touches no testing.TB, so goroutines may
// use it; the other side is another process, with nothing to wait on.
func poll(d, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// eventually is poll at 20 ms that fails tb with the message when d passes.
func eventually(tb testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	tb.Helper()
	if !poll(d, 20*time.Millisecond, cond) {
		tb.Fatalf(format, args...)
	}
}

// syncBuffer collects a process's output, readable while it writes.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tail returns the last n bytes, for failure messages.
func (s *syncBuffer) tail(n int) string {
	str := s.String()
	if len(str) > n {
		str = "…" + str[len(str)-n:]
	}
	return str
}

// serverOpts says how to start `mesh serve`.
type serverOpts struct {
	dir  string   // working directory, where mesh.db lives; a fresh one if empty
	addr string   // --listen; 127.0.0.1:0 if empty
	env  []string // on top of cleanEnv
	args []string // more serve flags
}

// meshServer is `mesh serve` running as its own process.
type meshServer struct {
	cmd    *exec.Cmd
	url    string
	dir    string
	logs   *syncBuffer // stderr
	exited chan struct{}
	err    error // the exit; set before exited closes
	once   sync.Once
	http   *http.Client
}

// launchServer starts `mesh serve` and waits for the URL line it prints.
// It touches no testing.TB: the soak restarts the server from its own
// goroutine and retries a busy port.
func launchServer(o serverOpts) (*meshServer, error) {
	if o.addr == "" {
		o.addr = "127.0.0.1:0"
	}
	cmd := exec.Command(meshBin, append([]string{"serve", "--listen", o.addr}, o.args...)...)
	cmd.Dir, cmd.Env = o.dir, append(cleanEnv(), o.env...)
	s := &meshServer{cmd: cmd, dir: o.dir, logs: &syncBuffer{}, exited: make(chan struct{}), http: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 32},
	}}
	cmd.Stderr = s.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err == nil {
		_, rest, _ := strings.Cut(line, "open ")
		s.url, _, _ = strings.Cut(rest, " ")
		if !strings.HasPrefix(s.url, "http://127.0.0.1:") && !strings.HasPrefix(s.url, "https://127.0.0.1:") {
			err = fmt.Errorf("mesh serve printed %q, want the URL to open", line)
		}
	} else {
		err = fmt.Errorf("mesh serve printed no URL: %w", err)
	}
	if err != nil {
		_ = cmd.Process.Kill() // it failed to start as asked
		_ = cmd.Wait()
		return nil, fmt.Errorf("%w\n%s", err, s.logs.tail(4000))
	}
	go func() { _, _ = io.Copy(io.Discard, stdout); s.err = cmd.Wait(); close(s.exited) }() // nothing more is printed
	return s, nil
}

// startServer is launchServer in a fresh directory unless o names one. The
// server is stopped when tb ends, after anything tb.Cleanup registered
// later (clients, agents) has run.
func startServer(tb testing.TB, o serverOpts) *meshServer {
	tb.Helper()
	if o.dir == "" {
		o.dir = tb.TempDir()
	}
	s, err := launchServer(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.stop(tb) })
	return s
}

// addr is the server's HOST:PORT, to start it again on the same address.
func (s *meshServer) addr() string {
	return strings.TrimPrefix(strings.TrimPrefix(s.url, "http://"), "https://")
}

// stop sends SIGTERM once and requires a clean exit within a minute; it
// returns the logs. Later calls, and calls after kill, only return them.
func (s *meshServer) stop(tb testing.TB) string {
	tb.Helper()
	s.once.Do(func() {
		s.http.CloseIdleConnections()
		select {
		case <-s.exited:
			tb.Errorf("mesh serve exited before it was stopped: %v\n%s", s.err, s.logs.tail(4000))
			return
		default:
		}
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			tb.Errorf("signal mesh serve: %v", err)
			return
		}
		select {
		case <-s.exited:
			if s.err != nil {
				tb.Errorf("mesh serve after SIGTERM: %v\n%s", s.err, s.logs.tail(4000))
			}
		case <-time.After(time.Minute):
			_ = s.cmd.Process.Kill() // it already failed the test
			<-s.exited
			tb.Errorf("mesh serve did not exit within a minute of SIGTERM\n%s", s.logs.tail(4000))
		}
	})
	return s.logs.String()
}

// halt is stop for when no testing.TB is at hand, or the server may
// already be gone: SIGTERM once, SIGKILL after 30 s, no checks.
func (s *meshServer) halt() {
	s.once.Do(func() {
		s.http.CloseIdleConnections()
		_ = s.cmd.Process.Signal(syscall.SIGTERM) // may have exited already
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// kill ends the server with SIGKILL, so that no shutdown code runs, and
// waits for it to be gone.
func (s *meshServer) kill(tb testing.TB) {
	tb.Helper()
	s.once.Do(func() {
		if err := s.cmd.Process.Kill(); err != nil {
			tb.Fatal(err)
		}
		<-s.exited
	})
}

// mustPost sends body and requires status want.
func (s *meshServer) mustPost(t *testing.T, path, body string, want int) {
	t.Helper()
	res, err := http.Post(s.url+path, "", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != want {
		t.Fatalf("POST %s = %d %s, want %d", path, res.StatusCode, b, want)
	}
}
