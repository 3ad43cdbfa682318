package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
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

func newMachine(t *testing.T, name string) machine {
	t.Helper()
	home := t.TempDir()
	return machine{name: name, home: home, env: []string{
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		"XDG_DATA_HOME=" + filepath.Join(home, "data"),
		"MESH_AGENT_QUIC_LISTEN=127.0.0.1:0",
		"MESH_LOG=debug",
	}}
}

func (m machine) inbox() string { return filepath.Join(m.home, "data", "mesh", "inbox") }

// login enrols the machine as user's device.
func (m machine) login(t *testing.T, server, user string) {
	t.Helper()
	out, err := mesh(t, m.home, "secret1\n", m.env, "agent", "login", "--server", server, "--username", user, "--device", m.name, "--password-stdin")
	if err != nil || !strings.Contains(out, "enrolled "+m.name) {
		t.Fatalf("agent login %s: %v\n%s", m.name, err, out)
	}
	fi, err := os.Stat(filepath.Join(m.home, "config", "mesh", "agent.toml"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("agent.toml: %v, mode %v; want 0600", err, fi)
	}
}

type agentProc struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan error
}

// run starts `mesh agent run` and waits until the server lists it online.
func (m machine) run(t *testing.T, server, tok string) *agentProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, meshBin, "agent", "run")
	cmd.Dir, cmd.Env = m.home, append(cleanEnv(), m.env...)
	p := &agentProc{cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // may have exited already
		<-p.done
		if t.Failed() {
			t.Logf("agent %s log:\n%s", m.name, p.logs.String())
		}
	})
	waitOnline(t, server, tok, m.name, true)
	return p
}

func waitOnline(t *testing.T, server, tok, device string, want bool) {
	t.Helper()
	if err := pollOnline(server, tok, device, want, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

// pollOnline polls GET /api/devices (an outside process: nothing to wait
// on) until device's online state is want, for at most d. It touches no
// testing.T, so goroutines may use it.
func pollOnline(server, tok, device string, want bool, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var l struct {
			Devices []struct {
				DeviceID string `json:"device_id"`
				Online   bool   `json:"online"`
			} `json:"devices"`
		}
		req, err := http.NewRequest(http.MethodGet, server+"/api/devices", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		if res, err := http.DefaultClient.Do(req); err == nil {
			if res.StatusCode == http.StatusOK && json.NewDecoder(res.Body).Decode(&l) == nil {
				for _, dev := range l.Devices {
					if dev.DeviceID == device && dev.Online == want {
						res.Body.Close()
						return nil
					}
				}
			}
			res.Body.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("device %s not online=%t within %s", device, want, d)
}

// send runs `mesh agent send-file` from m and returns its output and error.
func (m machine) send(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return mesh(t, m.home, "", m.env, append([]string{"agent", "send-file"}, args...)...)
}

func fileHash(t *testing.T, path string) string {
	t.Helper()
	sum, err := hashFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func writeRandom(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer collects a process's output for failure messages.
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

// TestAgentReconnects: the server goes away and comes back on the same
// address; the agent reconnects by itself and is online again.
func TestAgentReconnects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := []string{"MESH_AUTH_BCRYPT_COST=4", "MESH_AUTH_REGISTRATION=open"}
	srv := runServer(t, dir, env)
	tok := apiToken(t, srv.url, "alice")
	home := newMachine(t, "home")
	home.login(t, srv.url, "alice")
	agentProc := home.run(t, srv.url, tok)
	srv.stop(t)
	srv2 := runServerAt(t, dir, env, strings.TrimPrefix(srv.url, "http://"))
	defer srv2.stop(t)
	waitOnline(t, srv2.url, tok, "home", true)
	if !strings.Contains(agentProc.logs.String(), "reconnecting") {
		t.Errorf("agent log does not mention reconnecting:\n%s", agentProc.logs.String())
	}
}
