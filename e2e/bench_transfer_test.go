package e2e

import (
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkTransfer sends one file (1 GiB; MESH_BENCH_TRANSFER_MIB changes
// it) with the real `mesh agent send-file` to a real `mesh agent run` over
// loopback and reports its speed and CPU seconds per GiB. Its baseline, the
// same bytes over one bare QUIC stream between two endpoints, is agent's
// BenchmarkTransferBareQUIC; the same -bench pattern runs both.
//
// The two agents are two runtimes with 2 Ps each on the same 2 cores, whose
// schedulers spin against each other. The send is therefore measured twice:
// as a user runs it, and with GOMAXPROCS=1 in each agent (2 Ps in all, like
// the baseline), which is what two agents on two machines come closer to.
//
//	go test -run '^$' -bench Transfer -benchtime 1x ./agent/peer ./e2e
func BenchmarkTransfer(b *testing.B) {
	size := int64(1024) << 20
	if v, err := strconv.Atoi(os.Getenv("MESH_BENCH_TRANSFER_MIB")); err == nil && v > 0 {
		size = int64(v) << 20
	}
	src := filepath.Join(b.TempDir(), "payload.bin")
	writePseudoRandom(b, src, size)
	for b.Loop() {
		meshMBps, meshCPU := meshSendFile(b, src, size, "")
		oneMBps, oneCPU := meshSendFile(b, src, size, "1")
		gib := float64(size) / (1 << 30)
		b.ReportMetric(meshMBps, "send-file-MB/s")
		b.ReportMetric(oneMBps, "send-file-1P-MB/s")
		b.ReportMetric(meshCPU.Seconds()/gib, "send-file-cpu-s/GiB")
		b.ReportMetric(oneCPU.Seconds()/gib, "send-file-1P-cpu-s/GiB")
	}
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

// meshSendFile times `mesh agent send-file` of src to a running agent, from
// the command's start to its exit, and adds both processes' CPU time.
// maxprocs, unless empty, is both agents' GOMAXPROCS.
func meshSendFile(b *testing.B, src string, size int64, maxprocs string) (float64, time.Duration) {
	srv := startServer(b, serverOpts{env: benchEnv()})
	tok := srv.registerAll(b, []string{"alice"})[0]
	laptop, home := newMachine(b, "laptop"), newMachine(b, "home")
	for _, m := range []*machine{&laptop, &home} {
		m.env = append(m.env, "MESH_LOG=warn") // the last value of a key wins
		if maxprocs != "" {
			m.env = append(m.env, "GOMAXPROCS="+maxprocs)
		}
		m.login(b, srv.url, "alice")
	}
	run := home.run(b, srv.url, tok)
	defer run.stop() // before the next send is measured
	cpu0, err := procCPU(run.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	send := exec.Command(meshBin, "agent", "send-file", "--to", "home", src)
	send.Dir, send.Env = laptop.home, append(cleanEnv(), laptop.env...)
	start := time.Now()
	out, err := send.CombinedOutput()
	el := time.Since(start)
	if err != nil {
		b.Fatalf("send-file: %v\n%s\nreceiver:\n%s", err, out, run.out.String())
	}
	cpu1, err := procCPU(run.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(home.inbox(), filepath.Base(src))); err != nil || fi.Size() != size {
		b.Fatalf("received file: %v %v", fi, err)
	}
	used := send.ProcessState.UserTime() + send.ProcessState.SystemTime() + (cpu1 - cpu0)
	b.Logf("send-file (GOMAXPROCS=%q): %.1f s wall, sender CPU %s, receiver CPU %s\n%s", maxprocs, el.Seconds(),
		send.ProcessState.UserTime()+send.ProcessState.SystemTime(), cpu1-cpu0, out)
	return float64(size) / 1e6 / el.Seconds(), used
}
