package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// flipProxy relays UDP between one client and target, flipping one byte in
// every 50th large client packet: what a faulty link or a meddler does.
type flipProxy struct {
	ln      *net.UDPConn
	flipped atomic.Int64
}

func startFlipProxy(t *testing.T, target *net.UDPAddr) *flipProxy {
	t.Helper()
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.DialUDP("udp", nil, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); up.Close() })
	p := &flipProxy{ln: ln}
	var client atomic.Pointer[net.UDPAddr]
	go func() { // target → client
		buf := make([]byte, 65536)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			if c := client.Load(); c != nil {
				_, _ = ln.WriteToUDP(buf[:n], c) // UDP: loss is the peer's problem
			}
		}
	}()
	go func() { // client → target, corrupting
		buf := make([]byte, 65536)
		for i := 0; ; i++ {
			n, addr, err := ln.ReadFromUDP(buf)
			if err != nil {
				return
			}
			client.Store(addr)
			if n > 1000 && i%50 == 49 {
				buf[n/2] ^= 0x40
				p.flipped.Add(1)
			}
			_, _ = up.Write(buf[:n]) // as above
		}
	}()
	return p
}

// TestAgentWireCorruptionIsCaught sends through a proxy that flips bytes:
// QUIC's authentication drops the damaged packets, they are sent again,
// and the file lands intact — nothing corrupt ever reaches the inbox.
func TestAgentWireCorruptionIsCaught(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	f := filepath.Join(t.TempDir(), "data.bin")
	writeRandom(t, f, 8<<20)
	sess := w.fileSession(t)
	proxy := startFlipProxy(t, &net.UDPAddr{IP: net.ParseIP(sess.Endpoints.Target.IP), Port: sess.Endpoints.Target.Port})
	out, err := w.laptop.send(t, sess.args(proxy.ln.LocalAddr().String(), f)...)
	if err != nil {
		t.Fatalf("send through the flipping proxy: %v\n%s", err, out)
	}
	if proxy.flipped.Load() == 0 {
		t.Fatal("the proxy flipped nothing; the test proved nothing")
	}
	if got, want := fileHash(t, filepath.Join(w.home.inbox(), "data.bin")), fileHash(t, f); got != want {
		t.Fatalf("landed hash %s, want %s", got, want)
	}
	entries, _ := os.ReadDir(w.home.inbox())
	if len(entries) != 1 {
		t.Fatalf("inbox holds %d entries, want only data.bin: %v", len(entries), fmt.Sprint(entries))
	}
	t.Logf("%d packets corrupted in flight; file intact", proxy.flipped.Load())
}
