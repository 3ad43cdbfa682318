package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkRelay sends one file (1 GiB; MESH_BENCH_RELAY_MIB changes it)
// with `mesh agent send-file` between two agents, direct and relayed
// through `mesh serve`, and the same bytes with croc through its own relay,
// all in one small lab topology (root only; skipped where the lab cannot
// run):
//
//	pub: 203.0.113.10 on lo (mesh serve, or croc relay), routes between
//	host 1 (laptop, the sender):   eth0 10.78.1.10/24, pub's side 10.78.1.1
//	host 2 (home, the receiver):   eth0 10.78.2.10/24, pub's side 10.78.2.1
//
// direct: nothing is filtered; QUIC goes host to host, routed by pub.
// relayed: pub drops every UDP packet it forwards, so no direct path
// works and the agents relay through the server's WebSockets (TCP to the
// server and UDP to its STUN stay up). croc: the same topology and rule;
// croc always relays (TCP, --no-local, --no-compress).
//
// The server runs with MESH_SERVER_RELAY_USER_MBPS=0: its per-user relay
// cap (500 Mbit/s by default) would otherwise be what is measured.
//
// Each run reports MB/s (from the command's start to its exit; for croc
// from the receiver's start), CPU seconds per GiB of each process (sender,
// receiver, and the server or croc's relay), and the time to the first
// byte: to send-file's "path:" line and to the receiver's .part file. The
// parent logs how relayed compares with the goals: ≥ croc, ≥ 0.6× direct,
// first byte within 1 s direct and 2 s relayed.
//
//	go test ./e2e -run '^$' -bench '^BenchmarkRelay$' -benchtime 1x -count 1
func BenchmarkRelay(b *testing.B) {
	size := int64(1024) << 20
	if v, err := strconv.Atoi(os.Getenv("MESH_BENCH_RELAY_MIB")); err == nil && v > 0 {
		size = int64(v) << 20
	}
	l := newRBLab(b)
	src := filepath.Join(b.TempDir(), "payload.bin")
	writePseudoRandom(b, src, size)
	want, err := hashFile(src)
	if err != nil {
		b.Fatal(err)
	}
	var direct, relayed, croc rbResult
	b.Run("direct", func(b *testing.B) { direct = l.benchMesh(b, src, want, size, false) })
	b.Run("relayed", func(b *testing.B) { relayed = l.benchMesh(b, src, want, size, true) })
	b.Run("croc", func(b *testing.B) { croc = l.benchCroc(b, src, want, size) })
	// A parent benchmark's log is not shown unless it fails or -v is set.
	fmt.Println(rbCompare(direct, relayed, croc))
}

// rbResult is what the sends of one sub-benchmark took, summed.
type rbResult struct {
	sends          int
	size           int64         // bytes per send
	took           time.Duration // start to exit
	cpu            [3]time.Duration
	toPath, toPart time.Duration
}

// rbProcs names the processes of rbResult.cpu.
var rbProcs = [3]string{"sender", "receiver", "server"}

func (r *rbResult) add(o rbResult) {
	r.sends++
	r.size = o.size
	r.took += o.took
	r.toPath += o.toPath
	r.toPart += o.toPart
	for i := range r.cpu {
		r.cpu[i] += o.cpu[i]
	}
}

func (r rbResult) mbps() float64 {
	if r.took == 0 {
		return 0
	}
	return float64(r.size) * float64(r.sends) / 1e6 / r.took.Seconds()
}

func (r rbResult) mean(d time.Duration) time.Duration { return d / time.Duration(max(r.sends, 1)) }

// report reports r's figures as the sub-benchmark's metrics and logs them.
func (r rbResult) report(b *testing.B) {
	gib := float64(r.size) * float64(r.sends) / (1 << 30)
	b.ReportMetric(r.mbps(), "MB/s")
	for i, p := range rbProcs {
		b.ReportMetric(r.cpu[i].Seconds()/gib, p+"-cpu-s/GiB")
	}
	if r.toPath > 0 {
		b.ReportMetric(r.mean(r.toPath).Seconds(), "ttfb-path-s")
	}
	b.ReportMetric(r.mean(r.toPart).Seconds(), "ttfb-part-s")
	b.Logf("%.1f MB/s; CPU-s/GiB sender %.2f, receiver %.2f, %s %.2f; first byte: path line %s, file %s",
		r.mbps(), r.cpu[0].Seconds()/gib, r.cpu[1].Seconds()/gib, rbProcs[2], r.cpu[2].Seconds()/gib,
		r.mean(r.toPath).Round(time.Millisecond), r.mean(r.toPart).Round(time.Millisecond))
}

// rbCompare is the final line: relayed against the goals.
func rbCompare(direct, relayed, croc rbResult) string {
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "comparison: direct %.1f MB/s, relayed %.1f MB/s", direct.mbps(), relayed.mbps())
	if croc.sends > 0 {
		fmt.Fprintf(&b, ", croc %.1f MB/s; relayed/croc %.2f (goal ≥ 1: %s)", croc.mbps(),
			relayed.mbps()/croc.mbps(), verdict(relayed.mbps() >= croc.mbps()))
	} else {
		b.WriteString(", croc not run")
	}
	if direct.sends > 0 {
		fmt.Fprintf(&b, "; relayed/direct %.2f (goal ≥ 0.6: %s)", relayed.mbps()/direct.mbps(), verdict(relayed.mbps() >= 0.6*direct.mbps()))
	}
	dt, rt := direct.mean(direct.toPart), relayed.mean(relayed.toPart)
	fmt.Fprintf(&b, "; first byte (.part) direct %s (goal ≤ 1 s: %s), relayed %s (goal ≤ 2 s: %s)",
		dt.Round(time.Millisecond), verdict(direct.sends > 0 && dt <= time.Second),
		rt.Round(time.Millisecond), verdict(relayed.sends > 0 && rt <= 2*time.Second))
	fmt.Fprintf(&b, "; path line direct %s, relayed %s", direct.mean(direct.toPath).Round(time.Millisecond),
		relayed.mean(relayed.toPath).Round(time.Millisecond))
	return b.String()
}

// rbLab is the benchmark's namespaces: pub and the two hosts.
type rbLab struct {
	pub   string
	hosts [2]string
	ips   [2]string
}

const rbTable = "relaybench" // pub's table that drops forwarded UDP

// newRBLab builds the topology; it is deleted when b ends. It skips b
// where the lab cannot run (not root, no ip or nft).
func newRBLab(b *testing.B) *rbLab {
	labProbeOnce.Do(func() { labProbeErr = probeLab() })
	if labProbeErr != "" {
		b.Skipf("network lab: %s", labProbeErr)
	}
	prefix := fmt.Sprintf("%s%d-%d", labNSPrefix, os.Getpid(), labSeq.Add(1))
	l := &rbLab{pub: prefix + "-pub"}
	var made []string
	b.Cleanup(func() {
		for _, ns := range made {
			if err := deleteNS(ns); err != nil {
				b.Error(err)
			}
		}
	})
	addNS := func(name string) string {
		rbRun(b, "ip", "netns", "add", name)
		made = append(made, name)
		return name
	}
	addNS(l.pub)
	rbRun(b, "ip", "-n", l.pub, "link", "set", "lo", "up")
	rbRun(b, "ip", "-n", l.pub, "addr", "add", labPubIP+"/32", "dev", "lo")
	rbRun(b, "ip", "netns", "exec", l.pub, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	for i := range l.hosts {
		n := i + 1
		l.hosts[i] = addNS(fmt.Sprintf("%s-h%d", prefix, n))
		l.ips[i] = fmt.Sprintf("10.78.%d.10", n)
		v := fmt.Sprintf("b%d", n)
		rbRun(b, "ip", "-n", l.pub, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", l.hosts[i])
		rbRun(b, "ip", "-n", l.pub, "addr", "add", fmt.Sprintf("10.78.%d.1/24", n), "dev", v)
		rbRun(b, "ip", "-n", l.pub, "link", "set", v, "up")
		rbRun(b, "ip", "-n", l.hosts[i], "link", "set", "lo", "up")
		rbRun(b, "ip", "-n", l.hosts[i], "addr", "add", l.ips[i]+"/24", "dev", "eth0")
		rbRun(b, "ip", "-n", l.hosts[i], "link", "set", "eth0", "up")
		rbRun(b, "ip", "-n", l.hosts[i], "route", "add", "default", "via", fmt.Sprintf("10.78.%d.1", n))
	}
	return l
}

// rbRun runs a command in the root namespace and fails b if it fails.
func rbRun(b testing.TB, args ...string) string {
	b.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// blockUDP makes pub drop every UDP packet it forwards between the hosts
// until b ends, and logs how many it dropped.
func (l *rbLab) blockUDP(b *testing.B) {
	cmd := exec.Command("ip", "netns", "exec", l.pub, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf(`table ip %s {
	counter dropped {}
	chain %s { type filter hook forward priority filter; policy accept; meta l4proto udp counter name "dropped" drop; }
}`, rbTable, labFwdChain))
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("nft: %v\n%s", err, out)
	}
	b.Cleanup(func() {
		out := rbRun(b, "ip", "netns", "exec", l.pub, "nft", "list", "counter", "ip", rbTable, "dropped")
		if i := strings.Index(out, "packets"); i >= 0 {
			b.Logf("pub dropped forwarded UDP: %s", strings.TrimSpace(strings.SplitN(out[i:], "\n", 2)[0]))
		}
		rbRun(b, "ip", "netns", "exec", l.pub, "nft", "delete", "table", "ip", rbTable)
	})
}

// startServer runs `mesh serve` in pub on labServerURL, relay uncapped,
// until b ends.
func (l *rbLab) startServer(b *testing.B) *meshServer {
	cmd := exec.Command("ip", "netns", "exec", l.pub, meshBin, "serve", "--listen", labPubIP+":8000")
	cmd.Dir = b.TempDir()
	cmd.Env = append(cleanEnv(), append([]string{"MESH_RTC_TURN_LISTEN=" + labPubIP + ":3478", "MESH_RTC_TURN_PUBLIC_IP=" + labPubIP},
		benchEnv("MESH_SERVER_RELAY_USER_MBPS=0")...)...)
	s := &meshServer{cmd: cmd, dir: cmd.Dir, logs: &syncBuffer{}, exited: make(chan struct{}), http: &http.Client{
		Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialInNS(ctx, l.pub, network, addr)
		}}}}
	cmd.Stderr = s.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.Contains(line, "open "+labServerURL) {
		_ = cmd.Process.Kill() // it failed to start as asked
		_ = cmd.Wait()
		b.Fatalf("mesh serve printed %q (%v)\n%s", line, err, s.logs.tail(4000))
	}
	s.url = labServerURL
	go func() { _, _ = io.Copy(io.Discard, stdout); s.err = cmd.Wait(); close(s.exited) }()
	b.Cleanup(func() { s.stop(b) })
	return s
}

// rbMachine is a machine on one of the lab's hosts.
type rbMachine struct {
	machine
	ns string
}

func (l *rbLab) machine(b *testing.B, host int, name string) rbMachine {
	m := rbMachine{machine: newMachine(b, name), ns: l.hosts[host]}
	m.env = append(m.env, "MESH_AGENT_QUIC_LISTEN=0.0.0.0:5000", "MESH_AGENT_INSECURE=true", "MESH_LOG=warn")
	return m
}

func (m rbMachine) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", m.ns, meshBin}, args...)...)
	cmd.Dir, cmd.Env = m.home, append(cleanEnv(), m.env...)
	return cmd
}

func (m rbMachine) login(b *testing.B) {
	cmd := m.command(context.Background(), "agent", "login", "--server", labServerURL, "--insecure",
		"--username", "alice", "--device", m.name, "--password-stdin")
	cmd.Stdin = strings.NewReader("secret1\n")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "enrolled "+m.name) {
		b.Fatalf("agent login %s: %v\n%s", m.name, err, out)
	}
}

// benchMesh sends src from laptop (host 1) to home (host 2), b.N times,
// with UDP between the hosts dropped if relayed.
func (l *rbLab) benchMesh(b *testing.B, src, want string, size int64, relayed bool) rbResult {
	if relayed {
		l.blockUDP(b)
	}
	srv := l.startServer(b)
	tok := srv.registerAll(b, []string{"alice"})[0]
	laptop, home := l.machine(b, 0, "laptop"), l.machine(b, 1, "home")
	laptop.login(b)
	home.login(b)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	run, err := startCmd(home.command(ctx, "agent", "run"), false)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		run.stop()
		if b.Failed() {
			b.Logf("receiver log:\n%s\nserver log:\n%s", run.out.tail(6000), srv.logs.tail(6000))
		}
	})
	if !poll(20*time.Second, 20*time.Millisecond, func() bool { return labOnline(srv, tok, home.name) }) {
		b.Fatalf("agent home not online within 20 s:\n%s", run.out.String())
	}
	wantPath := "path: direct"
	if relayed {
		wantPath = "path: relayed by " + labPubIP
	}
	var r rbResult
	for b.Loop() {
		r.add(l.sendOnce(b, srv, run, laptop, home, src, want, size, wantPath))
	}
	r.report(b)
	return r
}

// sendOnce runs one send-file and measures it.
func (l *rbLab) sendOnce(b *testing.B, srv *meshServer, run *proc, laptop, home rbMachine, src, want string, size int64, wantPath string) rbResult {
	pids := [3]int{0, run.cmd.Process.Pid, srv.cmd.Process.Pid}
	cpu0 := rbCPU(b, pids)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	send := laptop.command(ctx, "agent", "send-file", "--to", home.name, src)
	got := filepath.Join(home.inbox(), filepath.Base(src))
	r := rbResult{size: size}
	out, took, firstPart, toPath := rbWatch(b, send, got, "path: ")
	r.took, r.toPart, r.toPath = took, firstPart, toPath
	cpu1 := rbCPU(b, pids)
	r.cpu = [3]time.Duration{send.ProcessState.UserTime() + send.ProcessState.SystemTime(), cpu1[1] - cpu0[1], cpu1[2] - cpu0[2]}
	if !send.ProcessState.Success() {
		b.Fatalf("send-file: %v\n%s", send.ProcessState, out)
	}
	if p := pathLine(out); !strings.HasPrefix(p, wantPath) {
		b.Fatalf("path line %q, want %q; output:\n%s", p, wantPath, out)
	}
	rbCheckFile(b, got, want)
	return r
}

// rbWatch runs cmd until it exits, watching every 5 ms for the first
// output line starting with line (if line is not "") and for file to exist
// with bytes in it (or file+".part"); it returns the output, the time to
// the exit, to the file, and to the line (0 for what never showed).
func rbWatch(b *testing.B, cmd *exec.Cmd, file, line string) (out string, took, toFile, toLine time.Duration) {
	buf := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }() // the exit is read from cmd.ProcessState
	for toFile == 0 || (line != "" && toLine == 0) {
		select {
		case <-exited:
		case <-time.After(5 * time.Millisecond):
		}
		if s := buf.String(); line != "" && toLine == 0 && (strings.HasPrefix(s, line) || strings.Contains(s, "\n"+line)) {
			toLine = time.Since(start)
		}
		for _, f := range []string{file + ".part", file} {
			if fi, err := os.Stat(f); err == nil && fi.Size() > 0 && toFile == 0 {
				toFile = time.Since(start)
			}
		}
		select {
		case <-exited:
			return buf.String(), time.Since(start), toFile, toLine // close enough: polled every 5 ms
		default:
		}
	}
	<-exited
	return buf.String(), time.Since(start), toFile, toLine
}

// rbCPU reads the CPU time of the processes in pids that are not 0.
func rbCPU(b *testing.B, pids [3]int) (cpu [3]time.Duration) {
	for i, pid := range pids {
		if pid == 0 {
			continue
		}
		c, err := procCPU(pid)
		if err != nil {
			b.Fatal(err)
		}
		cpu[i] = c
	}
	return cpu
}

// rbCheckFile fails b unless file holds the bytes hashed as want, then
// removes it for the next send.
func rbCheckFile(b *testing.B, file, want string) {
	got, err := hashFile(file)
	if err != nil {
		b.Fatalf("received file: %v", err)
	} else if got != want {
		b.Fatalf("received %s hash %s, want %s", file, got, want)
	}
	if err := os.Remove(file); err != nil {
		b.Fatal(err)
	}
}

// crocBin finds croc on PATH or in GOPATH/bin.
func crocBin() (string, error) {
	if p, err := exec.LookPath("croc"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", err
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "bin", "croc")
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// benchCroc sends src with croc from host 1 to host 2 through croc's relay
// in pub, b.N times, in the relayed topology.
func (l *rbLab) benchCroc(b *testing.B, src, want string, size int64) rbResult {
	croc, err := crocBin()
	if err != nil {
		b.Skipf("croc not installed (go install github.com/schollz/croc/v10@latest; just bench-relay does): %v", err)
	}
	l.blockUDP(b)
	return l.crocRun(b, croc, src, want, size, l.pub, labPubIP, "mesh-bench-relay-0123", 10*time.Minute)
}

// crocRun runs croc's relay in namespace relayNS on relayIP, then sends
// src with croc from host 1 to host 2 through it, b.N times, each within
// timeout; time is from the receiver's start to its exit.
func (l *rbLab) crocRun(b *testing.B, croc, src, want string, size int64, relayNS, relayIP, secret string, timeout time.Duration) rbResult {
	home := b.TempDir() // croc's HOME: its config, not ours
	env := append(os.Environ(), "HOME="+home, "CROC_SECRET="+secret)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	relay := exec.CommandContext(ctx, "ip", "netns", "exec", relayNS, croc, "relay", "--host", relayIP)
	relay.Env, relay.Dir = env, home
	rp, err := startCmd(relay, false)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rp.stop)
	for port := 9009; port <= 9013; port++ {
		addr := net.JoinHostPort(relayIP, strconv.Itoa(port))
		if !poll(10*time.Second, 20*time.Millisecond, func() bool {
			c, err := dialInNS(context.Background(), relayNS, "tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		}) {
			b.Fatalf("croc relay not listening on %s:\n%s", addr, rp.out.String())
		}
	}
	if out, _ := exec.Command(croc, "--version").Output(); len(out) > 0 {
		b.Logf("%s, relay in pub", strings.TrimSpace(string(out)))
	}
	relayAddr := relayIP + ":9009"
	var r rbResult
	for b.Loop() {
		dir := b.TempDir()
		pids := [3]int{0, 0, rp.cmd.Process.Pid}
		cpu0 := rbCPU(b, pids)
		sctx, scancel := context.WithTimeout(ctx, timeout)
		send := exec.CommandContext(sctx, "ip", "netns", "exec", l.hosts[0], croc, "--relay", relayAddr,
			"--no-compress", "--yes", "--disable-clipboard", "send", "--no-local", src)
		send.Env, send.Dir = env, filepath.Dir(src)
		sp, err := startCmd(send, false)
		if err != nil {
			b.Fatal(err)
		}
		sp.waitOutputCtx(b, "Code is", 30*time.Second)
		recv := exec.CommandContext(sctx, "ip", "netns", "exec", l.hosts[1], croc, "--relay", relayAddr,
			"--yes", "--overwrite", "--out", dir)
		recv.Env, recv.Dir = env, dir
		got := filepath.Join(dir, filepath.Base(src))
		out, took, toFile, _ := rbWatch(b, recv, got, "")
		<-sp.exited
		scancel()
		cpu1 := rbCPU(b, pids)
		if !recv.ProcessState.Success() || sp.cmd.ProcessState == nil || !sp.cmd.ProcessState.Success() {
			b.Fatalf("croc: receiver %v\n%s\nsender %v\n%s", recv.ProcessState, out, sp.cmd.ProcessState, sp.out.tail(4000))
		}
		rbCheckFile(b, got, want)
		r.add(rbResult{size: size, took: took, toPart: toFile, cpu: [3]time.Duration{
			sp.cmd.ProcessState.UserTime() + sp.cmd.ProcessState.SystemTime(),
			recv.ProcessState.UserTime() + recv.ProcessState.SystemTime(), cpu1[2] - cpu0[2]}})
	}
	r.report(b) // its "server" is croc's relay
	return r
}
