package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tmux drives one detached tmux server of its own (its own socket).
type tmux struct {
	t      *testing.T
	socket string
}

func newTmux(t *testing.T) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tmux is not installed; CI must install it (apt-get install -y tmux)")
		}
		t.Skip("tmux is not installed")
	}
	tm := &tmux{t: t, socket: filepath.Join(t.TempDir(), "tmux.sock")}
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", tm.socket, "kill-server").Run() }) // gone already is fine
	return tm
}

func (tm *tmux) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", tm.socket}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (tm *tmux) screen() string { return tm.run("capture-pane", "-p", "-t", "main") }

// waitScreen polls the pane (tmux is an outside process) until it shows s.
func (tm *tmux) waitScreen(s string) {
	tm.t.Helper()
	if !poll(20*time.Second, 20*time.Millisecond, func() bool { return strings.Contains(tm.screen(), s) }) {
		tm.t.Fatalf("the pane never showed %q; it shows:\n%s", s, tm.screen())
	}
}

// TestShareTerminalUnderTmux runs the real binary in a real terminal: the
// sharer's terminal is raw while sharing and its input reaches the shell,
// Ctrl-C goes to the shell and not to mesh, a window resize reaches the
// shared PTY, and after the shell exits the terminal is back in cooked
// mode with echo.
func TestShareTerminalUnderTmux(t *testing.T) {
	t.Parallel()
	tm := newTmux(t)
	w := newTermWorld(t)
	after := filepath.Join(t.TempDir(), "stty-after")
	env := strings.Join(append(w.sharer.env, "HOME="+w.sharer.home, "PS1=$ "), " ")
	script := "cd " + w.sharer.home + " && env " + env + " " + meshBin + " agent share-terminal -- sh; " +
		"echo mesh-exited-$?; stty -a > " + after + "; sleep 60"
	tm.run("new-session", "-d", "-s", "main", "-x", "100", "-y", "30", "sh", "-c", script)
	tm.waitScreen("share: ")

	tm.run("send-keys", "-t", "main", "echo typed-$((40+2))", "Enter")
	tm.waitScreen("typed-42")

	tm.run("send-keys", "-t", "main", "sleep 30", "Enter")
	tm.run("send-keys", "-t", "main", "C-c")
	tm.run("send-keys", "-t", "main", "echo alive-$((40+2))", "Enter")
	tm.waitScreen("alive-42") // the shell got the Ctrl-C; mesh is still sharing

	tm.run("resize-window", "-t", "main", "-x", "120", "-y", "40")
	tm.run("send-keys", "-t", "main", "stty size", "Enter")
	tm.waitScreen("40 120")

	tm.run("send-keys", "-t", "main", "exit 3", "Enter")
	tm.waitScreen("mesh-exited-3")
	var st []byte
	poll(10*time.Second, 20*time.Millisecond, func() bool { // the pane's shell writes it after mesh exits
		st, _ = os.ReadFile(after)
		return len(st) > 0
	})
	modes := " " + strings.Join(strings.Fields(string(st)), " ") + " "
	for _, want := range []string{" icanon ", " echo ", " isig ", " opost "} {
		if !strings.Contains(modes, want) {
			t.Errorf("after share-terminal exited, stty lacks %q (terminal not restored):\n%s", strings.TrimSpace(want), st)
		}
	}
}
