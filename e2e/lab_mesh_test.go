package e2e

import (
	"bufio"
	"bytes"
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
	"testing"
	"time"
)

// mesh in the network lab: the server in pub, agents in host namespaces,
// every process started as `ip netns exec NS mesh ...` (ip execs mesh, so
// the process handle is mesh itself).

const labServerURL = "http://" + labPubIP + ":8000"

// startServer runs `mesh serve` in pub on 203.0.113.10:8000 with TURN on
// 203.0.113.10:3478 and open registration. Its http client dials from pub.
func (l *lab) startServer() *meshServer {
	t := l.t
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.pub, meshBin, "serve", "--listen", labPubIP+":8000")
	cmd.Dir = t.TempDir()
	cmd.Env = append(cleanEnv(), // after cleanEnv: its TURN listen is overridden
		"MESH_RTC_TURN_LISTEN="+labPubIP+":3478", "MESH_RTC_TURN_PUBLIC_IP="+labPubIP,
		"MESH_AUTH_REGISTRATION=open", "MESH_AUTH_BCRYPT_COST=4", "MESH_LOG=debug")
	s := &meshServer{cmd: cmd, dir: cmd.Dir, logs: &syncBuffer{}, exited: make(chan struct{}), http: l.httpClient(l.pub)}
	cmd.Stderr = s.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.Contains(line, "open "+labServerURL) {
		_ = cmd.Process.Kill() // it failed to start as asked
		_ = cmd.Wait()
		t.Fatalf("mesh serve in %s printed %q (%v), want the URL %s\n%s", l.pub, line, err, labServerURL, s.logs.tail(4000))
	}
	s.url = labServerURL
	go func() { _, _ = io.Copy(io.Discard, stdout); s.err = cmd.Wait(); close(s.exited) }() // nothing more is printed
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("mesh serve log (tail):\n%s", s.logs.tail(6000))
		}
	})
	return s
}

// labToken registers user on s and returns the user's access token.
func labToken(t *testing.T, s *meshServer, user string) string {
	t.Helper()
	res, err := s.http.Post(s.url+"/api/auth/register", "application/json",
		strings.NewReader(`{"username":"`+user+`","password":"secret1"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var a struct {
		AccessToken string `json:"access_token"`
	}
	if b, _ := io.ReadAll(res.Body); res.StatusCode != http.StatusOK && res.StatusCode != http.StatusCreated {
		t.Fatalf("register %s = %d %s", user, res.StatusCode, b)
	} else if err := json.Unmarshal(b, &a); err != nil || a.AccessToken == "" {
		t.Fatalf("register %s: %v %s", user, err, b)
	}
	return a.AccessToken
}

// labMachine is a machine (its own HOME and XDG dirs) on a lab host.
type labMachine struct {
	machine
	host *labHost
	lab  *lab
}

// newMachine makes a machine called name on host.
func (hh *labHost) newMachine(name string) labMachine {
	l := hh.home.lab
	m := labMachine{machine: newMachine(l.t, name), host: hh, lab: l}
	// After machine's own MESH_AGENT_QUIC_LISTEN (the last value wins):
	// peers reach the agent on its LAN address, not loopback.
	m.env = append(m.env, "MESH_AGENT_QUIC_LISTEN=0.0.0.0:5000", "MESH_AGENT_INSECURE=true")
	return m
}

// command is mesh args run in the machine's namespace with its env.
func (m labMachine) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", m.host.ns, meshBin}, args...)...)
	cmd.Dir, cmd.Env = m.home, append(cleanEnv(), m.env...)
	return cmd
}

// login enrols the machine as user's device on the lab's server.
func (m labMachine) login(user string) {
	t := m.lab.t
	t.Helper()
	cmd := m.command(context.Background(), "agent", "login", "--server", labServerURL, "--insecure",
		"--username", user, "--device", m.name, "--password-stdin")
	cmd.Stdin = strings.NewReader("secret1\n")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "enrolled "+m.name) {
		t.Fatalf("agent login %s in %s: %v\n%s", m.name, m.host.ns, err, out)
	}
}

// start runs mesh args on the machine, its stdin a pipe; it is stopped
// when the test ends (before the lab's namespaces go), its output shown
// if the test failed.
func (m labMachine) start(ctx context.Context, args ...string) *proc {
	t := m.lab.t
	t.Helper()
	p, err := startCmd(m.command(ctx, args...), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s (%s) %s output:\n%s", m.name, m.host.ip, strings.Join(args[:2], " "), p.out.tail(8000))
		}
	})
	return p
}

// run starts `mesh agent run` and waits until the server lists it online.
func (m labMachine) run(s *meshServer, tok string) *proc {
	t := m.lab.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p := m.start(ctx, "agent", "run")
	if !poll(20*time.Second, 20*time.Millisecond, func() bool { return labOnline(s, tok, m.name) }) {
		t.Fatalf("agent %s not online within 20 s; its log:\n%s", m.name, p.out.String())
	}
	return p
}

// labOnline says whether GET /api/devices lists device online.
func labOnline(s *meshServer, tok, device string) bool {
	req, err := http.NewRequest(http.MethodGet, s.url+"/api/devices", nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := s.http.Do(req)
	if err != nil {
		return false
	}
	defer res.Body.Close()
	var l struct {
		Devices []struct {
			DeviceID string `json:"device_id"`
			Online   bool   `json:"online"`
		} `json:"devices"`
	}
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&l) != nil {
		return false
	}
	for _, d := range l.Devices {
		if d.DeviceID == device && d.Online {
			return true
		}
	}
	return false
}

// pathLine returns the `path: ...` line a send or a join printed, if any.
func pathLine(out string) string {
	for line := range strings.Lines(out) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "path: "); ok {
			return "path: " + rest
		}
	}
	return ""
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			b.WriteString(line)
		}
	}
	return b.String()
}

// labSend is one `mesh agent send-file` and what the test saw of it.
type labSend struct {
	out       string
	err       error
	took      time.Duration
	path      string          // the path: line, "" if none
	toPath    time.Duration   // from start to the first path: line; 0 if none
	pathAt    []time.Duration // from start to each path: line, as seen every 5 ms
	firstByte time.Duration   // from start to the receiver's first .part or file; 0 if never seen
}

// sending is a `mesh agent send-file` under way.
type sending struct {
	m      labMachine
	to     string
	p      *proc
	start  time.Time
	cancel context.CancelFunc
	part   string // the receiver's partial file
	r      labSend
	watch  sync.WaitGroup
}

// startSend starts send-file from m to the device to, whose inbox is
// inbox; it is killed if it runs longer than limit.
func (m labMachine) startSend(to, inbox, file string, limit time.Duration) *sending {
	m.lab.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	s := &sending{m: m, to: to, start: time.Now(), cancel: cancel, part: filepath.Join(inbox, filepath.Base(file)+".part")}
	s.p = m.start(ctx, "agent", "send-file", "--to", to, file)
	s.watch.Add(1)
	go func() { // the path line and the first bytes landing; no testing.TB here
		defer s.watch.Done()
		landed := filepath.Join(inbox, filepath.Base(file))
		for {
			select {
			case <-s.p.exited:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if n := strings.Count(s.p.out.String(), "path: "); n > len(s.r.pathAt) {
				for range n - len(s.r.pathAt) {
					s.r.pathAt = append(s.r.pathAt, time.Since(s.start))
				}
				s.r.toPath = s.r.pathAt[0]
			}
			for _, f := range []string{s.part, landed} {
				if fi, err := os.Stat(f); err == nil && fi.Size() > 0 && s.r.firstByte == 0 {
					s.r.firstByte = time.Since(s.start)
				}
			}
		}
	}()
	return s
}

// received polls until the receiver's partial file holds n bytes, and
// says false if the sender exited first.
func (s *sending) received(n int64) bool {
	for {
		if fi, err := os.Stat(s.part); err == nil && fi.Size() >= n {
			return true
		}
		select {
		case <-s.p.exited:
			return false
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// wait waits for the send to end and logs how it went.
func (s *sending) wait() labSend {
	t := s.m.lab.t
	t.Helper()
	defer s.cancel()
	<-s.p.exited
	s.r.err = <-s.p.done
	s.p.done <- s.r.err // for the cleanup
	s.r.took = time.Since(s.start)
	s.watch.Wait()
	s.r.out = s.p.out.String()
	s.r.path = pathLine(s.r.out)
	t.Logf("send-file %s → %s: %v in %s; %q after %s; first bytes after %s", s.m.name, s.to, s.r.err,
		s.r.took.Round(time.Millisecond), s.r.path, s.r.toPath.Round(time.Millisecond), s.r.firstByte.Round(time.Millisecond))
	if n := strings.Count(s.r.out, "path: "); n > 1 {
		t.Logf("send-file printed %d path lines, after %v:\n%s", n, s.r.pathAt, grepLines(s.r.out, "path: "))
	}
	return s.r
}

// sendFile is startSend and wait.
func (m labMachine) sendFile(to, inbox, file string, limit time.Duration) labSend {
	m.lab.t.Helper()
	return m.startSend(to, inbox, file, limit).wait()
}

// checkSent fails t unless the send succeeded and inbox holds file's bytes.
func checkSent(t *testing.T, r labSend, inbox, file string) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("send-file: %v\n%s", r.err, r.out)
	}
	got, err := hashFile(filepath.Join(inbox, filepath.Base(file)))
	if err != nil {
		t.Fatalf("received file: %v", err)
	}
	if want := fileHash(t, file); got != want {
		t.Fatalf("received %s hash %s, want %s", filepath.Base(file), got, want)
	}
}

// checkPath fails t unless the path line starts with want.
func checkPath(t *testing.T, r labSend, want string) {
	t.Helper()
	if !strings.HasPrefix(r.path, want) {
		t.Errorf("path line %q, want one starting %q; output:\n%s", r.path, want, r.out)
	}
}

// capture is tcpdump writing what crosses pub (every interface) to a file.
type capture struct {
	p    *proc
	file string
}

// startCapture starts tcpdump in pub, or returns nil (with a log line)
// where tcpdump is not installed.
func (l *lab) startCapture() *capture {
	t := l.t
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Log("tcpdump not installed: the check of the relayed payload is left out")
		return nil
	}
	c := &capture{file: filepath.Join(t.TempDir(), "pub.pcap")}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.pub, "tcpdump", "-i", "any", "-n", "-s", "0", "-U", "-w", c.file)
	p, err := startCmd(cmd, false)
	if err != nil {
		t.Fatal(err)
	}
	c.p = p
	t.Cleanup(p.stop)
	p.waitOutputCtx(t, "listening on", 10*time.Second)
	return c
}

// waitOutputCtx is waitOutput with its own limit, for any testing.TB.
func (p *proc) waitOutputCtx(tb testing.TB, s string, d time.Duration) {
	tb.Helper()
	if !poll(d, 10*time.Millisecond, func() bool { return strings.Contains(p.out.String(), s) }) {
		tb.Fatalf("output never showed %q; it is:\n%s", s, p.out.String())
	}
}

// stop ends tcpdump and returns what it captured.
func (c *capture) stop(t *testing.T) []byte {
	t.Helper()
	c.p.stop()
	b, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkNoPlaintext fails t if any of 64 32-byte pieces of file, taken
// along its length, occurs in what the capture saw. The capture must be
// at least as large as the file: the file did cross pub.
func checkNoPlaintext(t *testing.T, pcap []byte, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(pcap) < len(b) {
		t.Errorf("the capture in pub holds %d bytes, less than the %d-byte file: it missed the transfer", len(pcap), len(b))
	}
	const pieces, size = 64, 32
	for i := range pieces {
		off := (len(b) - size) / pieces * i
		if bytes.Contains(pcap, b[off:off+size]) {
			t.Fatalf("the file's bytes at offset %d crossed pub in the clear", off)
		}
	}
	t.Logf("capture: %d bytes, none of %d pieces of the file in the clear", len(pcap), pieces)
}

// logCounters logs what reached the server's address and what pub
// forwarded between homes since the lab was built, and returns the bytes.
func (l *lab) logCounters(what string) (served, forwarded int64) {
	l.t.Helper()
	_, served = l.counter("served")
	_, forwarded = l.counter("forwarded")
	l.t.Logf("%s: %s to the server's address, %s forwarded between homes", what, mib(served), mib(forwarded))
	return served, forwarded
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
