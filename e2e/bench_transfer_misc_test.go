package e2e

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchSmallFiles sends a tree of 2,020 files of 0–16 KiB (20 dirs of
// 101) with send-file and copies it with `tar c | tar x` on the same
// machine, in the same run; goal: send-file ≤ 3× the tar pipe.
func benchSmallFiles(b *testing.B) {
	tree := filepath.Join(b.TempDir(), "tree")
	files, bytes := writeTree(b, tree, 2020)
	var mesh xferRun
	var tar time.Duration
	b.Run("mesh", func(b *testing.B) {
		p := newLoopPair(b)
		for b.Loop() {
			cpu0, err := procCPU(p.run.cmd.Process.Pid)
			if err != nil {
				b.Fatal(err)
			}
			send := exec.Command(meshBin, "agent", "send-file", "--to", "home", tree)
			send.Dir, send.Env = p.laptop.home, append(cleanEnv(), p.laptop.env...)
			got := filepath.Join(p.home.inbox(), "tree")
			start := time.Now()
			out, err := send.CombinedOutput()
			mesh.took = time.Since(start)
			if err != nil {
				b.Fatalf("send-file: %v\n%s", err, out)
			}
			cpu1, _ := procCPU(p.run.cmd.Process.Pid) // the daemon runs on
			mesh.size, mesh.cpu = bytes, [2]time.Duration{send.ProcessState.UserTime() + send.ProcessState.SystemTime(), cpu1 - cpu0}
			checkTree(b, got, files, bytes)
		}
		b.ReportMetric(mesh.took.Seconds(), "s")
		b.ReportMetric(mesh.cpu[0].Seconds(), "sender-cpu-s")
		b.ReportMetric(mesh.cpu[1].Seconds(), "receiver-cpu-s")
	})
	b.Run("tar", func(b *testing.B) {
		for b.Loop() {
			dst := b.TempDir()
			cmd := exec.Command("sh", "-c", `tar -C "$1" -cf - tree | tar -C "$2" -xf -`, "sh", filepath.Dir(tree), dst)
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("tar pipe: %v\n%s", err, out)
			}
			tar = time.Since(start)
			checkTree(b, filepath.Join(dst, "tree"), files, bytes)
		}
		b.ReportMetric(tar.Seconds(), "s")
	})
	fmt.Printf("smallfiles %d files, %.1f MiB: send-file %s (CPU sender %.2f s, receiver %.2f s), tar pipe %s; %.1f× tar (goal ≤ 3: %s)\n",
		files, float64(bytes)/(1<<20), mesh.took.Round(time.Millisecond), mesh.cpu[0].Seconds(), mesh.cpu[1].Seconds(),
		tar.Round(time.Millisecond), ratio(mesh.took.Seconds(), tar.Seconds()), verdict(mesh.took > 0 && mesh.took <= 3*tar))
}

// writeTree writes n pseudo-random files of 0–16 KiB under dir, 101 to a
// subdirectory, and returns how many files and bytes.
func writeTree(b *testing.B, dir string, n int) (files int, bytes int64) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 16<<10)
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i/101), fmt.Sprintf("f%04d.bin", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		size := r.IntN(len(buf) + 1)
		for j := range buf[:size] {
			buf[j] = byte(r.Uint32())
		}
		if err := os.WriteFile(p, buf[:size], 0o644); err != nil {
			b.Fatal(err)
		}
		files, bytes = files+1, bytes+int64(size)
	}
	return files, bytes
}

// checkTree fails b unless dir holds files regular files of bytes in all,
// then removes it.
func checkTree(b *testing.B, dir string, files int, bytes int64) {
	var n int
	var sum int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		n, sum = n+1, sum+fi.Size()
		return err
	})
	if err != nil || n != files || sum != bytes {
		b.Fatalf("received tree %s: %d files, %d bytes (%v); want %d, %d", dir, n, sum, err, files, bytes)
	}
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
}

// benchResume sends src (1 GiB) on loopback, kills the receiving daemon
// once its .part holds half, interrupts the sender (as a user's ^C),
// restarts the daemon and reruns send-file. Cost: the first send's time
// until the kill plus the rerun's exec to exit, against one uninterrupted
// send (clean: the loopback group's, else one made here); goal ≤ 1.2×.
func benchResume(b *testing.B, src, want string, size int64, clean xferRun) {
	var first, rerun xferRun
	b.Run("mesh", func(b *testing.B) {
		p := newLoopPair(b)
		if clean.took == 0 {
			clean, _ = p.send(b, src, want, size)
		}
		for b.Loop() {
			first, rerun = resumeOnce(b, p, src, want, size)
		}
		b.ReportMetric(first.took.Seconds(), "first-s")
		b.ReportMetric(rerun.took.Seconds(), "rerun-s")
		b.ReportMetric((first.took + rerun.took).Seconds(), "total-s")
		b.ReportMetric((first.cpu[0] + first.cpu[1] + rerun.cpu[0] + rerun.cpu[1]).Seconds(), "total-cpu-s")
	})
	total := first.took + rerun.took
	fmt.Printf("resume %d MiB killed at 50%%: first send %s until the kill, rerun %s, total %s, CPU-s sender %.2f receiver %.2f; uninterrupted %s, CPU-s %.2f + %.2f; %.2f× (goal ≤ 1.2: %s)\n",
		size>>20, first.took.Round(time.Millisecond), rerun.took.Round(time.Millisecond),
		total.Round(time.Millisecond), (first.cpu[0] + rerun.cpu[0]).Seconds(), (first.cpu[1] + rerun.cpu[1]).Seconds(),
		clean.took.Round(time.Millisecond), clean.cpu[0].Seconds(), clean.cpu[1].Seconds(),
		ratio(total.Seconds(), clean.took.Seconds()), verdict(clean.took > 0 && total.Seconds() <= 1.2*clean.took.Seconds()))
}

// resumeOnce is one interrupted send and its rerun; it leaves p with a
// fresh daemon.
func resumeOnce(b *testing.B, p *loopPair, src, want string, size int64) (first, rerun xferRun) {
	part := filepath.Join(p.home.inbox(), filepath.Base(src)+".part")
	cpu0, err := procCPU(p.run.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	send := exec.CommandContext(ctx, meshBin, "agent", "send-file", "--to", "home", src)
	send.Dir, send.Env = p.laptop.home, append(cleanEnv(), p.laptop.env...)
	start := time.Now()
	sp, err := startCmd(send, false)
	if err != nil {
		b.Fatal(err)
	}
	defer sp.kill()
	if !poll(5*time.Minute, 2*time.Millisecond, func() bool {
		fi, err := os.Stat(part)
		return err == nil && fi.Size() >= size/2
	}) {
		b.Fatalf("the .part never held half:\n%s", sp.out.String())
	}
	cpu1, err := procCPU(p.run.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	p.run.kill()
	first.took = time.Since(start)
	fi, _ := os.Stat(part)
	_ = sp.cmd.Process.Signal(syscall.SIGINT) // a user's ^C; it may be failing already
	select {
	case <-sp.exited:
	case <-time.After(20 * time.Second):
		sp.kill()
	}
	first.size, first.cpu = size, [2]time.Duration{sp.cmd.ProcessState.UserTime() + sp.cmd.ProcessState.SystemTime(), cpu1 - cpu0}
	b.Logf("killed the receiver after %s with %d MiB in the .part; the sender said:\n%s", first.took.Round(time.Millisecond),
		fi.Size()>>20, sp.out.tail(2000))
	p.run = p.home.run(b, p.srv.url, p.tok)
	rerun, out := p.send(b, src, want, size)
	b.Logf("rerun: %s\n%s", rerun.took.Round(time.Millisecond), out)
	return first, rerun
}

// benchStartup starts `mesh serve` 5 times on a database that already
// holds a user, timing each from just before the exec until GET /healthz
// answers 200 (polled every millisecond once the URL line is out); goal:
// median ≤ 50 ms. bcrypt runs at its default cost, as in production.
func benchStartup(b *testing.B) {
	dir := b.TempDir()
	env := []string{"MESH_AUTH_REGISTRATION=open", "MESH_LOG=warn"}
	s := startServer(b, serverOpts{dir: dir, env: env})
	s.registerAll(b, []string{"alice"})
	s.stop(b)
	var took []time.Duration
	b.Run("serve", func(b *testing.B) {
		for b.Loop() {
			took = took[:0]
			for range 5 {
				took = append(took, startOnce(b, dir, env))
			}
		}
		slices.Sort(took)
		b.ReportMetric(ms(took[len(took)/2]), "median-ms")
		b.ReportMetric(ms(took[0]), "min-ms")
		b.ReportMetric(ms(took[len(took)-1]), "max-ms")
	})
	if len(took) == 0 {
		return
	}
	med := took[len(took)/2]
	var all []string
	for _, d := range took {
		all = append(all, d.Round(100*time.Microsecond).String())
	}
	fmt.Printf("startup: mesh serve healthy %s after exec, median of %d (%s) (goal ≤ 50 ms: %s)\n",
		med.Round(100*time.Microsecond), len(took), strings.Join(all, " "), verdict(med <= 50*time.Millisecond))
}

// startOnce starts the server in dir, times it to a 200 from /healthz,
// and stops it.
func startOnce(b *testing.B, dir string, env []string) time.Duration {
	start := time.Now()
	s, err := launchServer(serverOpts{dir: dir, env: env})
	if err != nil {
		b.Fatal(err)
	}
	defer s.stop(b)
	c := &http.Client{Timeout: time.Second}
	ok := poll(10*time.Second, time.Millisecond, func() bool {
		res, err := c.Get(s.url + "/healthz")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, res.Body) // for the status only
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	took := time.Since(start)
	if !ok {
		b.Fatalf("/healthz never answered 200:\n%s", s.logs.tail(2000))
	}
	return took
}
