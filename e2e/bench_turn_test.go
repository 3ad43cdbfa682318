package e2e

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/turn/v4"
)

// BenchmarkTURNRelay relays UDP between two TURN allocations on loopback,
// through `mesh serve`'s embedded TURN server and through coturn's
// turnserver, with the same client: two pion/turn clients allocate, permit
// each other's relay address, and A's relay sends 1100-byte datagrams to
// B's for a fixed time. Each sub-benchmark reports the rate B receives,
// the server process's CPU seconds per GiB received and the datagrams
// lost; a last line compares the two (the goal: mesh at ≥ 0.8×
// coturn's rate and ≤ 1.5× its CPU per GiB).
//
// Both servers run throughout and take turns, mesh then coturn, for
// MESH_BENCH_TURN_ROUNDS rounds (default 3; the sub-benchmarks of later
// rounds are named mesh#01, coturn#01, …), so that whatever else the
// machine does falls on both alike; the comparison gives the median of
// the rounds' ratios and the ratios of the totals. One iteration of a
// sub-benchmark is one transfer of MESH_BENCH_TURN_SECONDS (default 5)
// from MESH_BENCH_TURN_SENDERS goroutines (default 1) paced at
// MESH_BENCH_TURN_MBPS Mbit/s in all (default 800; 0: as fast as they
// can), so run it with -benchtime 1x. MESH_BENCH_COTURN_THREADS is
// coturn's --relay-threads (default: coturn's own, a UDP thread per core).
// coturn is skipped if turnserver is not installed.
//
// Client, server and kernel share the machine's cores. On 2 cores 800
// Mbit/s from one goroutine delivered the most through either server
// (about 90k datagrams/s offered); unpaced, or from 2 goroutines, the
// senders took the CPU the servers needed and less than half came
// through. Loss therefore measures that contention as much as the server.
//
//	just bench-turn
//	go test ./e2e -run '^$' -bench TURNRelay -benchtime 1x -count 1
func BenchmarkTURNRelay(b *testing.B) {
	cfg := relayConfig{seconds: 5, senders: 1, mbps: 800, size: 1100}
	rounds := 3
	envInt(b, "MESH_BENCH_TURN_SECONDS", &cfg.seconds)
	envInt(b, "MESH_BENCH_TURN_SENDERS", &cfg.senders)
	envInt(b, "MESH_BENCH_TURN_MBPS", &cfg.mbps)
	envInt(b, "MESH_BENCH_TURN_ROUNDS", &rounds)
	mesh := newRelayPath(b, startMeshTURN(b))
	var coturn *relayPath
	if _, err := exec.LookPath("turnserver"); err == nil {
		coturn = newRelayPath(b, startCoturn(b))
	}
	var sums [2]relayResult
	var rate, cpu []float64 // mesh/coturn per round
	for range max(rounds, 1) {
		var got [2]relayResult
		b.Run("mesh", func(b *testing.B) { got[0] = mesh.bench(b, cfg) })
		b.Run("coturn", func(b *testing.B) {
			if coturn == nil {
				b.Skip("coturn's turnserver is not installed (apt-get install coturn; `just bench-turn` installs it)")
			}
			got[1] = coturn.bench(b, cfg)
		})
		if got[0].recvPkts > 0 && got[1].recvPkts > 0 {
			rate = append(rate, got[0].mbps()/got[1].mbps())
			cpu = append(cpu, got[0].cpuPerGiB()/got[1].cpuPerGiB())
		}
		for i := range sums {
			sums[i].add(got[i])
		}
	}
	if len(rate) == 0 {
		return
	}
	m, c := sums[0], sums[1]
	fmt.Printf("TURN relay, %d rounds: mesh %.1f MB/s %.2f cpu-s/GiB %.2f%% loss; coturn %.1f MB/s %.2f cpu-s/GiB %.2f%% loss; "+
		"mesh/coturn rate %.2f× (median of rounds %.2f×; goal ≥ 0.8), CPU per GiB %.2f× (median %.2f×; goal ≤ 1.5)\n",
		len(rate), m.mbps(), m.cpuPerGiB(), m.lossPct(), c.mbps(), c.cpuPerGiB(), c.lossPct(),
		m.mbps()/c.mbps(), median(rate), m.cpuPerGiB()/c.cpuPerGiB(), median(cpu))
}

// median is the middle value of xs (not empty), which it sorts.
func median(xs []float64) float64 {
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// relayConfig is what one measured transfer does.
type relayConfig struct {
	seconds int // sending time
	senders int // goroutines writing to the relay
	mbps    int // total pace in megabits per second; 0 is as fast as possible
	size    int // payload bytes per datagram
}

// envInt sets *v from the environment variable key when it is an integer ≥ 0.
func envInt(b *testing.B, key string, v *int) {
	s := os.Getenv(key)
	if s == "" {
		return
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want an integer ≥ 0", key, s)
	}
	*v = n
}

// relayResult adds up measured transfers.
type relayResult struct {
	sentPkts, recvPkts, recvBytes int64
	elapsed, cpu                  time.Duration
}

func (r *relayResult) add(o relayResult) {
	r.sentPkts += o.sentPkts
	r.recvPkts += o.recvPkts
	r.recvBytes += o.recvBytes
	r.elapsed += o.elapsed
	r.cpu += o.cpu
}

func (r relayResult) mbps() float64 { return float64(r.recvBytes) / 1e6 / r.elapsed.Seconds() }

func (r relayResult) cpuPerGiB() float64 {
	return r.cpu.Seconds() / (float64(r.recvBytes) / (1 << 30))
}

func (r relayResult) lossPct() float64 {
	return 100 * (1 - float64(r.recvPkts)/float64(r.sentPkts))
}

// turnTarget is a running TURN server: its process, its UDP address and
// credentials for two users.
type turnTarget struct {
	pid   int
	addr  string // HOST:PORT
	creds [2]turnCred
	logs  func() string // for failure messages
}

type turnCred struct{ user, pass string }

// relayPath is two allocations on one server, permitted and warmed up.
type relayPath struct {
	t        turnTarget
	src, dst allocation
}

// newRelayPath allocates on t twice, each for the other's relay address,
// and warms the path up. Everything is closed when b ends.
func newRelayPath(b *testing.B, t turnTarget) *relayPath {
	p := &relayPath{t: t, src: dialTURN(b, t, t.creds[0]), dst: dialTURN(b, t, t.creds[1])}
	if err := p.src.client.CreatePermission(p.dst.relay.LocalAddr()); err != nil {
		b.Fatalf("create permission: %v\n%s", err, t.logs())
	}
	if err := p.dst.client.CreatePermission(p.src.relay.LocalAddr()); err != nil {
		b.Fatalf("create permission: %v\n%s", err, t.logs())
	}
	warmUp(b, p.src, p.dst, t)
	return p
}

// bench runs b.N measured transfers and reports their sum.
func (p *relayPath) bench(b *testing.B, cfg relayConfig) relayResult {
	var sum relayResult
	for b.Loop() {
		sum.add(relayOnce(b, cfg, p.t.pid, p.src, p.dst))
	}
	if sum.recvPkts == 0 {
		b.Fatalf("nothing arrived through the relay\n%s", p.t.logs())
	}
	b.ReportMetric(sum.mbps(), "MB/s")
	b.ReportMetric(sum.cpuPerGiB(), "cpu-s/GiB")
	b.ReportMetric(sum.lossPct(), "loss%")
	load, _ := os.ReadFile("/proc/loadavg") // only informs the log line
	b.Logf("%d datagrams sent, %d received (%.0f MiB) in %.2f s; server CPU %s; load average %.14s",
		sum.sentPkts, sum.recvPkts, float64(sum.recvBytes)/(1<<20), sum.elapsed.Seconds(), sum.cpu, load)
	return sum
}

// allocation is one pion/turn client with its relayed conn.
type allocation struct {
	client *turn.Client
	relay  net.PacketConn
}

// dialTURN opens a UDP socket on 127.0.0.1, allocates a relay through t
// with cred and closes both when b ends.
func dialTURN(b *testing.B, t turnTarget, cred turnCred) allocation {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	for _, set := range []func(int) error{conn.SetReadBuffer, conn.SetWriteBuffer} {
		_ = set(8 << 20) // the kernel caps it at rmem_max/wmem_max; smaller still works
	}
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: t.addr, TURNServerAddr: t.addr, Conn: conn,
		Username: cred.user, Password: cred.pass, Realm: "mesh",
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(); conn.Close() })
	if err := c.Listen(); err != nil {
		b.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		b.Fatalf("allocate on %s as %s: %v\n%s", t.addr, cred.user, err, t.logs())
	}
	b.Cleanup(func() { relay.Close() })
	return allocation{client: c, relay: relay}
}

// warmUp sends small datagrams both ways until 20 have come through each
// way, so that both clients have bound a channel (the first writes go as
// Send indications while the ChannelBind is under way).
func warmUp(b *testing.B, x, y allocation, t turnTarget) {
	ping := []byte("warm-up")
	buf := make([]byte, 2048)
	var got [2]int
	deadline := time.Now().Add(10 * time.Second)
	for got[0] < 20 || got[1] < 20 {
		if time.Now().After(deadline) {
			b.Fatalf("warm-up: %v datagrams came through in 10 s\n%s", got, t.logs())
		}
		for i, p := range [][2]allocation{{x, y}, {y, x}} {
			if _, err := p[0].relay.WriteTo(ping, p[1].relay.LocalAddr()); err != nil {
				b.Fatalf("warm-up write: %v", err)
			}
			_ = p[1].relay.SetReadDeadline(time.Now().Add(100 * time.Millisecond)) // pion's never fails
			if _, _, err := p[1].relay.ReadFrom(buf); err == nil {
				got[i]++
			}
		}
	}
	for _, a := range []allocation{x, y} { // drop stragglers
		for {
			_ = a.relay.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, _, err := a.relay.ReadFrom(buf); err != nil {
				break
			}
		}
		_ = a.relay.SetReadDeadline(time.Time{})
	}
}

// relayOnce sends from src's relay to dst's for cfg.seconds and counts
// what arrives until nothing more has for 300 ms. The time is from the
// first write to the last datagram received; the CPU is the server
// process's over the same run.
func relayOnce(b *testing.B, cfg relayConfig, pid int, src, dst allocation) relayResult {
	type count struct {
		pkts, bytes int64
		last        time.Time
	}
	var mu sync.Mutex // guards rc
	var rc count
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 2048)
		for {
			n, _, err := dst.relay.ReadFrom(buf)
			if err != nil {
				return // the deadline set below: the run is over
			}
			now := time.Now()
			mu.Lock()
			rc.pkts, rc.bytes, rc.last = rc.pkts+1, rc.bytes+int64(n), now
			mu.Unlock()
		}
	}()
	cpu0, err := procCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	sent := sendFor(cfg, src.relay, dst.relay.LocalAddr(), start)
	for prev := int64(-1); ; { // wait for the queues to drain
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		n := rc.pkts
		mu.Unlock()
		if n == prev {
			break
		}
		prev = n
	}
	cpu1, err := procCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	_ = dst.relay.SetReadDeadline(time.Now().Add(-time.Second)) // ends the reader
	<-readDone
	_ = dst.relay.SetReadDeadline(time.Time{})
	mu.Lock()
	defer mu.Unlock()
	return relayResult{sentPkts: sent, recvPkts: rc.pkts, recvBytes: rc.bytes, elapsed: rc.last.Sub(start), cpu: cpu1 - cpu0}
}

// sendFor writes cfg.size-byte datagrams to dst from cfg.senders
// goroutines until cfg.seconds after start, paced if cfg.mbps is set, and
// returns how many writes succeeded.
func sendFor(cfg relayConfig, relay net.PacketConn, dst net.Addr, start time.Time) int64 {
	end := start.Add(time.Duration(cfg.seconds) * time.Second)
	var gap time.Duration // between one sender's datagrams
	if cfg.mbps > 0 {
		gap = time.Duration(float64(time.Second) * float64(cfg.size*8*cfg.senders) / (float64(cfg.mbps) * 1e6))
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards total
		total int64
	)
	for range max(cfg.senders, 1) {
		wg.Go(func() {
			payload := make([]byte, cfg.size)
			_, _ = rand.Read(payload) // incompressible; rand.Read does not fail
			var n int64
			for i := 0; ; i++ {
				if i%32 == 0 {
					now := time.Now()
					if !now.Before(end) {
						break
					}
					if due := start.Add(time.Duration(i) * gap); gap > 0 && due.After(now) {
						time.Sleep(due.Sub(now))
					}
				}
				if _, err := relay.WriteTo(payload, dst); err == nil {
					n++
				}
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	return total
}

// startMeshTURN starts `mesh serve` with its TURN server on 127.0.0.1
// without a bandwidth cap and asks its API for two users' credentials.
func startMeshTURN(b *testing.B) turnTarget {
	srv := startServer(b, serverOpts{env: benchEnv("MESH_RTC_TURN_USER_MBPS=0",
		"MESH_RTC_TURN_PUBLIC_IP=127.0.0.1", "MESH_RTC_TURN_RELAY_PORTS=50000-50199")})
	t := turnTarget{pid: srv.cmd.Process.Pid, logs: func() string { return srv.logs.tail(4000) }}
	b.Cleanup(func() { // before the server stops; at warn level it logs little else
		if l := srv.logs.String(); strings.Contains(l, "bandwidth cap") {
			b.Errorf("mesh serve capped the relay, so the figures are not its best:\n%s", srv.logs.tail(2000))
		}
	})
	for i, tok := range srv.registerAll(b, []string{"alice", "bob"}) {
		t.addr, t.creds[i] = meshRTCConfig(b, srv, tok)
	}
	waitSTUN(b, t.addr, t.logs)
	return t
}

// meshRTCConfig reads GET /api/rtc/config and returns the UDP TURN URL's
// HOST:PORT and its credentials.
func meshRTCConfig(b *testing.B, srv *meshServer, tok string) (string, turnCred) {
	req, err := http.NewRequest(http.MethodGet, srv.url+"/api/rtc/config", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := srv.http.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	var cfg struct {
		ICEServers []struct {
			URLs       []string `json:"urls"`
			Username   string   `json:"username"`
			Credential string   `json:"credential"`
		} `json:"ice_servers"`
	}
	if err := json.NewDecoder(res.Body).Decode(&cfg); err != nil || res.StatusCode != http.StatusOK {
		b.Fatalf("GET /api/rtc/config = %d, %v", res.StatusCode, err)
	}
	for _, s := range cfg.ICEServers {
		for _, u := range s.URLs {
			if rest, ok := strings.CutPrefix(u, "turn:"); ok && strings.HasSuffix(u, "?transport=udp") {
				hostPort, _, _ := strings.Cut(rest, "?")
				return hostPort, turnCred{user: s.Username, pass: s.Credential}
			}
		}
	}
	b.Fatalf("GET /api/rtc/config: no turn:…?transport=udp URL in %+v", cfg)
	return "", turnCred{}
}

// startCoturn starts coturn's turnserver on a free 127.0.0.1 port with
// the TURN REST API secret mechanism mesh uses, and makes credentials for
// two users with it.
func startCoturn(b *testing.B) turnTarget {
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		b.Fatal(err)
	}
	dir, port := b.TempDir(), freePort(b)
	const secret = "bench-secret"
	args := []string{"-n", "--listening-ip=127.0.0.1", "--listening-port=" + port,
		"--relay-ip=127.0.0.1", "--min-port=50200", "--max-port=50399",
		"--use-auth-secret", "--static-auth-secret=" + secret, "--realm=mesh",
		"--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli",
		"--userdb=" + filepath.Join(dir, "turndb"), "--pidfile=" + filepath.Join(dir, "turnserver.pid"),
		"--log-file=" + filepath.Join(dir, "turnserver.log"), "--simple-log", "--no-stdout-log"}
	if n := os.Getenv("MESH_BENCH_COTURN_THREADS"); n != "" {
		args = append(args, "--relay-threads="+n)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // it may have died; Wait says
		_ = cmd.Wait()
	})
	logs := func() string {
		l, _ := os.ReadFile(filepath.Join(dir, "turnserver.log")) // may not exist yet
		return out.String() + string(l)
	}
	t := turnTarget{pid: cmd.Process.Pid, addr: "127.0.0.1:" + port, logs: logs}
	for i, user := range []string{"alice", "bob"} {
		t.creds[i] = restCred(secret, user, time.Hour)
	}
	waitSTUN(b, t.addr, logs)
	b.Logf("coturn %s", strings.Join(args, " "))
	return t
}

// freePort returns a port that is free on 127.0.0.1 for both UDP and TCP
// right now.
func freePort(b *testing.B) string {
	for range 20 {
		u, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(u.LocalAddr().String())
		l, err := net.Listen("tcp4", "127.0.0.1:"+port)
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	b.Fatal("no port free for both UDP and TCP in 20 tries")
	return ""
}

// restCred is the TURN REST API credential (coturn's use-auth-secret):
// user "EXPIRY:name", password base64(HMAC-SHA1(secret, user)).
func restCred(secret, name string, ttl time.Duration) turnCred {
	user := strconv.FormatInt(time.Now().Add(ttl).Unix(), 10) + ":" + name
	h := hmac.New(sha1.New, []byte(secret))
	h.Write([]byte(user))
	return turnCred{user: user, pass: base64.StdEncoding.EncodeToString(h.Sum(nil))}
}

// waitSTUN sends STUN Binding requests to addr until one is answered,
// for up to 10 s.
func waitSTUN(b *testing.B, addr string, logs func() string) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	to, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		b.Fatal(err)
	}
	req := make([]byte, 20) // type Binding request, length 0, magic cookie, transaction id
	binary.BigEndian.PutUint16(req[0:], 0x0001)
	binary.BigEndian.PutUint32(req[4:], 0x2112A442)
	_, _ = rand.Read(req[8:]) // rand.Read does not fail
	ok := poll(10*time.Second, 0, func() bool {
		if _, err := conn.WriteTo(req, to); err != nil {
			return false
		}
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond)) // a UDP socket's never fails
		buf := make([]byte, 1500)
		n, _, err := conn.ReadFrom(buf)
		return err == nil && n >= 20 && binary.BigEndian.Uint16(buf) == 0x0101 && string(buf[8:20]) == string(req[8:])
	})
	if !ok {
		b.Fatalf("no STUN answer from %s in 10 s\n%s", addr, logs())
	}
}
