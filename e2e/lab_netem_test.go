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

// needNetem skips b where netem cannot run: not root, no ip or tc
// (iproute2), or a kernel without sch_netem (CONFIG_NET_SCH_NETEM; some
// VM kernels, this project's CI machines among them, leave it out).
func needNetem(b testing.TB) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("netem: not root")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("netem: %s (iproute2) not installed", tool)
		}
	}
	ns := fmt.Sprintf("%s%d-netem", labNSPrefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		b.Skipf("netem: ip netns add: %v: %s", err, out)
	}
	defer func() { _ = exec.Command("ip", "netns", "del", ns).Run() }() // the probe only; a leftover goes next run
	out, err := exec.Command("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms").CombinedOutput()
	if err != nil {
		b.Skipf("netem: this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM): tc: %v: %s", err, strings.TrimSpace(string(out)))
	}
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
