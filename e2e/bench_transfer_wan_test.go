package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchWAN is BenchmarkTransfer's emulated WAN: the two hosts of
// BenchmarkRelay's lab (host 1 sends, host 2 receives, pub routes and runs
// mesh serve) with every packet between them shaped by netem to 50 ms RTT
// at 500 Mbit/s, once clean and once with 0.5% loss each way. On each:
// the bare quic-go copy, send-file (direct), and croc with its relay on
// the receiver's host (so croc's TCP crosses the same shaped path once).
// The file is 256 MiB clean (MESH_BENCH_WAN_MIB) and 32 MiB lossy
// (MESH_BENCH_WAN_LOSS_MIB): loss-based congestion control at 0.5% loss
// and 50 ms cannot fill the link. Where the kernel has no netem, the
// path is e2e/testdata/wanem's userspace bridge instead (newEmuLab).
func benchWAN(b *testing.B, bare, wanem string) {
	if os.Geteuid() != 0 {
		fmt.Println("wan: skipped: not root")
		b.Skip("network lab: not root")
	}
	for _, tool := range []string{"ip", "tc", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Printf("wan: skipped: %s not installed\n", tool)
			b.Skipf("%s not installed", tool)
		}
	}
	why := netemReason()
	if why != "" {
		fmt.Printf("wan: no kernel netem (%s): shaping in userspace with e2e/testdata/wanem\n", why)
	}
	for _, c := range []struct {
		name string
		n    netem
		key  string
		mib  int
	}{
		{"clean", netem{delay: 25 * time.Millisecond, mbit: 500}, "MESH_BENCH_WAN_MIB", 256},
		{"loss0.5", netem{delay: 25 * time.Millisecond, mbit: 500, loss: 0.5}, "MESH_BENCH_WAN_LOSS_MIB", 32},
	} {
		b.Run(c.name, func(b *testing.B) {
			size := int64(c.mib) << 20
			if v, err := strconv.Atoi(os.Getenv(c.key)); err == nil && v > 0 {
				size = int64(v) << 20
			}
			var l *rbLab
			if why == "" {
				l = newRBLab(b)
				l.shape(b, c.n)
			} else {
				l = newEmuLab(b, wanem, c.n)
			}
			src := filepath.Join(b.TempDir(), "wan.bin")
			writePseudoRandom(b, src, size)
			want, err := hashFile(src)
			if err != nil {
				b.Fatal(err)
			}
			var bq xferRun
			var mesh, croc rbResult
			b.Run("bare", func(b *testing.B) {
				in := [2][]string{{"ip", "netns", "exec", l.hosts[0]}, {"ip", "netns", "exec", l.hosts[1]}}
				for b.Loop() {
					bq = bareCopy(b, bare, in, l.ips[1]+":7000", src, size)
				}
				bq.report(b)
			})
			var path string
			b.Run("mesh", func(b *testing.B) { mesh, path = l.wanMesh(b, src, want, size) })
			b.Run("croc", func(b *testing.B) { croc = l.wanCroc(b, src, want, size) })
			var s strings.Builder
			fmt.Fprintf(&s, "wan %s, %d MiB: bare quic-go %.1f MB/s; send-file %.1f MB/s (%.2f× bare, goal ≥ 0.9: %s)",
				c.n, size>>20, bq.mbps(), mesh.mbps(), ratio(mesh.mbps(), bq.mbps()), verdict(bq.took > 0 && mesh.mbps() >= 0.9*bq.mbps()))
			if croc.sends > 0 {
				fmt.Fprintf(&s, "; croc %.1f MB/s (send-file/croc %.2f, goal ≥ 1: %s)", croc.mbps(),
					ratio(mesh.mbps(), croc.mbps()), verdict(mesh.mbps() >= croc.mbps()))
			} else {
				s.WriteString("; croc not run")
			}
			fmt.Fprintf(&s, "; send-file first byte %s, %q", mesh.mean(mesh.toPart).Round(time.Millisecond), path)
			fmt.Println(s.String())
		})
	}
}

// wanCroc sends src with croc from host 1 to host 2 through croc's relay
// on host 2, b.N times; time is from the receiver's start to its exit.
func (l *rbLab) wanCroc(b *testing.B, src, want string, size int64) rbResult {
	croc, err := crocBin()
	if err != nil {
		b.Skipf("croc not installed (go install github.com/schollz/croc/v10@v10.7.0): %v", err)
	}
	return l.crocRun(b, croc, src, want, size, l.hosts[1], l.ips[1], "mesh-bench-wan-0123", 20*time.Minute)
}

// wanMesh is BenchmarkRelay's benchMesh (direct) without its check of the
// path line: on this path send-file sometimes settles on the server's
// relay, and that is a figure too. It returns the last path line.
func (l *rbLab) wanMesh(b *testing.B, src, want string, size int64) (rbResult, string) {
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
	b.Cleanup(run.stop)
	if !poll(20*time.Second, 20*time.Millisecond, func() bool { return labOnline(srv, tok, home.name) }) {
		b.Fatalf("agent home not online within 20 s:\n%s", run.out.String())
	}
	var r rbResult
	var path string
	for b.Loop() {
		pids := [3]int{0, run.cmd.Process.Pid, srv.cmd.Process.Pid}
		cpu0 := rbCPU(b, pids)
		sctx, scancel := context.WithTimeout(ctx, 20*time.Minute)
		send := laptop.command(sctx, "agent", "send-file", "--to", home.name, src)
		got := filepath.Join(home.inbox(), filepath.Base(src))
		out, took, toPart, toPath := rbWatch(b, send, got, "path: ")
		scancel()
		cpu1 := rbCPU(b, pids)
		if !send.ProcessState.Success() {
			b.Fatalf("send-file: %v\n%s\nreceiver:\n%s", send.ProcessState, out, run.out.tail(4000))
		}
		rbCheckFile(b, got, want)
		path = pathLine(out)
		b.Logf("%s", path)
		r.add(rbResult{size: size, took: took, toPart: toPart, toPath: toPath, cpu: [3]time.Duration{
			send.ProcessState.UserTime() + send.ProcessState.SystemTime(), cpu1[1] - cpu0[1], cpu1[2] - cpu0[2]}})
	}
	r.report(b)
	return r, path
}
