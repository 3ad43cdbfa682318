package e2e

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	srv := startBenchServer(b)
	tok := srv.registerAll(b, []string{"alice"})[0]
	laptop, home := benchMachine(b, "laptop"), benchMachine(b, "home")
	if maxprocs != "" {
		laptop.env = append(laptop.env, "GOMAXPROCS="+maxprocs)
		home.env = append(home.env, "GOMAXPROCS="+maxprocs)
	}
	for _, m := range []machine{laptop, home} {
		cmd := exec.Command(meshBin, "agent", "login", "--server", srv.url, "--username", "alice", "--device", m.name, "--password-stdin")
		cmd.Dir, cmd.Env, cmd.Stdin = m.home, append(cleanEnv(), m.env...), stringsReader("secret1\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("login %s: %v\n%s", m.name, err, out)
		}
	}
	run := exec.Command(meshBin, "agent", "run")
	run.Dir, run.Env = home.home, append(cleanEnv(), home.env...)
	logs := &syncBuffer{}
	run.Stdout, run.Stderr = logs, logs
	if err := run.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = run.Process.Signal(syscall.SIGTERM) // the benchmark is over
		_ = run.Wait()
	}()
	benchWaitOnline(b, srv, tok, "home")
	cpu0, err := procCPU(run.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	send := exec.Command(meshBin, "agent", "send-file", "--to", "home", src)
	send.Dir, send.Env = laptop.home, append(cleanEnv(), laptop.env...)
	start := time.Now()
	out, err := send.CombinedOutput()
	el := time.Since(start)
	if err != nil {
		b.Fatalf("send-file: %v\n%s\nreceiver:\n%s", err, out, logs.String())
	}
	cpu1, err := procCPU(run.Process.Pid)
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

func benchMachine(b *testing.B, name string) machine {
	home := b.TempDir()
	return machine{name: name, home: home, env: []string{
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"), "XDG_DATA_HOME=" + filepath.Join(home, "data"),
		"MESH_AGENT_QUIC_LISTEN=127.0.0.1:0", "MESH_LOG=warn"}}
}

func benchWaitOnline(b *testing.B, srv *benchServer, tok, device string) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := newRequestTB(b, srv.url+"/api/devices", tok)
		res, err := srv.http.Do(req)
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if containsOnline(body, device) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // polling an outside process
	}
	b.Fatalf("device %s not online", device)
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

func newRequestTB(tb testing.TB, url, tok string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err == nil {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return req, err
}

func containsOnline(body []byte, device string) bool {
	var l struct {
		Devices []struct {
			DeviceID string `json:"device_id"`
			Online   bool   `json:"online"`
		} `json:"devices"`
	}
	if json.Unmarshal(body, &l) != nil {
		return false
	}
	for _, d := range l.Devices {
		if d.DeviceID == device && d.Online {
			return true
		}
	}
	return false
}
