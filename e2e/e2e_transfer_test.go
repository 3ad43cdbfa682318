package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type meshWorld struct {
	srv          *meshServer
	tok          string // alice's user token
	laptop, home machine
	homeAgent    *proc
}

// newWorld starts a server, enrols two machines of alice, and runs the
// agent on "home".
func newWorld(t *testing.T) *meshWorld {
	t.Helper()
	srv := startServer(t, serverOpts{env: []string{"MESH_AUTH_BCRYPT_COST=4", "MESH_AUTH_REGISTRATION=open"}})
	t.Cleanup(func() { srv.stop(t) })
	w := &meshWorld{srv: srv, tok: apiToken(t, srv.url, "alice"), laptop: newMachine(t, "laptop"), home: newMachine(t, "home")}
	w.laptop.login(t, srv.url, "alice")
	w.home.login(t, srv.url, "alice")
	w.homeAgent = w.home.run(t, srv.url, w.tok)
	return w
}

func TestAgentSendsFilesAndTrees(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	src := t.TempDir()
	one := filepath.Join(src, "report.pdf")
	writeRandom(t, one, 5<<20+17)
	tree := filepath.Join(src, "tree")
	for i := range 1000 {
		p := filepath.Join(tree, fmt.Sprintf("d%02d", i%10), fmt.Sprintf("f%04d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat("x", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(tree, "d01", "f0001.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tree, "empty-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := w.laptop.send(t, "--to", "home", one, tree)
	if err != nil {
		t.Fatalf("send-file: %v\n%s", err, out)
	}
	if !strings.Contains(out, "blake3:"+fileHash(t, one)) || !strings.Contains(out, "directly") {
		t.Errorf("send-file output lacks the BLAKE3 or the path taken:\n%s", out)
	}
	inbox := w.home.inbox()
	if got := fileHash(t, filepath.Join(inbox, "report.pdf")); got != fileHash(t, one) {
		t.Fatalf("received report.pdf hash %s, want %s", got, fileHash(t, one))
	}
	for _, i := range []int{0, 1, 499, 999} {
		rel := filepath.Join("tree", fmt.Sprintf("d%02d", i%10), fmt.Sprintf("f%04d.txt", i))
		b, err := os.ReadFile(filepath.Join(inbox, rel))
		if err != nil || len(b) != i {
			t.Fatalf("%s: %d bytes, %v; want %d", rel, len(b), err, i)
		}
	}
	if fi, err := os.Stat(filepath.Join(inbox, "tree", "d01", "f0001.txt")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode kept? %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(inbox, "tree", "empty-dir")); err != nil || !fi.IsDir() {
		t.Errorf("empty dir: %v %v", fi, err)
	}
	// The same again: names are taken, so they land beside the first ones.
	if out, err := w.laptop.send(t, "--to", "home", one); err != nil {
		t.Fatalf("second send: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(inbox, "report (1).pdf")); err != nil {
		t.Errorf("second copy: %v", err)
	}
	// The receiving agent reported both transfers (metadata only).
	var l struct {
		Transfers []struct {
			Name, Outcome string
			Direct        bool
		}
	}
	eventually(t, 10*time.Second, func() bool {
		l.Transfers = nil
		getJSON(t, w.srv.url+"/api/transfers", w.tok, &l)
		return len(l.Transfers) >= 2 && l.Transfers[0].Outcome == "ok" && l.Transfers[0].Direct
	}, "transfers reported: %+v", &l)
	if matches, _ := filepath.Glob(filepath.Join(inbox, "*.part")); len(matches) > 0 {
		t.Errorf("stray .part files: %v", matches)
	}
}

// TestAgentResumesAfterKill kills the sender mid-way through 200 MB and
// reruns the same command: it continues from the verified chunks.
func TestAgentResumesAfterKill(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	big := filepath.Join(t.TempDir(), "big.bin")
	writeRandom(t, big, 200<<20)
	cmd := exec.Command(meshBin, "agent", "send-file", "--to", "home", big)
	cmd.Dir, cmd.Env = w.laptop.home, append(cleanEnv(), w.laptop.env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(w.home.inbox(), "big.bin.part")
	if !poll(60*time.Second, 2*time.Millisecond, func() bool {
		fi, err := os.Stat(part)
		return err == nil && fi.Size() >= 40<<20
	}) {
		_ = cmd.Process.Kill()
		t.Fatalf("no 40 MB of big.bin.part within 60 s\n%s", w.homeAgent.out.String())
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait() // killed: its error is expected
	if _, err := os.Stat(filepath.Join(w.home.inbox(), "big.bin")); err == nil {
		t.Fatal("big.bin landed although the sender was killed before the end")
	}
	out, err := w.laptop.send(t, "--to", "home", big)
	if err != nil {
		t.Fatalf("resumed send: %v\n%s", err, out)
	}
	if got, want := fileHash(t, filepath.Join(w.home.inbox(), "big.bin")), fileHash(t, big); got != want {
		t.Fatalf("resumed file hash %s, want %s", got, want)
	}
	if !strings.Contains(out, "resumed after") {
		t.Errorf("output does not say it resumed:\n%s", out)
	}
	if _, err := os.Stat(part); err == nil {
		t.Error("big.bin.part left behind")
	}
}

// TestAgentRevokedAndReplayed: a used token is refused on reuse, and a
// revoked device drops off at once.
func TestAgentRevokedAndReplayed(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	f := filepath.Join(t.TempDir(), "note.txt")
	if err := os.WriteFile(f, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A session issued to laptop, used by hand twice.
	sess := w.fileSession(t)
	args := sess.args(fmt.Sprintf("%s:%d", sess.Endpoints.Target.IP, sess.Endpoints.Target.Port), f)
	if out, err := w.laptop.send(t, args...); err != nil {
		t.Fatalf("low-level send: %v\n%s", err, out)
	}
	if out, err := w.laptop.send(t, args...); err == nil || !strings.Contains(out, "token already used") {
		t.Fatalf("replayed token: %v\n%s; want a refusal saying the token was used", err, out)
	}
	req, _ := newRequest(t, "DELETE", w.srv.url+"/api/devices/home", w.tok)
	if res, err := httpDo(req); err != nil || res != 204 {
		t.Fatalf("revoke: %d %v", res, err)
	}
	select {
	case err := <-w.homeAgent.done:
		w.homeAgent.done <- err // for the cleanup
		if err == nil || !strings.Contains(w.homeAgent.out.String(), "mesh agent login") {
			t.Fatalf("revoked agent exited with %v; log:\n%s", err, w.homeAgent.out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("revoked agent still running")
	}
	if out, err := w.laptop.send(t, "--to", "home", f); err == nil {
		t.Fatalf("send to a revoked device succeeded:\n%s", out)
	}
}

func deviceToken(t *testing.T, m machine) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.home, "config", "mesh", "agent.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "device_token" {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	t.Fatalf("no device_token in agent.toml:\n%s", b)
	return ""
}

// sessionAnswer is the part of POST /api/p2p/sessions the low-level
// send-file form needs.
type sessionAnswer struct {
	SessionID    string `json:"session_id"`
	SessionToken string `json:"session_token"`
	Endpoints    struct {
		Target struct {
			IP          string `json:"ip"`
			Port        int    `json:"port"`
			Fingerprint string `json:"fingerprint"`
		} `json:"target"`
	} `json:"endpoints"`
}

// fileSession asks the server, as the laptop's agent, for a file session to home.
func (w *meshWorld) fileSession(t *testing.T) sessionAnswer {
	t.Helper()
	var s sessionAnswer
	postJSON(t, w.srv.url+"/api/p2p/sessions", deviceToken(t, w.laptop), `{"kind":"file","target_device_id":"home"}`, &s)
	return s
}

// args is the low-level send-file command line for this session.
func (s sessionAnswer) args(peerAddr, file string) []string {
	return []string{"--session-id", s.SessionID, "--token", s.SessionToken,
		"--fingerprint", s.Endpoints.Target.Fingerprint, "--peer-addr", peerAddr, "--file", file}
}
