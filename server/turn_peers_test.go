package server_test

import (
	"bytes"
	"mesh/server"
	"net"
	"strings"
	"testing"
	"time"
)

func TestTURNRefusesPrivatePeers(t *testing.T) {
	t.Parallel()
	ts := turnServer(t, func(c *server.Config) {
		c.RTC.TURNAllowedPeers = []string{"10.9.0.0/16"}
		// The relay address is permitted (two relayed callers meet there);
		// put it off loopback, so that loopback is the server's own network.
		c.RTC.TURNPublicIP = "192.0.2.10"
		c.HTTP.PublicURL = "http://127.0.0.1:1" // where clients reach the TURN port
	})
	l := ts.turnLogin(t, ts.register(t, "alice", "secret1"))
	c, _ := allocation(t, l)
	for _, peer := range []string{"127.0.0.1:9", "127.0.0.53:53", "10.0.0.1:9", "192.168.1.1:80", "169.254.169.254:80", "[::1]:9", "0.0.0.0:9", "224.0.0.1:9"} {
		a, _ := net.ResolveUDPAddr("udp", peer)
		if err := c.CreatePermission(a); err == nil {
			t.Errorf("CreatePermission(%s) worked, want it refused", peer)
		}
	}
	for _, peer := range []string{"198.51.100.7:5000", "10.9.1.2:5000"} {
		a, _ := net.ResolveUDPAddr("udp", peer)
		if err := c.CreatePermission(a); err != nil {
			t.Errorf("CreatePermission(%s) = %v, want it permitted", peer, err)
		}
	}
	// pion's client binds channels only after permissions; speak raw STUN.
	// (pion refuses a channel with 401, a permission with 403.)
	for _, peer := range []string{"127.0.0.1:9", "169.254.169.254:80", "[::1]:9", "10.9.1.2:5000"} {
		code := rawChannelBind(t, l, peer)
		if allowed := peer == "10.9.1.2:5000"; allowed != (code == 0) {
			t.Errorf("ChannelBind to %s answered %d, want it %s", peer, code, map[bool]string{true: "bound", false: "refused"}[allowed])
		}
	}
}

func TestTURNOwnAddressOnlyRelays(t *testing.T) {
	t.Parallel()
	ts := turnServer(t, nil)
	alice := allocate(t, ts.turnLogin(t, ts.register(t, "alice", "secret1")))
	service, err := net.ListenPacket("udp4", "127.0.0.1:0") // a UDP service on the server's address
	if err != nil {
		t.Fatal(err)
	}
	defer service.Close()
	bob := allocate(t, ts.turnLogin(t, ts.register(t, "bob", "secret1")))
	if _, err := bob.WriteTo([]byte("open"), alice.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	var reached bool
	for i := 0; i < 20 && !reached; i++ {
		if _, err := alice.WriteTo([]byte("probe"), service.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		_, _ = alice.WriteTo([]byte("hi"), bob.LocalAddr())
		_, _, err := relayRead(t, bob, 200*time.Millisecond)
		reached = err == nil
	}
	if !reached {
		t.Fatal("bob's relay never heard alice's; the check below would prove nothing")
	}
	buf := make([]byte, 64)
	_ = service.SetReadDeadline(time.Now().Add(300 * time.Millisecond)) // the read ends by timing out
	if n, from, err := service.ReadFrom(buf); err == nil {
		t.Errorf("the service on the relay's address got %q from %v, want nothing", buf[:n], from)
	}
}

func TestTURNQuota(t *testing.T) {
	t.Parallel()
	ts := turnServer(t, func(c *server.Config) { c.RTC.TURNMaxPerUser = 2 })
	tokA := ts.register(t, "alice", "secret1")
	l := ts.turnLogin(t, tokA)
	first := allocate(t, l)
	allocate(t, l)
	if relay, err := turnClient(t, l).Allocate(); err == nil || !strings.Contains(err.Error(), "486") {
		if relay != nil {
			relay.Close()
		}
		t.Fatalf("a third allocation: %v, want 486 Allocation Quota Reached", err)
	}
	allocate(t, ts.turnLogin(t, ts.register(t, "bob", "secret1")))
	_ = first.Close() // a refresh with lifetime 0: the server deletes it
	eventually(t, 5*time.Second, func() bool {
		relay, err := turnClient(t, l).Allocate()
		if err == nil {
			relay.Close()
		}
		return err == nil
	}, "alice could not allocate again after freeing one")
}

func TestTURNBandwidthCap(t *testing.T) {
	t.Parallel()
	ts := turnServer(t, func(c *server.Config) { c.RTC.TURNUserMbps = 1 }) // 125,000 bytes/s, 31,250 of burst
	alice := allocate(t, ts.turnLogin(t, ts.register(t, "alice", "secret1")))
	bob := allocate(t, ts.turnLogin(t, ts.register(t, "bob", "secret1")))
	_, _ = bob.WriteTo([]byte("open"), alice.LocalAddr())
	payload := bytes.Repeat([]byte("x"), 1000)
	done := make(chan int64)
	go func() {
		var got int64
		for {
			b, _, err := relayRead(t, bob, time.Second)
			if err != nil {
				done <- got
				return
			}
			got += int64(len(b))
		}
	}()
	start := time.Now()
	sent := 0
	for time.Since(start) < 500*time.Millisecond {
		if _, err := alice.WriteTo(payload, bob.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		sent += len(payload)
		time.Sleep(100 * time.Microsecond) // about 10 MB/s offered, ten times the cap; loopback would drop a flood
	}
	elapsed := time.Since(start)
	got := <-done
	allowed := int64(31250 + 125000*elapsed.Seconds()*1.2)
	t.Logf("offered %d bytes in %v; bob received %d (cap allows about %d)", sent, elapsed.Round(time.Millisecond), got, allowed)
	if got == 0 || got > allowed {
		t.Errorf("bob received %d bytes, want some and at most %d", got, allowed)
	}
}

// TestTURNRelaysToAPeerOutside: a relay reaches a peer that is not one of
// the server's relays through the network, both ways (the peer here is on
// loopback, which the admin allowed, with the relay address elsewhere).
func TestTURNRelaysToAPeerOutside(t *testing.T) {
	t.Parallel()
	ts := turnServer(t, func(c *server.Config) {
		c.RTC.TURNPublicIP = "192.0.2.10"
		c.HTTP.PublicURL = "http://127.0.0.1:1"
		c.RTC.TURNAllowedPeers = []string{"127.0.0.0/8"}
	})
	relay := allocate(t, ts.turnLogin(t, ts.register(t, "alice", "secret1")))
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	buf := make([]byte, 64)
	var from net.Addr
	for i := 0; i < 20 && from == nil; i++ {
		if _, err := relay.WriteTo([]byte("to the peer"), peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		_ = peer.SetReadDeadline(time.Now().Add(250 * time.Millisecond)) // a timeout retries
		if n, a, err := peer.ReadFrom(buf); err == nil && string(buf[:n]) == "to the peer" {
			from = a
		}
	}
	if from == nil {
		t.Fatal("the peer never heard the relay")
	}
	if _, err := peer.WriteTo([]byte("to alice"), from); err != nil {
		t.Fatal(err)
	}
	if got, _, err := relayRead(t, relay, 5*time.Second); err != nil || string(got) != "to alice" {
		t.Fatalf("alice read %q, %v; want the peer's answer", got, err)
	}
}
