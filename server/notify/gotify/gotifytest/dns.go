package gotifytest

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
)

// Resolver returns a resolver that resolves every name to addrs: a name
// the user controls, pointed (or re-pointed) wherever they like, without
// the network. A DNS server on 127.0.0.1 answers it; t.Cleanup stops it.
func Resolver(t testing.TB, addrs ...netip.Addr) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("gotifytest: DNS listener: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			} else if err != nil {
				continue
			}
			if answer := dnsAnswer(buf[:n], addrs); answer != nil {
				_, _ = pc.WriteTo(answer, from) // a lost answer makes the resolver ask again
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	server := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", server)
	}}
}

// dnsAnswer answers a query for A or AAAA with those of addrs of that
// family, and anything else with no records; nil for what is no query.
func dnsAnswer(q []byte, addrs []netip.Addr) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil
	}
	end := 12 // past the question's name: labels up to the root's 0
	for end < len(q) && q[end] != 0 {
		end += 1 + int(q[end])
	}
	end += 5 // the root label, type and class
	if end > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[end-4 : end-2])
	a := make([]byte, 12, 512)
	copy(a, q[:2])                            // id
	binary.BigEndian.PutUint16(a[2:], 0x8580) // a response, authoritative, recursion desired and available
	binary.BigEndian.PutUint16(a[4:], 1)      // the question, repeated
	a = append(a, q[12:end]...)
	var count uint16
	for _, ip := range addrs {
		var rtype uint16 = 1
		if ip.Is6() {
			rtype = 28
		}
		if rtype != qtype {
			continue
		}
		a = append(a, 0xc0, 12) // the name: a pointer to the question's
		a = binary.BigEndian.AppendUint16(a, rtype)
		a = binary.BigEndian.AppendUint16(a, 1) // class IN
		a = binary.BigEndian.AppendUint32(a, 0) // TTL: re-resolved every time
		b := ip.AsSlice()
		a = binary.BigEndian.AppendUint16(a, uint16(len(b)))
		a = append(a, b...)
		count++
	}
	binary.BigEndian.PutUint16(a[6:], count)
	return a
}
