package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Black-box tests in the network lab (lab_net_test.go): files and
// terminals between agents on one LAN, behind two kinds of NAT, and where
// only the server's HTTP port gets through. Before data flows, send-file
// and join-terminal print one line on stderr: `path: direct (same
// network)`, `path: direct (through NAT)` or `path: relayed by HOST`.

// labPair is a server and two machines of alice with their agents
// running: a ("laptop") in home 1, b ("desktop") in home 2, or in home 1
// too when homeB is nil.
type labPair struct {
	lab          *lab
	srv          *meshServer
	tok          string // alice's
	homeA, homeB *labHome
	a, b         labMachine
}

func newLabPair(t *testing.T, homeA homeOpts, homeB *homeOpts) *labPair {
	t.Helper()
	l := newLab(t)
	p := &labPair{lab: l, srv: l.startServer()}
	p.tok = labToken(t, p.srv, "alice")
	p.homeA = l.addHome(homeA)
	if p.homeB = p.homeA; homeB != nil {
		p.homeB = l.addHome(*homeB)
	}
	p.a = p.homeA.addHost().newMachine("laptop")
	p.b = p.homeB.addHost().newMachine("desktop")
	p.a.login("alice")
	p.b.login("alice")
	p.a.run(p.srv, p.tok)
	p.b.run(p.srv, p.tok)
	return p
}

// send moves a fresh file of n random bytes from one machine to the
// other and checks that its bytes arrived.
func (p *labPair) send(t *testing.T, from, to labMachine, n int64) labSend {
	t.Helper()
	f := filepath.Join(t.TempDir(), "random-"+from.name+".bin")
	writeRandom(t, f, n)
	r := from.sendFile(to.name, to.inbox(), f, 3*time.Minute)
	checkSent(t, r, to.inbox(), f)
	return r
}

// Case 1: two machines on one LAN talk directly. The server sees both
// behind the home's one public address, and the router does not hairpin
// (Linux masquerade does not; many home routers do not either): the
// agents must find each other by their LAN addresses.
func TestLabSameLAN(t *testing.T) {
	t.Parallel()
	p := newLabPair(t, homeOpts{nat: natCone}, nil)
	r := p.send(t, p.a, p.b, 8<<20)
	if r.path == "" && strings.Contains(r.out, "directly") {
		// Until send-file prints its path line, its summary says "directly".
		t.Logf("send-file printed no path line; its summary says it went directly")
	} else {
		checkPath(t, r, "path: direct (same network)")
	}
	if served, fwd := p.lab.logCounters("same LAN"); served+fwd > 1<<20 {
		t.Errorf("%s crossed pub: the file left the LAN", mib(served+fwd))
	}
}

// The lab itself, with what mesh could do before it learnt NAT traversal:
// home 2 forwards UDP 5000 to the receiver, so the sender behind home 1's
// NAT dials the receiver's public address and the file arrives.
func TestLabPortForward(t *testing.T) {
	t.Parallel()
	p := newLabPair(t, homeOpts{nat: natCone}, &homeOpts{nat: natCone, forwardUDP: 5000})
	c := p.lab.startCapture()
	f := filepath.Join(t.TempDir(), "random.bin")
	writeRandom(t, f, 8<<20)
	r := p.a.sendFile(p.b.name, p.b.inbox(), f, 3*time.Minute)
	var pcap []byte
	if c != nil {
		pcap = c.stop(t)
	}
	checkSent(t, r, p.b.inbox(), f)
	t.Logf("port forward took %q", r.path)
	if _, fwd := p.lab.logCounters("port forward"); fwd < 8<<20 {
		t.Errorf("pub forwarded %s between the homes, less than the file: it did not go directly", mib(fwd))
	}
	if c != nil {
		checkNoPlaintext(t, pcap, f) // QUIC: what crosses the internet is ciphertext
	}
}

// Case 2: both behind endpoint-independent NATs (port-restricted cones):
// hole punching gives a direct path.
func TestLabBothCone(t *testing.T) {
	t.Parallel()
	p := newLabPair(t, homeOpts{nat: natCone}, &homeOpts{nat: natCone})
	r := p.send(t, p.a, p.b, 8<<20)
	checkPath(t, r, "path: direct (through NAT)")
	if _, fwd := p.lab.logCounters("two cones"); fwd < 8<<20 {
		t.Errorf("pub forwarded %s between the homes, less than the file: it did not go directly", mib(fwd))
	}
}

// Case 3: one symmetric NAT, one port-restricted cone: either a direct
// path or the relay, but the file arrives, both ways.
func TestLabSymmetricAndCone(t *testing.T) {
	t.Parallel()
	p := newLabPair(t, homeOpts{nat: natSymmetric}, &homeOpts{nat: natCone})
	r := p.send(t, p.a, p.b, 8<<20)
	t.Logf("symmetric → cone took %q", r.path)
	r = p.send(t, p.b, p.a, 8<<20)
	t.Logf("cone → symmetric took %q", r.path)
	p.lab.logCounters("symmetric and cone")
}

// Case 4: both symmetric: only the server's relay connects them, and the
// relay sees no plaintext.
func TestLabBothSymmetric(t *testing.T) {
	t.Parallel()
	p := newLabPair(t, homeOpts{nat: natSymmetric}, &homeOpts{nat: natSymmetric})
	c := p.lab.startCapture()
	f := filepath.Join(t.TempDir(), "random.bin")
	writeRandom(t, f, 8<<20)
	r := p.a.sendFile(p.b.name, p.b.inbox(), f, 3*time.Minute)
	var pcap []byte
	if c != nil {
		pcap = c.stop(t)
	}
	checkSent(t, r, p.b.inbox(), f)
	checkPath(t, r, "path: relayed by")
	if served, _ := p.lab.logCounters("two symmetric"); served < 8<<20 {
		t.Errorf("%s reached the server's address, less than the file: it was not relayed", mib(served))
	}
	if c != nil {
		checkNoPlaintext(t, pcap, f)
	}
}

// Case 5: home 1 forwards only TCP to the server's HTTP port: the file
// is relayed over the server's HTTP(S)/WebSocket, both ways.
func TestLabOnlyServerTCP(t *testing.T) {
	t.Parallel()
	p := newLabPair(t, homeOpts{nat: natCone, onlyServerTCP: true}, &homeOpts{nat: natCone})
	r := p.send(t, p.a, p.b, 8<<20)
	checkPath(t, r, "path: relayed by")
	r = p.send(t, p.b, p.a, 8<<20)
	checkPath(t, r, "path: relayed by")
	if served, _ := p.lab.logCounters("only TCP to the server"); served < 2*8<<20 {
		t.Errorf("%s reached the server's address, less than the two files: they were not relayed", mib(served))
	}
}

// Case 6: the direct path between two cones is cut once 8 MiB of 64
// arrived; the send goes on (over the relay or a new path) and the bytes
// are right.
func TestLabPathCutMidTransfer(t *testing.T) {
	t.Parallel()
	p := newLabPair(t, homeOpts{nat: natCone}, &homeOpts{nat: natCone})
	f := filepath.Join(t.TempDir(), "big.bin")
	writeRandom(t, f, 64<<20)
	s := p.a.startSend(p.b.name, p.b.inbox(), f, 4*time.Minute)
	if s.received(8 << 20) {
		p.homeA.cutDirectUDP() // stays cut; the lab goes when the test ends
		t.Logf("direct UDP cut at home 1 after %s, with ≥ 8 MiB received", time.Since(s.start).Round(time.Millisecond))
	} else {
		t.Errorf("the send ended before 8 MiB arrived: the path was never cut")
	}
	r := s.wait()
	checkSent(t, r, p.b.inbox(), f)
	checkPath(t, r, "path: direct (through NAT)")
	// Resumed, not restarted: the second session skips what arrived.
	if !strings.Contains(r.out, "resumed after") {
		t.Errorf("send-file after the cut did not resume from the verified data; output:\n%s", r.out)
	}
	p.lab.logCounters("path cut")
}

// Case 7: join-terminal across two cones (direct) and two symmetric NATs
// (relayed): bob sees what alice's shell prints.
func TestLabTerminal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		nat  natKind
		path string
	}{
		{"cone", natCone, "path: direct (through NAT)"},
		{"symmetric", natSymmetric, "path: relayed by"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newLab(t)
			srv := l.startServer()
			labToken(t, srv, "alice")
			labToken(t, srv, "bob")
			sharer := l.addHome(homeOpts{nat: tc.nat}).addHost().newMachine("laptop")
			bob := l.addHome(homeOpts{nat: tc.nat}).addHost().newMachine("bobs-pc")
			sharer.login("alice")
			bob.login("bob")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			t.Cleanup(cancel)
			sh := sharer.start(ctx, "agent", "share-terminal", "--allow", "bob", "--", "sh")
			id := sh.shareID(t)
			start := time.Now()
			join := bob.start(ctx, "agent", "join-terminal", id)
			waitOrExit(t, join, "read-only", 30*time.Second)
			joined := time.Since(start)
			sh.typeIn(t, "printf 'hello %s\\n' lab\n")
			join.waitOutput(t, "hello lab")
			path := pathLine(join.out.String())
			t.Logf("joined after %s, %q", joined.Round(time.Millisecond), path)
			if !strings.HasPrefix(path, tc.path) {
				t.Errorf("join-terminal path line %q, want one starting %q", path, tc.path)
			}
			sh.typeIn(t, "exit 0\n")
			if code := sh.exit(t); code != 0 {
				t.Errorf("share-terminal exit code %d, want 0", code)
			}
		})
	}
}

// waitOrExit waits until p's output shows s, and fails t at once if p
// exits first or d passes.
func waitOrExit(t *testing.T, p *proc, s string, d time.Duration) {
	t.Helper()
	exited := false
	if !poll(d, 10*time.Millisecond, func() bool {
		select {
		case <-p.exited:
			exited = true
		default:
		}
		return exited || strings.Contains(p.out.String(), s)
	}) || !strings.Contains(p.out.String(), s) {
		t.Fatalf("output never showed %q (exited: %t); it is:\n%s", s, exited, p.out.String())
	}
}
