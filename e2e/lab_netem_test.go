package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// netem is how a lab path is shaped in each direction with `tc netem`.
type netem struct {
	delay time.Duration // one way; the RTT is twice this
	mbit  int           // rate, Mbit/s
	loss  float64       // percent of packets dropped, each direction
}

func (n netem) String() string {
	return fmt.Sprintf("%s RTT, %d Mbit/s, %.1f%% loss", 2*n.delay, n.mbit, n.loss)
}

// limit is the netem queue length in 1500-byte packets: the packets in
// the delay line (rate × delay) plus a bandwidth-delay product (rate ×
// RTT) of queue, so that the queue, not the emulator, is what overflows.
func (n netem) limit() int {
	perSec := float64(n.mbit) * 1e6 / (1500 * 8)
	return int(perSec*n.delay.Seconds() + perSec*2*n.delay.Seconds())
}

// shape shapes both directions between the rbLab's hosts as n says until
// b ends: netem on pub's veth to each host (the egress of one direction
// each). The hosts' eth0 get gso_max_segs 1, so that the kernel cuts UDP
// and TCP GSO batches into packets before they leave the host: netem
// drops and times one skb at a time, and a 64 KB batch lost whole is not
// what a real link's loss does.
func (l *rbLab) shape(b *testing.B, n netem) {
	b.Helper()
	for i, h := range l.hosts {
		rbRun(b, "ip", "-n", h, "link", "set", "eth0", "gso_max_segs", "1")
		args := []string{"ip", "netns", "exec", l.pub, "tc", "qdisc", "replace", "dev", fmt.Sprintf("b%d", i+1), "root", "netem",
			"delay", fmt.Sprintf("%dus", n.delay.Microseconds()), "rate", fmt.Sprintf("%dmbit", n.mbit),
			"limit", fmt.Sprint(n.limit())}
		if n.loss > 0 {
			args = append(args, "loss", fmt.Sprintf("%g%%", n.loss))
		}
		rbRun(b, args...)
	}
	b.Cleanup(func() {
		for i := range l.hosts {
			dev := fmt.Sprintf("b%d", i+1)
			b.Logf("%s: %s", dev, rbRun(b, "ip", "netns", "exec", l.pub, "tc", "-s", "qdisc", "show", "dev", dev))
			rbRun(b, "ip", "netns", "exec", l.pub, "tc", "qdisc", "del", "dev", dev, "root")
		}
	})
}

// netemReason says why the kernel's netem cannot shape a lab path here
// ("" if it can): CONFIG_NET_SCH_NETEM is left out of some VM kernels,
// this machine's among them. It needs root and ip, tc.
func netemReason() string {
	ns := fmt.Sprintf("%s%d-netem", labNSPrefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Sprintf("ip netns add: %v: %s", err, out)
	}
	defer func() { _ = exec.Command("ip", "netns", "del", ns).Run() }() // the probe only; a leftover goes next run
	out, err := exec.Command("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM): tc: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// newEmuLab is the WAN lab where netem is missing: host 1 and host 2 on
// one Ethernet segment (10.79.0.1 and .2/24) that crosses a third
// namespace, where e2e/testdata/wanem (bin) bridges the two veths in
// userspace and shapes each direction as n says. The server's address
// (labPubIP) is on host 2's lo, so the rbLab's "pub" is host 2: the
// sender reaches the server across the WAN, the receiver locally. wanem's
// own CPU is logged; it shares the machine's cores with what it carries.
func newEmuLab(b *testing.B, bin string, n netem) *rbLab {
	labProbeOnce.Do(func() { labProbeErr = probeLab() })
	if labProbeErr != "" {
		b.Skipf("network lab: %s", labProbeErr)
	}
	prefix := fmt.Sprintf("%s%d-%d", labNSPrefix, os.Getpid(), labSeq.Add(1))
	l := &rbLab{hosts: [2]string{prefix + "-h1", prefix + "-h2"}, ips: [2]string{"10.79.0.1", "10.79.0.2"}}
	l.pub = l.hosts[1]
	mid := prefix + "-wan"
	b.Cleanup(func() {
		for _, ns := range []string{l.hosts[0], l.hosts[1], mid} {
			if err := deleteNS(ns); err != nil {
				b.Error(err)
			}
		}
	})
	for _, ns := range []string{l.hosts[0], l.hosts[1], mid} {
		rbRun(b, "ip", "netns", "add", ns)
		rbRun(b, "ip", "-n", ns, "link", "set", "dev", "lo", "up")
	}
	for i, peer := range []string{"ema", "emb"} {
		rbRun(b, "ip", "-n", l.hosts[i], "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", mid)
		rbRun(b, "ip", "-n", mid, "link", "set", "dev", peer, "up")
		rbRun(b, "ip", "-n", l.hosts[i], "addr", "add", l.ips[i]+"/24", "dev", "eth0")
		rbRun(b, "ip", "-n", l.hosts[i], "link", "set", "dev", "eth0", "gso_max_segs", "1") // frames, not GSO batches
		rbRun(b, "ip", "-n", l.hosts[i], "link", "set", "dev", "eth0", "up")
	}
	rbRun(b, "ip", "-n", l.hosts[1], "addr", "add", labPubIP+"/32", "dev", "lo")
	rbRun(b, "ip", "-n", l.hosts[0], "route", "add", labPubIP+"/32", "via", l.ips[1])
	em, err := startCmd(exec.Command("ip", "netns", "exec", mid, bin, "ema", "emb", n.delay.String(),
		fmt.Sprint(n.mbit), fmt.Sprint(n.loss), (2*n.delay).String()), false)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if c, err := procCPU(em.cmd.Process.Pid); err == nil {
			b.Logf("wanem (%s) used %.2f CPU-s", n, c.Seconds())
		}
		em.stop()
	})
	em.waitOutputCtx(b, "bridging", 10*time.Second)
	return l
}
