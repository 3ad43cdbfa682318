package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

// setupMachines enrols laptop and home (user "xfer") and viewer (user
// "watcher") as agents, and starts home's daemon.
func (s *soak) setupMachines(t *testing.T) {
	t.Helper()
	for _, n := range []string{"xfer", "watcher"} {
		tok, err := s.register(n)
		if err != nil {
			t.Fatal(err)
		}
		s.tokens[n] = tok
	}
	s.laptop, s.home, s.viewer = newMachine(t, "laptop"), newMachine(t, "home"), newMachine(t, "viewer-pc")
	for _, m := range []*machine{&s.laptop, &s.home, &s.viewer} {
		m.env[len(m.env)-1] = "MESH_LOG=info" // debug logs of a long run are large
	}
	s.laptop.login(t, s.url(), "xfer")
	s.home.login(t, s.url(), "xfer")
	s.viewer.login(t, s.url(), "watcher")
	p, err := s.startAgent(s.home)
	if err != nil {
		t.Fatal(err)
	}
	s.homeAgent = p
	t.Cleanup(func() { s.homeAgent.stop() })
}

// startAgent runs `mesh agent run` on m and waits until it is online.
func (s *soak) startAgent(m machine) (*proc, error) {
	p, err := startProc(context.Background(), m, false, "agent", "run")
	if err != nil {
		return nil, err
	}
	if err := pollOnline(s.url(), s.tokens["xfer"], m.name, true, 60*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("%w:\n%s", err, p.out.String())
	}
	return p, nil
}

// transfers sends soak.transfers files from laptop to home, spread over
// the run. The first one has the receiving agent SIGKILLed part-way; the
// send is rerun after the agent restarts and must resume. It returns one
// line per transfer.
func (s *soak) transfers(ctx context.Context) []string {
	n := *soakTransfers
	if n == 0 {
		return nil
	}
	src := filepath.Join(s.laptop.home, "outbox")
	if err := os.MkdirAll(src, 0o755); err != nil {
		s.fail("transfers: %v", err)
		return nil
	}
	size := int64(*soakFileMiB) << 20
	gap := *soakDuration / time.Duration(n+1)
	var lines []string
	for i := range n {
		select {
		case <-ctx.Done():
			return lines
		case <-time.After(time.Until(s.begin.Add(gap * time.Duration(i+1)))):
		}
		name := fmt.Sprintf("soak-%02d.bin", i)
		path := filepath.Join(src, name)
		want, err := writeRandomFile(path, size)
		if err != nil {
			s.fail("transfer %d: %v", i, err)
			continue
		}
		start := time.Now()
		var line string
		if i == 0 {
			line, err = s.transferWithAgentKill(path, name, size)
		} else {
			line, err = s.sendRetrying(path, 2*time.Minute)
		}
		took := time.Since(start)
		if err != nil {
			s.fail("transfer %d (%s): %v", i, name, err)
			lines = append(lines, fmt.Sprintf("%s: FAILED: %v", name, err))
			continue
		}
		got := filepath.Join(s.home.inbox(), name)
		sum, err := hashFile(got)
		switch {
		case err != nil:
			s.fail("transfer %d: %v", i, err)
		case sum != want:
			s.fail("transfer %d: received blake3 %s, sent %s", i, sum, want)
			line += " BLAKE3 MISMATCH"
		default:
			line = fmt.Sprintf("%s %d MiB in %s, blake3 matches; %s", name, size>>20, took.Round(time.Millisecond), line)
		}
		lines = append(lines, line)
		_ = os.Remove(path) // disk space: a long soak sends many files
		_ = os.Remove(got)
	}
	return lines
}

// sendRetrying runs send-file until it succeeds or d passes: a send
// started while the server restarts fails to get a session, as it should.
func (s *soak) sendRetrying(path string, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	tries := 0
	for {
		tries++
		p, err := startProc(context.Background(), s.laptop, false, "agent", "send-file", "--to", "home", path)
		if err != nil {
			return "", err
		}
		err = <-p.done
		if err == nil {
			note := "sent"
			if m := resumedRE.FindStringSubmatch(p.out.String()); m != nil {
				note = "resumed after " + m[1] + " bytes already verified"
			}
			if tries > 1 {
				note += fmt.Sprintf(" on try %d", tries)
			}
			return note, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("send-file failed %d times; last: %v\n%s", tries, err, p.out.String())
		}
		time.Sleep(time.Second) // a pause between retries, not a wait
	}
}

// transferWithAgentKill SIGKILLs home's agent once a quarter of the file
// has arrived, restarts it, and reruns the send, which must resume.
func (s *soak) transferWithAgentKill(path, name string, size int64) (string, error) {
	p, err := startProc(context.Background(), s.laptop, false, "agent", "send-file", "--to", "home", path)
	if err != nil {
		return "", err
	}
	part := filepath.Join(s.home.inbox(), name+".part")
	var at int64
	var finished bool
	if !poll(2*time.Minute, time.Millisecond, func() bool {
		select {
		case <-p.exited:
			finished = true
			return true
		default:
		}
		if fi, err := os.Stat(part); err == nil {
			at = fi.Size()
		}
		return at >= size/4
	}) {
		p.stop()
		return "", fmt.Errorf("no quarter of %s arrived within 2 minutes", name)
	}
	if finished {
		return "", fmt.Errorf("send finished (%v) before a quarter arrived; the file is too small to interrupt:\n%s", <-p.done, p.out.String())
	}
	s.homeAgent.kill()
	killedAt := at
	senderErr := <-p.done // the peer vanished: the sender must fail, saying so
	msg := lastLine(p.out.String())
	if senderErr == nil {
		return "", fmt.Errorf("send-file succeeded although the receiver was killed:\n%s", p.out.String())
	}
	agent, err := s.startAgent(s.home)
	if err != nil {
		return "", err
	}
	s.homeAgent = agent
	note, err := s.sendRetrying(path, 2*time.Minute)
	if err != nil {
		return "", err
	}
	if !strings.Contains(note, "resumed") {
		s.fail("the rerun send of %s after the agent kill did not resume: %s", name, note)
	}
	s.fault("receiving agent SIGKILLed with %d of %d MiB of %s written: the sender exited with %q; agent restarted; rerun %s",
		killedAt>>20, size>>20, name, msg, note)
	return "receiver killed mid-way, " + note, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

func writeRandomFile(path string, n int64) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	h := blake3.New()
	r := rand.NewChaCha8([32]byte{byte(n), byte(len(path))})
	if _, err := io.CopyN(io.MultiWriter(f, h), r, n); err != nil {
		f.Close()
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := blake3.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

var resumedRE = regexp.MustCompile(`resumed after (\d+) bytes already verified`)

var tickRE = regexp.MustCompile(`tick-(\d+)\b`)

// terminalShare shares a terminal on laptop running a command that prints
// one numbered line per half second until the run ends; watcher joins it
// from viewer-pc over QUIC. The server restart happens while it runs: the
// peer-to-peer session does not go through the server, so no line may be
// missing.
func (s *soak) terminalShare(ctx context.Context, t *testing.T) string {
	// The command stops by the clock, a little before the run ends; the
	// lines the sharer's own terminal showed are what the viewer must see.
	secs := max(int((*soakDuration - 10*time.Second).Seconds()), 5)
	script := fmt.Sprintf(`i=1; end=$(( $(date +%%s) + %d )); while [ $(date +%%s) -lt $end ]; do echo tick-$i; i=$((i+1)); sleep 0.5; done`, secs)
	sharer, err := startProc(context.Background(), s.laptop, false, "agent", "share-terminal", "--allow", "watcher", "--", "sh", "-c", script)
	if err != nil {
		s.fail("share-terminal: %v", err)
		return "FAILED"
	}
	defer sharer.stop()
	var id string
	poll(60*time.Second, 20*time.Millisecond, func() bool {
		for line := range strings.Lines(sharer.out.String()) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "share: "); ok && strings.Contains(sharer.out.String(), "join-terminal ") {
				id = v
			}
		}
		return id != ""
	})
	if id == "" {
		s.fail("share-terminal printed no share id:\n%s", sharer.out.String())
		return "FAILED: no share id"
	}
	viewer, err := startProc(context.Background(), s.viewer, false, "agent", "join-terminal", id)
	if err != nil {
		s.fail("join-terminal: %v", err)
		return "FAILED"
	}
	defer viewer.stop()
	var exit error
	select {
	case exit = <-viewer.done:
		viewer.done <- exit
	case <-time.After(*soakDuration + time.Minute):
		s.fail("join-terminal did not end with the share")
	case <-ctx.Done():
	}
	select { // once the share has ended, its output is complete
	case err := <-sharer.done:
		sharer.done <- err // for the deferred stop
	case <-time.After(30 * time.Second):
		s.fail("share-terminal still running 30 s after its viewer left")
		sharer.stop()
	}
	lines := 0
	for _, m := range tickRE.FindAllStringSubmatch(sharer.out.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		lines = max(lines, n)
	}
	if lines == 0 {
		s.fail("the shared command printed nothing:\n%s", sharer.out.String())
		return "FAILED: no output"
	}
	seen := map[int]bool{}
	for _, m := range tickRE.FindAllStringSubmatch(viewer.out.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		seen[n] = true
	}
	var missing []int
	for i := 1; i <= lines; i++ {
		if !seen[i] {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		s.fail("terminal viewer missed %d of %d lines (first %d); its output:\n%s", len(missing), lines, missing[0], viewer.out.String())
		return fmt.Sprintf("viewer saw %d of %d lines", lines-len(missing), lines)
	}
	return fmt.Sprintf("viewer saw all %d lines in %s, across the server restart; join-terminal exited with %v (%s)",
		lines, *soakDuration/2, exit, lastLine(viewer.out.String()))
}
