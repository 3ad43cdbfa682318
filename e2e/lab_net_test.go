package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The network lab: Linux network namespaces joined by veth pairs, with
// nftables NAT in the home routers, built and torn down by each test.
//
//	pub (the internet): 203.0.113.10 on lo (mesh serve, TURN), routes
//	  198.51.100.N/32 to home N over veth wN (pub side 198.51.100.254)
//	home N router: wan 198.51.100.N, br0 10.N.0.1/24, ip_forward, nft NAT
//	home N hosts: eth0 10.N.0.10, .11, … /24 on br0, default via 10.N.0.1
//
// No namespace has a route out of the lab. Names start with a prefix
// unique to the test binary's process and the test ("mlab<pid>-<n>"), so
// parallel tests never clash and leftovers of a dead run can be found.

const (
	labPubIP     = "203.0.113.10" // mesh serve and its TURN server
	labPubGW     = "198.51.100.254"
	labNSPrefix  = "mlab"
	labNftTable  = "lab"
	labFwdChain  = "filter_fw" // `fwd` is an nft keyword
	labNatChain  = "postnat"
	labInChain   = "filter_in"
	labLANBridge = "br0"
)

// natKind is how a home router maps its LAN's flows onto its WAN address.
type natKind int

const (
	natCone      natKind = iota // masquerade: endpoint-independent mapping, port-restricted cone
	natSymmetric                // masquerade fully-random: a new port per flow
)

func (k natKind) String() string {
	if k == natSymmetric {
		return "symmetric"
	}
	return "cone"
}

// homeOpts says how to build a home.
type homeOpts struct {
	nat natKind
	// dropUDP drops every UDP packet forwarded from the LAN.
	dropUDP bool
	// onlyServerTCP forwards from the LAN only TCP to the server's HTTP
	// port (and replies): no UDP at all, no TURN over TCP either.
	onlyServerTCP bool
	// forwardUDP, if not 0, forwards that UDP port on the WAN address to
	// the same port of the LAN's first host (10.N.0.10).
	forwardUDP int
}

var (
	labSeq       atomic.Int64
	labProbeOnce sync.Once
	labProbeErr  string // why the lab cannot run here; "" if it can
)

// needLab skips t when the lab cannot run here (not root, no ip or nft,
// namespaces refused), and fails it instead when CI is set: CI must run
// the lab. The first call also deletes namespaces that dead runs left.
func needLab(t *testing.T) {
	t.Helper()
	labProbeOnce.Do(func() { labProbeErr = probeLab() })
	if labProbeErr == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("network lab: %s (CI must run the lab: run as root with iproute2 and nftables)", labProbeErr)
	}
	t.Skipf("network lab: %s", labProbeErr)
}

func probeLab() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not installed"
		}
	}
	removeStaleNamespaces()
	probe := fmt.Sprintf("%s%d-probe", labNSPrefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Sprintf("ip netns add: %v: %s", err, out)
	}
	defer func() { _ = exec.Command("ip", "netns", "del", probe).Run() }() // the probe only; a leftover goes next run
	if out, err := exec.Command("ip", "netns", "exec", probe, "nft", "list", "ruleset").CombinedOutput(); err != nil {
		return fmt.Sprintf("nft in a namespace: %v: %s", err, out)
	}
	return ""
}

var labNSName = regexp.MustCompile(`^` + labNSPrefix + `(\d+)-`)

// removeStaleNamespaces deletes lab namespaces whose test process is gone.
func removeStaleNamespaces() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for line := range strings.Lines(string(out)) {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		m := labNSName.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		if pid, _ := strconv.Atoi(m[1]); pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue // ours, or a live run's
		}
		deleteNS(name)
	}
}

// deleteNS kills what still runs in namespace ns (a run that died before
// its cleanups leaves its mesh processes behind, and they would keep the
// namespace alive without a name), then deletes it.
func deleteNS(ns string) error {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL) // it may have exited meanwhile
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %w: %s", ns, err, out)
	}
	return nil
}

// lab is one test's set of namespaces.
type lab struct {
	t      *testing.T
	prefix string
	pub    string // the internet's namespace
	mu     sync.Mutex
	nss    []string // every namespace made, for the cleanup
	homes  int
}

// labHome is a home: its router namespace and the hosts on its LAN.
type labHome struct {
	lab    *lab
	n      int
	router string
	wanIP  string
	hosts  int
}

// labHost is one machine's namespace on a home's LAN.
type labHost struct {
	home *labHome
	ns   string
	ip   string
}

// newLab builds the internet namespace; everything the lab made is
// deleted when t ends, after the processes registered later are stopped.
func newLab(t *testing.T) *lab {
	t.Helper()
	needLab(t)
	l := &lab{t: t, prefix: fmt.Sprintf("%s%d-%d", labNSPrefix, os.Getpid(), labSeq.Add(1))}
	t.Cleanup(l.remove)
	l.pub = l.addNS("pub")
	l.sh(l.pub, "ip link set lo up", "ip addr add "+labPubIP+"/32 dev lo")
	l.sysctlForward(l.pub)
	// Counters: what reached the server's address, and what pub forwarded
	// between homes (direct paths through NATs).
	l.nft(l.pub, fmt.Sprintf(`table ip %[1]s {
	counter served {}
	counter forwarded {}
	chain %[2]s { type filter hook input priority filter; policy accept; iifname != "lo" ip daddr %[4]s counter name "served"; }
	chain %[3]s { type filter hook forward priority filter; policy accept; counter name "forwarded"; }
}`, labNftTable, labInChain, labFwdChain, labPubIP))
	return l
}

// addNS creates namespace prefix-suffix.
func (l *lab) addNS(suffix string) string {
	l.t.Helper()
	name := l.prefix + "-" + suffix
	l.run("ip", "netns", "add", name)
	l.mu.Lock()
	l.nss = append(l.nss, name)
	l.mu.Unlock()
	return name
}

// remove deletes the lab's namespaces; processes in them must be gone
// by now (their cleanups ran first).
func (l *lab) remove() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ns := range l.nss {
		if err := deleteNS(ns); err != nil {
			l.t.Error(err)
		}
	}
	l.nss = nil
}

// run runs a command in the root namespace and fails the test if it fails.
func (l *lab) run(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sh runs each line, split on spaces, in namespace ns.
func (l *lab) sh(ns string, lines ...string) {
	l.t.Helper()
	for _, line := range lines {
		l.run(append([]string{"ip", "netns", "exec", ns}, strings.Fields(line)...)...)
	}
}

func (l *lab) sysctlForward(ns string) {
	l.t.Helper()
	if _, err := exec.LookPath("sysctl"); err == nil {
		l.sh(ns, "sysctl -q -w net.ipv4.ip_forward=1")
		return
	}
	l.run("ip", "netns", "exec", ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
}

// nft loads ruleset into namespace ns.
func (l *lab) nft(ns, ruleset string) {
	l.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("nft -f in %s: %v\n%s\n%s", ns, err, out, ruleset)
	}
}

// addHome builds home N (N counts from 1): a router namespace on the
// internet with NAT as o says, and an empty LAN.
func (l *lab) addHome(o homeOpts) *labHome {
	l.t.Helper()
	l.homes++
	h := &labHome{lab: l, n: l.homes, wanIP: fmt.Sprintf("198.51.100.%d", l.homes)}
	h.router = l.addNS(fmt.Sprintf("r%d", h.n))
	w := fmt.Sprintf("w%d", h.n)
	l.run("ip", "-n", l.pub, "link", "add", w, "type", "veth", "peer", "name", "wan", "netns", h.router)
	l.sh(l.pub, "ip addr add "+labPubGW+"/32 dev "+w, "ip link set "+w+" up",
		"ip route add "+h.wanIP+"/32 dev "+w+" src "+labPubIP)
	l.sh(h.router, "ip link set lo up", "ip addr add "+h.wanIP+"/32 dev wan", "ip link set wan up",
		"ip route add "+labPubGW+" dev wan", "ip route add default via "+labPubGW+" dev wan",
		"ip link add "+labLANBridge+" type bridge", fmt.Sprintf("ip addr add 10.%d.0.1/24 dev %s", h.n, labLANBridge),
		"ip link set "+labLANBridge+" up")
	l.sysctlForward(h.router)
	masq := "masquerade"
	if o.nat == natSymmetric {
		masq = "masquerade fully-random"
	}
	var filter []string
	switch {
	case o.onlyServerTCP:
		filter = []string{"ct state established,related accept",
			fmt.Sprintf(`iifname "%s" ip daddr %s tcp dport 8000 accept`, labLANBridge, labPubIP),
			fmt.Sprintf(`iifname "%s" drop`, labLANBridge)}
	case o.dropUDP:
		filter = []string{fmt.Sprintf(`iifname "%s" meta l4proto udp drop`, labLANBridge)}
	}
	var dnat string
	if o.forwardUDP != 0 {
		dnat = fmt.Sprintf(`chain prenat { type nat hook prerouting priority dstnat; policy accept; iifname "wan" udp dport %[1]d dnat to 10.%[2]d.0.10:%[1]d; }`, o.forwardUDP, h.n)
	}
	// What nobody inside asked for is dropped in the input hook, before
	// conntrack confirms an entry for it: an unreplied entry for a peer's
	// early punch would take the tuple the inside's own packet to that
	// peer needs, and masquerade would move it to another port.
	l.nft(h.router, fmt.Sprintf(`table ip %s {
	chain %s { type nat hook postrouting priority srcnat; policy accept; oifname "wan" %s; }
	chain %s { type filter hook forward priority filter; policy accept; %s }
	chain %s { type filter hook input priority filter; policy accept; iifname "wan" ct state new drop; }
	%s
}`, labNftTable, labNatChain, masq, labFwdChain, strings.Join(append(filter, ""), "; "), labInChain, dnat))
	return h
}

// addHost adds a machine's namespace to the home's LAN.
func (h *labHome) addHost() *labHost {
	l := h.lab
	l.t.Helper()
	h.hosts++
	hh := &labHost{home: h, ip: fmt.Sprintf("10.%d.0.%d", h.n, 9+h.hosts)}
	hh.ns = l.addNS(fmt.Sprintf("h%d-%d", h.n, h.hosts))
	v := fmt.Sprintf("l%d", h.hosts)
	l.run("ip", "-n", h.router, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", hh.ns)
	l.sh(h.router, "ip link set "+v+" master "+labLANBridge, "ip link set "+v+" up")
	l.sh(hh.ns, "ip link set lo up", "ip addr add "+hh.ip+"/24 dev eth0", "ip link set eth0 up",
		fmt.Sprintf("ip route add default via 10.%d.0.1", h.n))
	return hh
}

// addRule appends rule to the router's forward chain now, and returns
// the function that deletes it again.
func (h *labHome) addRule(rule string) (remove func()) {
	l := h.lab
	l.t.Helper()
	args := append([]string{"ip", "netns", "exec", h.router, "nft", "--echo", "--handle", "add", "rule", "ip", labNftTable, labFwdChain}, strings.Fields(rule)...)
	out := l.run(args...)
	_, handle, ok := strings.Cut(out, "# handle ")
	if !ok {
		l.t.Fatalf("nft add rule printed no handle: %s", out)
	}
	handle = strings.TrimSpace(handle)
	return func() {
		l.t.Helper()
		l.run("ip", "netns", "exec", h.router, "nft", "delete", "rule", "ip", labNftTable, labFwdChain, "handle", handle)
	}
}

// cutDirectUDP drops, from now on, every UDP packet the router forwards
// that neither comes from nor goes to the server: the packets of a direct
// path between agents, both ways, whatever their ports. TURN and the
// server's HTTP stay up.
func (h *labHome) cutDirectUDP() (restore func()) {
	return h.addRule(fmt.Sprintf("meta l4proto udp ip saddr != %[1]s ip daddr != %[1]s counter drop", labPubIP))
}

// counter reads a named counter in the pub namespace: "served" (bytes to
// the server's address) or "forwarded" (between homes).
func (l *lab) counter(name string) (packets, bytes int64) {
	l.t.Helper()
	out := l.run("ip", "netns", "exec", l.pub, "nft", "list", "counter", "ip", labNftTable, name)
	f := strings.Fields(out[strings.Index(out, "packets"):])
	if len(f) < 4 {
		l.t.Fatalf("counter %s: %s", name, out)
	}
	packets, _ = strconv.ParseInt(f[1], 10, 64)
	bytes, _ = strconv.ParseInt(f[3], 10, 64)
	return packets, bytes
}

// httpClient is an HTTP client whose connections are made in namespace
// ns: the test process itself stays in the root namespace, which has no
// route into the lab.
func (l *lab) httpClient(ns string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialInNS(ctx, ns, network, addr)
		},
	}}
}

// dialInNS dials from namespace ns.
func dialInNS(ctx context.Context, ns, network, addr string) (c net.Conn, err error) {
	err = inNS(ns, func() error {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// inNS runs f on a thread of its own in namespace ns and waits for it. A
// socket belongs to the namespace of the thread that made it, and stays
// there: f may open sockets for use anywhere. The thread goes back to its
// own namespace afterwards; if it cannot, it stays locked, which retires
// it with the goroutine (or wedges it, if it is the main thread).
func inNS(ns string, f func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- err
			return
		}
		defer home.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- err
			return
		}
		err = unix.Setns(int(target.Fd()), unix.CLONE_NEWNET)
		target.Close()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		err = f()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: the thread stays locked, in ns, and ends with this goroutine
		ch <- err
	}()
	return <-ch
}
