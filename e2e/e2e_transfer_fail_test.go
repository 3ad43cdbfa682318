package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// listed is an entry of GET /api/transfers as these tests read it.
type listed struct {
	SessionID string `json:"session_id"`
	Name      string `json:"name"`
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason"`
	Sender    *struct {
		Outcome, Reason string
	} `json:"sender"`
}

// waitListed polls GET /api/transfers (another process reports) until ok
// accepts an entry, and returns it.
func waitListed(t *testing.T, w *meshWorld, what string, ok func(listed) bool) listed {
	t.Helper()
	var l struct{ Transfers []listed }
	var found listed
	eventually(t, 15*time.Second, func() bool {
		l.Transfers = nil
		getJSON(t, w.srv.url+"/api/transfers", w.tok, &l)
		for _, tr := range l.Transfers {
			if ok(tr) {
				found = tr
				return true
			}
		}
		return false
	}, "GET /api/transfers never listed %s: %+v", what, &l.Transfers)
	return found
}

// TestFailedSendsAreListed: a send that never reached its receiver, and one
// whose receiving agent was killed mid-way, are listed with the sender's
// reason; the killed one fails within seconds and says to rerun.
func TestFailedSendsAreListed(t *testing.T) {
	t.Parallel()
	w := newWorld(t)

	// Never reached: the session is real, the address answers nothing.
	note := filepath.Join(t.TempDir(), "note.txt")
	if err := os.WriteFile(note, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	sess := w.fileSession(t)
	out, err := w.laptop.send(t, sess.args("127.0.0.1:9", note)...) // discard port: nobody answers QUIC
	if err == nil || !strings.Contains(out, "receiver unreachable") {
		t.Fatalf("send to an address nobody answers: %v\n%s; want it to say the receiver is unreachable", err, out)
	}
	got := waitListed(t, w, "the unreachable send", func(l listed) bool { return l.SessionID == sess.SessionID })
	if got.Outcome != "failed" || got.Name != "note.txt" || !strings.Contains(got.Reason, "receiver unreachable") ||
		got.Sender == nil || got.Sender.Reason != got.Reason {
		t.Errorf("the unreachable send is listed as %+v; want failed, note.txt, with the sender's reason", got)
	}

	// Killed mid-way: the receiving agent dies once data flows.
	big := filepath.Join(t.TempDir(), "big.bin")
	writeRandom(t, big, 160<<20)
	cmd := exec.Command(meshBin, "agent", "send-file", "--to", "home", big)
	cmd.Dir, cmd.Env = w.laptop.home, append(cleanEnv(), w.laptop.env...)
	var output syncBuffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	part := filepath.Join(w.home.inbox(), "big.bin.part")
	if !poll(60*time.Second, 2*time.Millisecond, func() bool {
		fi, err := os.Stat(part)
		return err == nil && fi.Size() >= 16<<20
	}) {
		_ = cmd.Process.Kill()
		t.Fatalf("no 16 MB of big.bin.part within 60 s\n%s", output.String())
	}
	if err := w.homeAgent.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	select {
	case err = <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("send-file still running 30 s after its receiver was killed\n%s", output.String())
	}
	if took := time.Since(killed); err == nil || took > 15*time.Second {
		t.Errorf("send-file exited %v %s after its receiver was killed; want a failure within 15 s", err, took.Round(time.Millisecond))
	}
	if s := output.String(); !strings.Contains(s, "stopped answering") || !strings.Contains(s, "rerun") {
		t.Errorf("send-file's output does not say the receiver stopped answering and to rerun:\n%s", s)
	}
	got = waitListed(t, w, "the send whose receiver was killed", func(l listed) bool { return l.Name == "big.bin" })
	if got.Outcome != "failed" || !strings.Contains(got.Reason, "stopped answering") || got.Sender == nil {
		t.Errorf("the send whose receiver was killed is listed as %+v; want failed with the sender's reason", got)
	}
}

// TestReceivedModesAndStaleParts: the receiving agent applies its own umask
// to what it receives (a 0777 file does not arrive 0777, a 0644 one never
// becomes executable), and removes .part files older than part_max_age
// when it starts, logging each, and nothing else.
func TestReceivedModesAndStaleParts(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{env: []string{"MESH_AUTH_BCRYPT_COST=4", "MESH_AUTH_REGISTRATION=open"}})
	t.Cleanup(func() { srv.stop(t) })
	w := &meshWorld{srv: srv, tok: apiToken(t, srv.url, "alice"), laptop: newMachine(t, "laptop"), home: newMachine(t, "home")}
	w.laptop.login(t, srv.url, "alice")
	w.home.login(t, srv.url, "alice")
	inbox := w.home.inbox()
	stale, fresh, other := filepath.Join(inbox, "old.iso.part"), filepath.Join(inbox, "new.iso.part"), filepath.Join(inbox, "old.iso")
	for _, p := range []string{stale, fresh, other} {
		if err := os.MkdirAll(inbox, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{stale, other} {
		then := time.Now().Add(-3 * time.Hour)
		if err := os.Chtimes(p, then, then); err != nil {
			t.Fatal(err)
		}
	}
	w.home.env = append(w.home.env, "MESH_AGENT_PART_MAX_AGE=2h")
	logs := runWithUmask(t, w.home, srv.url, w.tok, 0o077)
	if !poll(10*time.Second, 10*time.Millisecond, func() bool { _, err := os.Stat(stale); return err != nil }) {
		t.Fatalf("%s survived the agent's start\n%s", stale, logs.String())
	}
	for _, p := range []string{fresh, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v; want it kept", p, err)
		}
	}
	if !strings.Contains(logs.String(), "abandoned part removed") || !strings.Contains(logs.String(), "old.iso.part") {
		t.Errorf("the removal is not logged:\n%s", logs.String())
	}

	src := t.TempDir()
	for name, mode := range map[string]fs.FileMode{"run.sh": 0o777, "notes.txt": 0o644} {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := w.laptop.send(t, "--to", "home", filepath.Join(src, "run.sh"), filepath.Join(src, "notes.txt")); err != nil {
		t.Fatalf("send-file: %v\n%s", err, out)
	}
	for name, want := range map[string]fs.FileMode{"run.sh": 0o700, "notes.txt": 0o600} {
		if fi, err := os.Stat(filepath.Join(inbox, name)); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s arrived as %v (%v), want %v under the receiver's umask 077", name, fi.Mode().Perm(), err, want)
		}
	}
}

// runWithUmask starts `mesh agent run` on m under umask (through sh, since
// a child's umask can be set only from inside it) and waits until the
// server lists it online. It returns the agent's log.
func runWithUmask(t *testing.T, m machine, server, tok string, umask fs.FileMode) *syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", fmt.Sprintf(`umask %04o && exec "$0" agent run`, umask), meshBin)
	cmd.Dir, cmd.Env = m.home, append(cleanEnv(), m.env...)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }() // its exit status is of no interest: the test stops it
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // may have exited already
		<-done
		if t.Failed() {
			t.Logf("agent %s log:\n%s", m.name, logs.String())
		}
	})
	waitOnline(t, server, tok, m.name, true)
	return logs
}
