package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func (p *proc) typeIn(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, s); err != nil {
		t.Fatalf("type %q: %v", s, err)
	}
}

// waitOutput polls the process's output until it contains s.
func (p *proc) waitOutput(t *testing.T, s string) {
	t.Helper()
	if !poll(20*time.Second, 10*time.Millisecond, func() bool { return strings.Contains(p.out.String(), s) }) {
		t.Fatalf("output never showed %q; it is:\n%s", s, p.out.String())
	}
}

// exit waits for the process and returns its exit code.
func (p *proc) exit(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(20 * time.Second):
		t.Fatalf("process did not exit; output:\n%s", p.out.String())
		return -1
	}
}

// shareID reads the id from share-terminal's "share: ID" line.
func (p *proc) shareID(t *testing.T) string {
	t.Helper()
	p.waitOutput(t, "join-terminal ")
	for line := range strings.Lines(p.out.String()) {
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), "share: "); ok {
			return id
		}
	}
	t.Fatalf("no share line in:\n%s", p.out.String())
	return ""
}

type termWorld struct {
	srv                 *meshServer
	sharer, bob, carol  machine
	aliceTok, carolTok  string
	sharerOther, record string
}

// newTermWorld: alice shares from "laptop"; bob is allowed, carol is not.
func newTermWorld(t *testing.T) *termWorld {
	t.Helper()
	srv := startServer(t, serverOpts{env: []string{"MESH_AUTH_BCRYPT_COST=4", "MESH_AUTH_REGISTRATION=open"}})
	w := &termWorld{srv: srv, aliceTok: apiToken(t, srv.url, "alice"), sharer: newMachine(t, "laptop"),
		bob: newMachine(t, "bobs-pc"), carol: newMachine(t, "carols-pc")}
	apiToken(t, srv.url, "bob")
	w.carolTok = apiToken(t, srv.url, "carol")
	w.sharer.login(t, srv.url, "alice")
	w.bob.login(t, srv.url, "bob")
	w.carol.login(t, srv.url, "carol")
	return w
}

func TestTerminalShareAndJoin(t *testing.T) {
	t.Parallel()
	w := newTermWorld(t)
	rec := filepath.Join(t.TempDir(), "session.cast")
	sh := w.sharer.start(t, "agent", "share-terminal", "--allow", "bob", "--record", rec, "--", "sh")
	id := sh.shareID(t)

	bob := w.bob.start(t, "agent", "join-terminal", id)
	bob.waitOutput(t, "read-only")
	sh.waitOutput(t, "watching: bob (shell)")
	sh.typeIn(t, "printf 'hello %s\\n' world\n")
	bob.waitOutput(t, "hello world")

	// A read-only viewer's keystrokes never reach the shell. (Bob's bytes
	// go out before the sharer types the marker command, whose output then
	// makes a round trip through the shell: far longer than bob's path.)
	// $((…)) keeps the marker out of the echoed command line.
	marker := filepath.Join(t.TempDir(), "typed-by-bob")
	bob.typeIn(t, "touch "+marker+"\r")
	sh.typeIn(t, "echo after-$((40+2))\n")
	bob.waitOutput(t, "after-42")
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a read-only viewer's keystrokes ran: %s exists (%v)", marker, err)
	}

	// Carol is not allowed; the server refuses her.
	carol := w.carol.start(t, "agent", "join-terminal", id)
	if code := carol.exit(t); code == 0 || !strings.Contains(carol.out.String(), "--allow") {
		t.Fatalf("carol's join = exit %d, output %q; want a refusal naming --allow", code, carol.out.String())
	}

	// A late joiner sees recent output at once; a detached viewer leaves the share running.
	late := w.bob.start(t, "agent", "join-terminal", id)
	late.waitOutput(t, "hello world")
	late.typeIn(t, "\x1d")
	if code := late.exit(t); code != 0 || !strings.Contains(late.out.String(), "detached") {
		t.Fatalf("detach = exit %d, output %q", code, late.out.String())
	}

	// The command's exit ends the share for everyone, with its code.
	sh.typeIn(t, "exit 7\n")
	if code := sh.exit(t); code != 7 {
		t.Fatalf("share-terminal exit code %d, want 7", code)
	}
	if code := bob.exit(t); code != 0 || !strings.Contains(bob.out.String(), "exit code 7") {
		t.Fatalf("joiner after the share ended = exit %d, output %q", code, bob.out.String())
	}
	checkCast(t, rec, "hello world")
}

func TestTerminalAllowInput(t *testing.T) {
	t.Parallel()
	w := newTermWorld(t)
	sh := w.sharer.start(t, "agent", "share-terminal", "--allow-input", "--allow", "bob", "--", "sh")
	id := sh.shareID(t)
	bob := w.bob.start(t, "agent", "join-terminal", id)
	bob.waitOutput(t, "you may type")
	marker := filepath.Join(t.TempDir(), "typed-by-bob")
	bob.typeIn(t, "touch "+marker+" && echo done-$((40+2))\r")
	bob.waitOutput(t, "done-42")
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("keystrokes with --allow-input did not run: %v", err)
	}
	sh.typeIn(t, "exit\n")
	if code := sh.exit(t); code != 0 {
		t.Fatalf("share-terminal exit code %d, want 0", code)
	}
}

// checkCast parses an asciicast v2 file: a header object, then [time, code, data] events.
func checkCast(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	if !sc.Scan() {
		t.Fatal("empty recording")
	}
	var hdr struct {
		Version       int `json:"version"`
		Width, Height int
	}
	if err := json.Unmarshal(sc.Bytes(), &hdr); err != nil || hdr.Version != 2 || hdr.Width < 1 || hdr.Height < 1 {
		t.Fatalf("header %q: %v, %+v", sc.Text(), err, hdr)
	}
	var text strings.Builder
	last := -1.0
	for sc.Scan() {
		var ev []any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || len(ev) != 3 {
			t.Fatalf("event %q: %v", sc.Text(), err)
		}
		ts, ok1 := ev[0].(float64)
		code, ok2 := ev[1].(string)
		data, ok3 := ev[2].(string)
		if !ok1 || !ok2 || !ok3 || ts < last || (code != "o" && code != "r") {
			t.Fatalf("event %q: want [increasing seconds, \"o\" or \"r\", text]", sc.Text())
		}
		last = ts
		if code == "o" {
			text.WriteString(data)
		}
	}
	if !strings.Contains(text.String(), want) {
		t.Fatalf("recorded output lacks %q:\n%s", want, text.String())
	}
}
