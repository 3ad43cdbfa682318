package peer_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"mesh/agent/peer"
	"mesh/protocol"
)

// BenchmarkTransferBareQUIC is the baseline of e2e's BenchmarkTransfer: the
// same file (1 GiB; MESH_BENCH_TRANSFER_MIB changes it) copied over one bare
// QUIC stream between two endpoints in this process, the receiver
// discarding. It reports MB/s and CPU seconds per GiB; the ratio to
// send-file is send-file-MB/s over bare-quic-MB/s. Both ends share one Go
// runtime with 2 Ps, while the two agents of the send-file run are two
// runtimes on the same 2 cores.
//
//	go test -run '^$' -bench Transfer -benchtime 1x ./agent/peer ./e2e
func BenchmarkTransferBareQUIC(b *testing.B) {
	size := int64(1024) << 20
	if v, err := strconv.Atoi(os.Getenv("MESH_BENCH_TRANSFER_MIB")); err == nil && v > 0 {
		size = int64(v) << 20
	}
	src := filepath.Join(b.TempDir(), "payload.bin")
	writePseudoRandom(b, src, size)
	for b.Loop() {
		mbps, cpu := bareQUICCopy(b, src, size)
		b.ReportMetric(mbps, "bare-quic-MB/s")
		b.ReportMetric(cpu.Seconds()/(float64(size)/(1<<30)), "bare-cpu-s/GiB")
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

// bareQUICCopy streams the file over one QUIC stream between two endpoints
// in this process, the receiver discarding; it returns MB/s and the CPU
// this process spent.
func bareQUICCopy(b *testing.B, src string, size int64) (float64, time.Duration) {
	newPeer := func(dev string) (*peer.Endpoint, peer.Identity, *peer.SessionCache) {
		id, err := peer.LoadOrCreateIdentity(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pc.Close() })
		sc := peer.NewSessionCache(nil)
		ep, err := peer.NewEndpoint(peer.Config{Identity: id, DeviceID: dev, User: "alice", Sessions: sc,
			Log: slog.New(slog.DiscardHandler)}, pc)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ep.Close() })
		return ep, id, sc
	}
	from, fromID, _ := newPeer("bench-a")
	to, toID, toSessions := newPeer("bench-b")
	ta, fa := to.Addr().(*net.UDPAddr), from.Addr().(*net.UDPAddr)
	s := protocol.P2PSession{SessionID: "bench", SessionToken: "mst_bench", ExpiresAt: time.Now().Add(time.Minute),
		Kind: protocol.SessionFile, InitiatorDeviceID: "bench-a", TargetDeviceID: "bench-b",
		Endpoints: protocol.Endpoints{
			Initiator: protocol.Endpoint{IP: fa.IP.String(), Port: fa.Port, Fingerprint: fromID.Fingerprint},
			Target:    protocol.Endpoint{IP: ta.IP.String(), Port: ta.Port, Fingerprint: toID.Fingerprint}}}
	toSessions.Add(s, "alice")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan int64, 1)
	go func() {
		_ = to.Serve(ctx, func(_ context.Context, ps *peer.Session) { // ends with ctx
			n, _ := io.CopyBuffer(struct{ io.Writer }{io.Discard}, ps.Stream, make([]byte, 1<<20))
			got <- n
		})
	}()
	ps, err := from.Dial(ctx, s)
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	cpu0, start := selfCPU(), time.Now()
	if _, err := io.CopyBuffer(struct{ io.Writer }{ps.Stream}, f, make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	ps.Stream.Close()
	if n := <-got; n != size {
		b.Fatalf("bare copy delivered %d bytes, want %d", n, size)
	}
	el, cpu := time.Since(start), selfCPU()-cpu0
	ps.Close("done")
	return float64(size) / 1e6 / el.Seconds(), cpu
}

// selfCPU returns the user+system CPU time of this process.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0 // Getrusage(RUSAGE_SELF) does not fail on Linux
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
