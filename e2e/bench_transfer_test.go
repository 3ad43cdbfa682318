package e2e

import (
	"cmp"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkTransfer measures issue 16's figures in one run, each group
// printing a summary line with its ratios against the goals:
//
//	loopback:   1 GiB (MESH_BENCH_TRANSFER_MIB) with a bare quic-go copy
//	            and with `mesh agent send-file`; time to first byte for
//	            1 GiB and for 1 MiB (bench_transfer_test.go)
//	wan:        the same on an emulated WAN, 50 ms RTT at 500 Mbit/s,
//	            clean and with 0.5% loss, beside croc (bench_transfer_wan_test.go)
//	smallfiles: a tree of 2,020 files against a tar pipe
//	resume:     a 1 GiB send killed at 50% and rerun
//	startup:    `mesh serve` on an existing database until /healthz answers
//	            (bench_transfer_misc_test.go)
//
// The bare copy is e2e/testdata/barequic, built here with `go build`: two
// processes like mesh's two, so each side's CPU is read the same way. It
// discards what it receives; mesh's receiver writes the file durably.
// CPU is each process's utime+stime (/proc/PID/stat, or the exit status)
// over the send. Time to first byte is from the exec of send-file to the
// receiver's .part file (or the file) holding a byte, polled every 5 ms;
// the time to send-file's "path:" line is reported beside it.
//
//	go test ./e2e -run '^$' -bench Transfer -benchtime 1x -count 1
func BenchmarkTransfer(b *testing.B) {
	size := int64(1024) << 20
	if v, err := strconv.Atoi(os.Getenv("MESH_BENCH_TRANSFER_MIB")); err == nil && v > 0 {
		size = int64(v) << 20
	}
	bare, wanem := buildTestdata(b, "barequic"), buildTestdata(b, "wanem")
	src := filepath.Join(b.TempDir(), "payload.bin")
	writePseudoRandom(b, src, size)
	want, err := hashFile(src)
	if err != nil {
		b.Fatal(err)
	}
	var mesh xferRun // the uninterrupted 1 GiB send, resume's baseline
	b.Run("loopback", func(b *testing.B) { mesh = benchLoopback(b, bare, src, want, size) })
	b.Run("wan", func(b *testing.B) { benchWAN(b, bare, wanem) })
	b.Run("smallfiles", benchSmallFiles)
	b.Run("resume", func(b *testing.B) { benchResume(b, src, want, size, mesh) })
	b.Run("startup", benchStartup)
}

// xferRun is one copy: its size, wall time (the sender's exec to its exit)
// and the CPU of its two processes.
type xferRun struct {
	size           int64
	took           time.Duration
	cpu            [2]time.Duration // sender, receiver
	toPart, toPath time.Duration    // time to first byte; 0 if not measured
}

func (r xferRun) mbps() float64 {
	if r.took == 0 {
		return 0
	}
	return float64(r.size) / 1e6 / r.took.Seconds()
}

// perGiB is process i's CPU seconds per GiB; i == 2 is both together.
func (r xferRun) perGiB(i int) float64 {
	if r.size == 0 {
		return 0
	}
	c := r.cpu[0] + r.cpu[1]
	if i < 2 {
		c = r.cpu[i]
	}
	return c.Seconds() / (float64(r.size) / (1 << 30))
}

// report reports r as b's metrics.
func (r xferRun) report(b *testing.B) {
	b.ReportMetric(r.mbps(), "MB/s")
	b.ReportMetric(r.perGiB(0), "sender-cpu-s/GiB")
	b.ReportMetric(r.perGiB(1), "receiver-cpu-s/GiB")
	b.ReportMetric(r.perGiB(2), "cpu-s/GiB")
	if r.toPart > 0 {
		b.ReportMetric(ms(r.toPart), "ttfb-part-ms")
	}
	if r.toPath > 0 {
		b.ReportMetric(ms(r.toPath), "ttfb-path-ms")
	}
	b.Logf("%d MiB in %s: %.1f MB/s; CPU-s/GiB sender %.2f, receiver %.2f; first byte %s, path line %s",
		r.size>>20, r.took.Round(time.Millisecond), r.mbps(), r.perGiB(0), r.perGiB(1),
		r.toPart.Round(time.Millisecond), r.toPath.Round(time.Millisecond))
}

// verdict says whether a goal was met.
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// writePseudoRandom writes size incompressible bytes quickly.
func writePseudoRandom(b *testing.B, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.NewChaCha8([32]byte{1, 2, 3})
	if _, err := io.CopyN(f, r, size); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// buildTestdata builds the command e2e/testdata/name into b's temp dir.
func buildTestdata(b *testing.B, name string) string {
	bin := filepath.Join(b.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/"+name).CombinedOutput(); err != nil {
		b.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return bin
}

// bareCopy copies src with barequic from a receiver listening on addr: in
// is the command prefix that runs a program on the receiver's and the
// sender's side (nil, or `ip netns exec NS`).
func bareCopy(b *testing.B, bin string, in [2][]string, addr, src string, size int64) xferRun {
	recv := commandIn(in[1], bin, "recv", addr)
	rp, err := startCmd(recv, false)
	if err != nil {
		b.Fatal(err)
	}
	defer rp.kill() // a no-op once it has exited
	rp.waitOutputCtx(b, "listening", 10*time.Second)
	send := commandIn(in[0], bin, "send", addr, src)
	start := time.Now()
	out, err := send.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("barequic send: %v\n%s", err, out)
	}
	select {
	case <-rp.exited:
	case <-time.After(30 * time.Second):
		b.Fatalf("barequic recv did not exit:\n%s", rp.out.String())
	}
	if want := fmt.Sprintf("received %d", size); !strings.Contains(rp.out.String(), want) {
		b.Fatalf("barequic recv printed %q, want %q", rp.out.String(), want)
	}
	return xferRun{size: size, took: took, cpu: [2]time.Duration{
		send.ProcessState.UserTime() + send.ProcessState.SystemTime(),
		recv.ProcessState.UserTime() + recv.ProcessState.SystemTime()}}
}

// commandIn is args run under prefix (nil, or `ip netns exec NS`).
func commandIn(prefix []string, args ...string) *exec.Cmd {
	all := append(append([]string(nil), prefix...), args...)
	return exec.Command(all[0], all[1:]...)
}

// freeUDPAddr is a loopback UDP address that was free a moment ago.
func freeUDPAddr(b *testing.B) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}

// loopPair is a server and two logged-in machines on loopback, the
// receiver's daemon running.
type loopPair struct {
	srv          *meshServer
	tok          string
	laptop, home machine
	run          *proc
}

func newLoopPair(b *testing.B) *loopPair {
	srv := startServer(b, serverOpts{env: benchEnv()})
	p := &loopPair{srv: srv, tok: srv.registerAll(b, []string{"alice"})[0],
		laptop: newMachine(b, "laptop"), home: newMachine(b, "home")}
	for _, m := range []*machine{&p.laptop, &p.home} {
		m.env = append(m.env, "MESH_LOG=warn") // the last value of a key wins
		m.login(b, srv.url, "alice")
	}
	p.run = p.home.run(b, srv.url, p.tok)
	return p
}

// send runs send-file of src, measures it, checks the received file
// against want and removes it.
func (p *loopPair) send(b *testing.B, src, want string, size int64) (xferRun, string) {
	cpu0, err := procCPU(p.run.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	send := exec.Command(meshBin, "agent", "send-file", "--to", "home", src)
	send.Dir, send.Env = p.laptop.home, append(cleanEnv(), p.laptop.env...)
	got := filepath.Join(p.home.inbox(), filepath.Base(src))
	if dir := os.Getenv("MESH_BENCH_PERF"); dir != "" && size >= 1<<30 {
		stop := perfRecord(b, filepath.Join(dir, "loopback.perf.data"))
		defer func() {
			stop()
			b.Logf("perf: %s; receiver pid %d, sender pid %d", dir, p.run.cmd.Process.Pid, send.Process.Pid)
		}()
	}
	out, took, toPart, toPath := rbWatch(b, send, got, "path: ")
	cpu1, err := procCPU(p.run.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	if !send.ProcessState.Success() {
		b.Fatalf("send-file: %v\n%s\nreceiver:\n%s", send.ProcessState, out, p.run.out.tail(4000))
	}
	rbCheckFile(b, got, want)
	return xferRun{size: size, took: took, toPart: toPart, toPath: toPath, cpu: [2]time.Duration{
		send.ProcessState.UserTime() + send.ProcessState.SystemTime(), cpu1 - cpu0}}, out
}

// benchLoopback runs the loopback group and returns mesh's 1 GiB send.
func benchLoopback(b *testing.B, bare, src, want string, size int64) xferRun {
	var bq, mesh, small xferRun
	b.Run("bare", func(b *testing.B) {
		for b.Loop() {
			bq = bareCopy(b, bare, [2][]string{}, freeUDPAddr(b), src, size)
		}
		bq.report(b)
	})
	b.Run("mesh", func(b *testing.B) {
		p := newLoopPair(b)
		for b.Loop() {
			var out string
			mesh, out = p.send(b, src, want, size)
			b.Logf("send-file output:\n%s", out)
		}
		mesh.report(b)
	})
	b.Run("ttfb-small", func(b *testing.B) {
		one := filepath.Join(b.TempDir(), "small.bin")
		writePseudoRandom(b, one, 1<<20)
		h, err := hashFile(one)
		if err != nil {
			b.Fatal(err)
		}
		p := newLoopPair(b)
		for b.Loop() { // three sends on one pair; the median by first byte
			var runs []xferRun
			for range 3 {
				r, _ := p.send(b, one, h, 1<<20)
				runs = append(runs, r)
			}
			b.Logf("1 MiB first byte: %s, %s, %s (the first send of a new pair, then two more)",
				runs[0].toPart, runs[1].toPart, runs[2].toPart)
			slices.SortFunc(runs, func(x, y xferRun) int { return cmp.Compare(x.toPart, y.toPart) })
			small = runs[1]
		}
		small.report(b)
	})
	var s strings.Builder
	fmt.Fprintf(&s, "loopback %d MiB: bare quic-go %.1f MB/s, CPU-s/GiB sender %.2f + receiver %.2f = %.2f; ",
		size>>20, bq.mbps(), bq.perGiB(0), bq.perGiB(1), bq.perGiB(2))
	fmt.Fprintf(&s, "send-file %.1f MB/s (%.2f× bare, goal ≥ 0.8: %s), CPU-s/GiB sender %.2f (%.2f× bare's, goal ≤ 1.3: %s) receiver %.2f (%.2f×, goal ≤ 1.3: %s); ",
		mesh.mbps(), ratio(mesh.mbps(), bq.mbps()), verdict(bq.took > 0 && mesh.mbps() >= 0.8*bq.mbps()),
		mesh.perGiB(0), ratio(mesh.perGiB(0), bq.perGiB(0)), verdict(bq.took > 0 && mesh.perGiB(0) <= 1.3*bq.perGiB(0)),
		mesh.perGiB(1), ratio(mesh.perGiB(1), bq.perGiB(1)), verdict(bq.took > 0 && mesh.perGiB(1) <= 1.3*bq.perGiB(1)))
	fmt.Fprintf(&s, "first byte (.part) %d MiB %s, 1 MiB %s (median of 3) (goal ≤ 100 ms: %s); path line %s, %s",
		size>>20, mesh.toPart.Round(time.Millisecond), small.toPart.Round(time.Millisecond),
		verdict(mesh.toPart > 0 && small.toPart > 0 && max(mesh.toPart, small.toPart) <= 100*time.Millisecond),
		mesh.toPath.Round(time.Millisecond), small.toPath.Round(time.Millisecond))
	fmt.Println(s.String()) // a parent benchmark's log shows only with -v
	return mesh
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// perfRecord samples every CPU with call graphs (perf record -a -g) into
// file until the returned function is called: MESH_BENCH_PERF=DIR does
// it around the loopback 1 GiB sends, to split by pid afterwards
// (perf report --sort pid,dso,sym).
func perfRecord(b *testing.B, file string) (stop func()) {
	p, err := startCmd(exec.Command("perf", "record", "-a", "-g", "-F", "999", "-o", file), false)
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // perf's start-up, so that the send's first second is in; perf gives no ready signal
	return func() {
		_ = p.cmd.Process.Signal(syscall.SIGINT) // perf writes its file on SIGINT
		<-p.exited
	}
}
