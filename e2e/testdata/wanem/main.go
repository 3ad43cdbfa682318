// Command wanem is a userspace netem for kernels without sch_netem: it
// bridges two interfaces of its namespace at layer 2 (AF_PACKET), and
// delays, rate-limits and drops every frame each way as a WAN link would.
//
//	wanem IFACE_A IFACE_B DELAY MBIT LOSS_PERCENT QUEUE
//
// Each direction: a frame is lost with LOSS_PERCENT; else it leaves the
// link's queue at max(now, previous departure) + its serialisation time
// at MBIT, unless that is more than QUEUE (a duration) away (tail drop),
// and is written out DELAY after it left. The hosts on either side must
// send frames of at most their MTU (gso_max_segs 1 on their interfaces).
// TCP and UDP checksums are recomputed: veths leave them to an offload
// that a frame read from a packet socket never had.
//
// It lives under testdata so that `go test ./...` leaves it out; e2e's
// BenchmarkTransfer builds it with `go build`. Ends on SIGTERM/SIGKILL.
package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

type frame struct {
	b  []byte
	at time.Time // when it is written out
}

func main() {
	if len(os.Args) != 7 {
		fmt.Fprintln(os.Stderr, "usage: wanem IFACE_A IFACE_B DELAY MBIT LOSS_PERCENT QUEUE")
		os.Exit(2)
	}
	delay, err1 := time.ParseDuration(os.Args[3])
	mbit, err2 := strconv.ParseFloat(os.Args[4], 64)
	loss, err3 := strconv.ParseFloat(os.Args[5], 64)
	queue, err4 := time.ParseDuration(os.Args[6])
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			fmt.Fprintln(os.Stderr, "wanem:", err)
			os.Exit(2)
		}
	}
	a, b := open(os.Args[1]), open(os.Args[2])
	fmt.Println("bridging", os.Args[1], os.Args[2])
	go pipe(a, b, delay, mbit, loss/100, queue)
	pipe(b, a, delay, mbit, loss/100, queue)
}

type sock struct {
	fd  int
	idx int
}

func open(name string) sock {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		fail(err)
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(syscall.ETH_P_ALL)))
	if err != nil {
		fail(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		fail(err)
	}
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 8<<20) // best effort
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, 8<<20)
	return sock{fd: fd, idx: ifi.Index}
}

// pipe moves frames read on in to out, shaped.
func pipe(in, out sock, delay time.Duration, mbit, loss float64, queue time.Duration) {
	q := make(chan frame, 1<<16)
	go func() {
		to := &syscall.SockaddrLinklayer{Ifindex: out.idx}
		for f := range q {
			if d := time.Until(f.at); d > 200*time.Microsecond { // closer is not worth a sleep
				time.Sleep(d)
			}
			fixChecksum(f.b)
			_ = syscall.Sendto(out.fd, f.b, 0, to) // a lost frame is what a link does
		}
	}()
	var last time.Time // the previous frame's departure from the queue
	buf := make([]byte, 65536)
	for {
		n, from, err := syscall.Recvfrom(in.fd, buf, 0)
		if err != nil {
			fail(err)
		}
		if ll, ok := from.(*syscall.SockaddrLinklayer); ok && ll.Pkttype == syscall.PACKET_OUTGOING {
			continue // what we wrote ourselves
		}
		if loss > 0 && rand.Float64() < loss {
			continue
		}
		now := time.Now()
		dep := last
		if now.After(dep) {
			dep = now
		}
		dep = dep.Add(time.Duration(float64(n*8) / (mbit * 1e6) * float64(time.Second)))
		if dep.Sub(now) > queue {
			continue // the queue is full
		}
		last = dep
		select {
		case q <- frame{b: append([]byte(nil), buf[:n]...), at: dep.Add(delay)}:
		default: // the writer is behind: a drop
		}
	}
}

// fixChecksum recomputes an IPv4 TCP or UDP checksum.
func fixChecksum(f []byte) {
	if len(f) < 34 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	if ihl < 20 || tot > len(ip) || tot < ihl || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
		return // not whole, or a fragment
	}
	l4 := ip[ihl:tot]
	var off int
	switch ip[9] {
	case 6:
		off = 16
	case 17:
		off = 6
	default:
		return
	}
	if len(l4) < off+2 {
		return
	}
	l4[off], l4[off+1] = 0, 0
	sum := uint32(ip[9]) + uint32(len(l4))
	sum += sum16(ip[12:20])
	sum += sum16(l4)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	if c == 0 && ip[9] == 17 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[off:], c)
}

func sum16(b []byte) uint32 {
	var s uint32
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "wanem:", err)
	os.Exit(1)
}
