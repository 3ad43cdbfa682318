package turn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/pion/stun/v3"
)

// Check is the outcome of a [SelfCheck].
type Check struct {
	Addr   string    `json:"addr"`             // where the binding was sent
	OK     bool      `json:"ok"`               // a binding success came back
	Mapped string    `json:"mapped,omitempty"` // the address the answer saw us at
	Error  string    `json:"error,omitempty"`  // why not, for the admin
	At     time.Time `json:"checked_at"`
}

// SelfCheck sends a STUN binding request to addr, the STUN/TURN port as
// the internet sees it, and waits up to timeout for the answer. From
// behind a home router this goes out and back through the router, so a
// failure means the port is not forwarded (or the router does not loop
// back to itself, which some do not: then check from outside).
func SelfCheck(ctx context.Context, addr string, timeout time.Duration) Check {
	c := Check{Addr: addr, At: time.Now().UTC()}
	mapped, err := bind(ctx, addr, timeout)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	c.OK, c.Mapped = true, mapped
	return c
}

func bind(ctx context.Context, addr string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raddr, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return "", fmt.Errorf("open a UDP socket: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) }) // ends the read below
	defer stop()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	buf := make([]byte, 1500)
	for try := time.Duration(0); ; try++ { // resend as RFC 5389 does, sooner
		if _, err := conn.WriteToUDP(req.Raw, raddr); err != nil {
			return "", fmt.Errorf("send a STUN binding to %s: %w", addr, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(250 * time.Millisecond * (try + 1))) // a read error says it
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if ctx.Err() != nil {
				return "", fmt.Errorf("no STUN answer from %s within %v: is UDP %s forwarded to this machine?", addr, timeout, addr)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break // resend
			} else if err != nil {
				return "", fmt.Errorf("STUN binding to %s: %w", addr, err)
			}
			res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if res.Decode() != nil || res.TransactionID != req.TransactionID {
				continue // not our answer
			}
			var xor stun.XORMappedAddress
			if err := xor.GetFrom(res); err != nil {
				return "", fmt.Errorf("STUN answer from %s has no mapped address: %w", addr, err)
			}
			return xor.String(), nil
		}
	}
}
