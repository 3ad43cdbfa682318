package e2e

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	idleUsers   = 50
	idleEach    = 100 // sessions per user
	idleSettle  = 2 * time.Second
	idleSamples = 8
)

// BenchmarkIdleMemory measures the server's resident memory per idle,
// authenticated WebSocket session: 5,000 sessions that each said
// system.hello and got system.welcome. Each b.Loop iteration uses a fresh
// server process.
func BenchmarkIdleMemory(b *testing.B) {
	var perConn, total, heap float64
	n := 0
	for b.Loop() {
		r := idleRound(b)
		perConn += r.perConnKiB
		total += r.totalMiB
		heap += r.heapMiB
		n++
	}
	b.ReportMetric(0, "ns/op") // the figures below are the result
	b.ReportMetric(perConn/float64(n), "KiB/conn")
	b.ReportMetric(total/float64(n), "rss-MiB")
	if heap > 0 { // the live heap at the server's latest GC, which may predate the last sessions
		b.ReportMetric(heap/float64(n), "gc-live-MiB")
	}
}

type idleResult struct{ perConnKiB, totalMiB, heapMiB float64 }

func idleRound(b *testing.B) idleResult {
	b.Helper()
	// gctrace=1 prints the live heap at each GC: a cheap look inside.
	srv := startServer(b, serverOpts{env: benchEnv("GODEBUG=gctrace=1")})
	defer srv.stop(b)
	pid := srv.cmd.Process.Pid
	names := make([]string, idleUsers)
	for i := range names {
		names[i] = fmt.Sprintf("idle%02d", i)
	}
	userToks := srv.registerAll(b, names)
	toks := make([]string, 0, idleUsers*idleEach)
	for _, t := range userToks {
		for range idleEach {
			toks = append(toks, t)
		}
	}
	before := settledRSS(b, pid)
	start := time.Now()
	conns := srv.dialMany(b, toks)
	opened := time.Since(start)
	after := settledRSS(b, pid)
	threads, _ := procStatus(pid, "Threads")         // for the log only
	anon, _ := procStatus(pid, "RssAnon")            // as above
	sockstat, _ := os.ReadFile("/proc/net/sockstat") // TCP buffers are kernel memory, not RSS
	heap, gcLine := lastGCHeap(srv.logs.String())
	per := float64(after-before) / float64(len(conns))
	b.Logf("RSS %d KiB before, %d KiB after %d sessions (opened in %s): %.2f KiB/conn (goal ≤ 10); "+
		"RssAnon %d KiB, %d threads; last GC: %s; %s",
		before, after, len(conns), opened.Round(time.Millisecond), per, anon, threads, gcLine,
		strings.ReplaceAll(strings.TrimSpace(string(sockstat)), "\n", "; "))
	benchCloseAll(conns)
	return idleResult{perConnKiB: per, totalMiB: float64(after) / 1024, heapMiB: heap}
}

// settledRSS samples VmRSS idleSamples times over idleSettle and returns
// the last sample; it logs the spread so an unsettled reading shows.
func settledRSS(b *testing.B, pid int) int64 {
	b.Helper()
	tick := time.NewTicker(idleSettle / idleSamples)
	defer tick.Stop()
	var samples []int64
	for range idleSamples {
		<-tick.C
		v, err := procStatus(pid, "VmRSS")
		if err != nil {
			b.Fatal(err)
		}
		samples = append(samples, v)
	}
	b.Logf("VmRSS samples (KiB) over %s: %v", idleSettle, samples)
	return samples[len(samples)-1]
}

// gcLineRE matches gctrace's "H0->H1->H2 MB" (heap at start, at end, live).
var gcLineRE = regexp.MustCompile(`(?m)^gc \d+ .* (\d+)->(\d+)->(\d+) MB.*$`)

// lastGCHeap returns the live heap after the server's latest GC, in MiB,
// and the gctrace line it came from (0 and "none" if no GC ran).
func lastGCHeap(logs string) (float64, string) {
	all := gcLineRE.FindAllStringSubmatch(logs, -1)
	if len(all) == 0 {
		return 0, "none"
	}
	m := all[len(all)-1]
	live, err := strconv.ParseFloat(m[3], 64)
	if err != nil {
		return 0, m[0]
	}
	return live, m[0]
}
