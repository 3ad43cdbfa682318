package e2e

import (
	"context"
	"encoding/json"
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

// machine is one agent's home: its own config and data directories.
type machine struct {
	name string
	env  []string
	home string
}

func newMachine(tb testing.TB, name string) machine {
	tb.Helper()
	home := tb.TempDir()
	return machine{name: name, home: home, env: []string{
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		"XDG_DATA_HOME=" + filepath.Join(home, "data"),
		"MESH_AGENT_QUIC_LISTEN=127.0.0.1:0",
		"MESH_LOG=debug",
	}}
}

func (m machine) inbox() string { return filepath.Join(m.home, "data", "mesh", "inbox") }

// proc is a mesh process other than the server (an agent, a sender, a
// terminal) or a shell line that runs one.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser // nil unless asked for
	out   *syncBuffer    // stdout and stderr
	done  chan error     // the exit, for the test; whoever takes it and needs it again puts it back
	once  sync.Once
	// exited closes when the process has exited; stop waits on it, so
	// that what the test does with done does not matter.
	exited chan struct{}
}

// startCmd starts cmd with its output collected, and a pipe to its stdin
// if asked (else stdin is empty).
func startCmd(cmd *exec.Cmd, stdin bool) (*proc, error) {
	p := &proc{cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if stdin {
		var err error
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { err := cmd.Wait(); close(p.exited); p.done <- err }()
	return p, nil
}

// startProc starts mesh with args on m. It touches no testing.TB, so the
// soak's goroutines may use it.
func startProc(ctx context.Context, m machine, stdin bool, args ...string) (*proc, error) {
	cmd := exec.CommandContext(ctx, meshBin, args...)
	cmd.Dir, cmd.Env = m.home, append(cleanEnv(), m.env...)
	return startCmd(cmd, stdin)
}

// stop ends p with SIGTERM (once), and SIGKILL if it has not exited within 20 s.
func (p *proc) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM) // may have exited already
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

// kill ends p with SIGKILL (once) and waits for it to be gone.
func (p *proc) kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill() // may have exited already
		<-p.exited
	})
}

// login enrols the machine as user's device.
func (m machine) login(tb testing.TB, server, user string) {
	tb.Helper()
	cmd := exec.Command(meshBin, "agent", "login", "--server", server, "--username", user, "--device", m.name, "--password-stdin")
	cmd.Dir, cmd.Env, cmd.Stdin = m.home, append(cleanEnv(), m.env...), strings.NewReader("secret1\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "enrolled "+m.name) {
		tb.Fatalf("agent login %s: %v\n%s", m.name, err, out)
	}
	fi, err := os.Stat(filepath.Join(m.home, "config", "mesh", "agent.toml"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		tb.Fatalf("agent.toml: %v, mode %v; want 0600", err, fi)
	}
}

// run starts `mesh agent run` and waits until the server lists it online;
// it is stopped when tb ends, its log shown if tb failed.
func (m machine) run(tb testing.TB, server, tok string) *proc {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	p, err := startProc(ctx, m, false, "agent", "run")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		p.stop()
		if tb.Failed() {
			tb.Logf("agent %s log:\n%s", m.name, p.out.String())
		}
	})
	waitOnline(tb, server, tok, m.name, true)
	return p
}

// start runs mesh with args on m, its stdin a pipe the test types into; a
// process still running after 2 minutes is killed. It is stopped when t
// ends, its output shown if t failed.
func (m machine) start(t *testing.T, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	p, err := startProc(ctx, m, true, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s %s output:\n%s", m.name, args[1], p.out.String())
		}
	})
	return p
}

func waitOnline(tb testing.TB, server, tok, device string, want bool) {
	tb.Helper()
	if err := pollOnline(server, tok, device, want, 20*time.Second); err != nil {
		tb.Fatal(err)
	}
}

// pollOnline polls GET /api/devices until device's online state is want,
// for at most d. It touches no testing.TB, so goroutines may use it.
func pollOnline(server, tok, device string, want bool, d time.Duration) error {
	online := func() bool {
		var l struct {
			Devices []struct {
				DeviceID string `json:"device_id"`
				Online   bool   `json:"online"`
			} `json:"devices"`
		}
		req, err := http.NewRequest(http.MethodGet, server+"/api/devices", nil)
		if err != nil {
			return false
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&l) != nil {
			return false
		}
		for _, dev := range l.Devices {
			if dev.DeviceID == device && dev.Online == want {
				return true
			}
		}
		return false
	}
	if !poll(d, 20*time.Millisecond, online) {
		return fmt.Errorf("device %s not online=%t within %s", device, want, d)
	}
	return nil
}
