package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"

	"mesh/agent/peer"
	"mesh/protocol"
)

// ErrServerUnreachable is what [Doctor] returns when the server did not
// answer GET /healthz: the one finding that makes `mesh agent doctor` fail.
var ErrServerUnreachable = errors.New("the server is not reachable")

// DoctorHelp explains each line `mesh agent doctor` prints.
const DoctorHelp = `Prints one finding a line, "WHAT: FINDING":
   server:         GET /healthz over the server's HTTP(S) answered (and how fast), or why not
   websocket:      the WebSocket opened with this device's token (the link the daemon keeps)
   stun:           the server's STUN (from GET /api/rtc/config) answered over UDP, or not:
                   without it peers behind other NATs use the relay
   public address: this machine's address as the server's STUN saw it (server-reflexive)
   nat:            whether that address is one of this machine's own (no NAT) or not (behind NAT)
   nat mapping:    whether the NAT keeps the same public port towards two destinations (the
                   STUN port and a TURN relay port of the server, from one socket):
                   endpoint-independent lets hole punching work; endpoint-dependent
                   (symmetric) means direct paths need the peer's side open, or the relay
   relay:          the server's relay took a relay frame over the WebSocket (it answers
                   not_found for the made-up session the doctor names)
   to DEVICE:      with --to: a real file session to DEVICE was dialled as send-file dials,
                   and the path it took ("path: ..." as send-file prints it) and connect time;
                   no file is sent
Exits 0 when the server answered GET /healthz, 1 otherwise.`

// Doctor checks what this agent can reach, and prints one finding a line
// on out (see [DoctorHelp]). With to, it also dials a file session to
// that device without sending anything. Its error is
// [ErrServerUnreachable] or a bad configuration; every other failure is
// a finding.
func Doctor(ctx context.Context, cfg Config, dir, to string, out io.Writer, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	say := func(what, format string, a ...any) { fmt.Fprintf(out, "%s: %s\n", what, fmt.Sprintf(format, a...)) }
	start := time.Now()
	if err := doctorHealth(ctx, cfg); err != nil {
		say("server", "unreachable at %s: %v", cfg.Server, err)
		return ErrServerUnreachable
	}
	say("server", "reachable at %s (GET /healthz in %s)", cfg.Server, roundRTT(time.Since(start)))
	relay := doctorSocket(ctx, cfg, log)
	if relay.err != nil {
		say("websocket", "failed: %v", relay.err)
	} else {
		say("websocket", "connected with this device's token")
	}
	for _, f := range doctorUDP(ctx, cfg) {
		say(f.what, "%s", f.finding)
	}
	switch {
	case relay.err != nil:
		say("relay", "not tested: no WebSocket")
	case relay.answer != "":
		say("relay", "%s", relay.answer)
	default:
		say("relay", "no answer to a relay frame within %s", doctorWait)
	}
	if to != "" {
		say("to "+to, "%s", doctorDial(ctx, cfg, dir, to, log))
	}
	return nil
}

// doctorWait bounds each network check.
const doctorWait = 3 * time.Second

func doctorHealth(ctx context.Context, cfg Config) error {
	ctx, cancel := context.WithTimeout(ctx, doctorWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(cfg.Server, "/")+"/healthz", nil)
	if err != nil {
		return err
	}
	res, err := newClient(cfg.Server, "").http.Do(req)
	if err != nil {
		return err
	}
	_ = res.Body.Close() // only the status matters
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz answered %s", res.Status)
	}
	return nil
}

// socketCheck is what the WebSocket check found: err if it did not open;
// answer, the relay's answer to a frame for a made-up session.
type socketCheck struct {
	err    error
	answer string
}

// doctorSocket opens a WebSocket with the device token, as the daemon's
// link does, and sends a relay frame for a session that does not exist:
// a relay that is up answers not_found.
func doctorSocket(ctx context.Context, cfg Config, log *slog.Logger) socketCheck {
	ctx, cancel := context.WithTimeout(ctx, doctorWait)
	defer cancel()
	answers := make(chan protocol.Error, 4)
	l := &link{cfg: cfg, log: log.With("component", "doctor-link"),
		hello: protocol.Hello{DeviceID: cfg.DeviceID, Version: protocol.Version},
		onEvent: func(env protocol.Envelope) {
			var e protocol.Error
			if env.Type == protocol.TypeSystemError && env.Unmarshal(&e) == nil {
				select {
				case answers <- e:
				default:
				}
			}
		}}
	ended := make(chan error, 1)
	go func() { ended <- l.session(ctx) }()
	select {
	case <-l.connected():
	case err := <-ended:
		return socketCheck{err: err}
	case <-ctx.Done():
		return socketCheck{err: fmt.Errorf("no connection within %s", doctorWait)}
	}
	defer func() { cancel(); <-ended }()
	id := "doctor-" + randomID()
	if !l.sendBinary(protocol.AppendRelayPacket(protocol.AppendRelayHeader(nil, id), []byte{0})) {
		return socketCheck{answer: "not tested: the WebSocket closed"}
	}
	for {
		select {
		case e := <-answers:
			if e.Code == protocol.CodeNotFound {
				return socketCheck{answer: "answers (a relay frame for a made-up session got not_found)"}
			}
			return socketCheck{answer: fmt.Sprintf("refused a relay frame: %s (%s)", e.Message, e.Code)}
		case <-ended:
			return socketCheck{answer: "the server closed the WebSocket after a relay frame"}
		case <-ctx.Done():
			return socketCheck{}
		}
	}
}

// finding is one line of the doctor's report.
type finding struct{ what, finding string }

// doctorUDP checks the server's STUN, this machine's public address and
// its NAT's mapping, from one UDP socket.
func doctorUDP(ctx context.Context, cfg Config) []finding {
	servers, err := iceServers(ctx, cfg)
	if err != nil {
		return []finding{{"stun", "not tested: " + err.Error()}, {"public address", "unknown"},
			{"nat", "unknown"}, {"nat mapping", "not tested: no STUN server"}}
	}
	stunAddr, turnAddr, user, pass := "", "", "", ""
	for _, s := range servers {
		for _, u := range s.URLs {
			if hp, ok := strings.CutPrefix(u, "stun:"); ok && stunAddr == "" {
				stunAddr = hp
			} else if hp, ok := strings.CutPrefix(u, "turn:"); ok && turnAddr == "" && strings.HasSuffix(hp, "?transport=udp") {
				turnAddr, user, pass = strings.TrimSuffix(hp, "?transport=udp"), s.Username, s.Credential
			}
		}
	}
	if stunAddr == "" {
		return []finding{{"stun", "none: the server lists no STUN server ([rtc] turn = false?)"}, {"public address", "unknown"},
			{"nat", "unknown"}, {"nat mapping", "not tested: no STUN server"}}
	}
	pc, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return []finding{{"stun", "not tested: " + err.Error()}}
	}
	defer pc.Close()
	start := time.Now()
	mapped, err := stunBinding(ctx, pc, stunAddr)
	if err != nil {
		return []finding{{"stun", fmt.Sprintf("%s: %v", stunAddr, err)}, {"public address", "unknown (no STUN answer)"},
			{"nat", "unknown"}, {"nat mapping", "not tested: no UDP answer from the server"}}
	}
	out := []finding{{"stun", fmt.Sprintf("%s answers over UDP (in %s)", stunAddr, roundRTT(time.Since(start)))},
		{"public address", mapped.String() + " (server-reflexive)"}}
	var hosts []string
	behind := !mapped.Addr().IsLoopback() // a server on this machine; HostCandidates leaves loopback out
	for _, c := range peer.HostCandidates(0) {
		if ap, err := netip.ParseAddrPort(c.Addr); err == nil {
			hosts = append(hosts, ap.Addr().String())
			behind = behind && ap.Addr() != mapped.Addr()
		}
	}
	if behind {
		out = append(out, finding{"nat", fmt.Sprintf("behind NAT (%s is none of this machine's addresses: %s)", mapped.Addr(), strings.Join(hosts, ", "))})
	} else {
		out = append(out, finding{"nat", fmt.Sprintf("none (%s is this machine's own address)", mapped.Addr())})
	}
	return append(out, finding{"nat mapping", natMapping(pc, turnAddr, user, pass, mapped)})
}

// iceServers reads GET /api/rtc/config with the device token.
func iceServers(ctx context.Context, cfg Config) ([]protocol.ICEServer, error) {
	ctx, cancel := context.WithTimeout(ctx, doctorWait)
	defer cancel()
	var rc struct {
		ICEServers []protocol.ICEServer `json:"ice_servers"`
	}
	if err := newClient(cfg.Server, cfg.DeviceToken).call(ctx, http.MethodGet, "/api/rtc/config", nil, &rc); err != nil {
		return nil, fmt.Errorf("GET /api/rtc/config: %w", err)
	}
	return rc.ICEServers, nil
}

// roundRTT rounds a round trip for reading: to 0.1 ms under 10 ms.
func roundRTT(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// stunBinding asks the STUN server at addr for pc's mapped address,
// retransmitting as RFC 5389 does (from 200 ms, doubling) for 2 s.
func stunBinding(ctx context.Context, pc net.PacketConn, addr string) (netip.AddrPort, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	deadline := time.Now().Add(2 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	defer func() { _ = pc.SetReadDeadline(time.Time{}) }() // the socket is ours; a failure shows on the next read
	buf := make([]byte, 1500)
	for wait := 200 * time.Millisecond; time.Now().Before(deadline); wait *= 2 {
		if _, err := pc.WriteTo(req.Raw, raddr); err != nil {
			return netip.AddrPort{}, err
		}
		next := time.Now().Add(wait)
		if next.After(deadline) {
			next = deadline
		}
		_ = pc.SetReadDeadline(next) // a failed deadline shows as a read that waits
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				break
			}
			res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			var xor stun.XORMappedAddress
			if res.Decode() != nil || res.TransactionID != req.TransactionID || xor.GetFrom(res) != nil {
				continue
			}
			ap, _ := netip.AddrFromSlice(xor.IP)
			return netip.AddrPortFrom(ap.Unmap(), uint16(xor.Port)), nil
		}
	}
	return netip.AddrPort{}, errors.New("no answer within 2s (UDP to the server blocked?)")
}

// natMapping tells whether pc's NAT maps it to the same public address
// towards two destinations. The server has one STUN address, so the second
// destination is a TURN relay port of its own: pc allocates one, lets its
// own public IP in (a TURN permission), sends a packet to it from pc, and
// the TURN server says where that packet came from.
func natMapping(pc net.PacketConn, turnAddr, user, pass string, mapped netip.AddrPort) string {
	if turnAddr == "" {
		return "not tested: the server offers one STUN address and no TURN over UDP to compare with"
	}
	c, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: turnAddr, TURNServerAddr: turnAddr, Username: user, Password: pass,
		Conn: pc, RTO: 200 * time.Millisecond, LoggerFactory: &logging.DefaultLoggerFactory{Writer: io.Discard}})
	if err != nil {
		return "not tested: " + err.Error()
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		return "not tested: " + err.Error()
	}
	relay, err := c.Allocate()
	if err != nil {
		return fmt.Sprintf("not tested: the server's TURN at %s gave no relay port (%v)", turnAddr, err)
	}
	defer relay.Close() // deallocates, over pc
	to, ok := relay.LocalAddr().(*net.UDPAddr)
	if !ok {
		return "not tested: the TURN relay has no UDP address"
	}
	if err := c.CreatePermission(net.UDPAddrFromAddrPort(mapped)); err != nil {
		return fmt.Sprintf("not tested: the server's TURN refused a permission for %s (%v)", mapped.Addr(), err)
	}
	buf := make([]byte, 1500)
	for range 5 {
		if _, err := pc.WriteTo([]byte("mesh doctor"), to); err != nil {
			return "not tested: " + err.Error()
		}
		_ = relay.SetReadDeadline(time.Now().Add(400 * time.Millisecond)) // a failed deadline shows as a read that waits
		_, from, err := relay.ReadFrom(buf)
		if err != nil {
			continue
		}
		seen, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		ap := netip.AddrPortFrom(seen.AddrPort().Addr().Unmap(), seen.AddrPort().Port())
		if ap == mapped {
			return fmt.Sprintf("endpoint-independent (%s towards both the STUN port and relay port %d): hole punching can work", mapped, to.Port)
		}
		return fmt.Sprintf("endpoint-dependent, a symmetric NAT (%s towards the STUN port, %s towards relay port %d): "+
			"direct paths need the peer reachable (a port forward of its quic_listen); expect the relay", mapped, ap, to.Port)
	}
	return fmt.Sprintf("not tested: nothing sent to the TURN relay port %s came back", to)
}

// doctorHangUp is the reason in the CONNECTION_CLOSE with which the
// doctor ends its session: the receiving daemon may tell it from a send
// that broke (context.Cause of the connection's context is a remote
// *quic.ApplicationError with this message).
const doctorHangUp = "mesh agent doctor: connection test, no files"

// doctorDial asks for a file session to device to and dials it as
// send-file does, then hangs up without sending a manifest.
func doctorDial(ctx context.Context, cfg Config, dir, to string, log *slog.Logger) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d, err := openDialer(ctx, cfg, dir, true, log)
	if err != nil {
		return "not tested: " + err.Error()
	}
	defer d.close()
	start := time.Now()
	sess, err := newClient(cfg.Server, cfg.DeviceToken).session(ctx, protocol.SessionFile, to, d.cands)
	if err != nil {
		return "no session: " + err.Error()
	}
	asked := time.Since(start)
	start = time.Now()
	ps, err := dialRetry(ctx, d.ep, sess)
	if err != nil {
		return "unreachable: " + err.Error()
	}
	took := time.Since(start)
	_ = ps.Close(doctorHangUp) // the finding is made
	return fmt.Sprintf("%s, connected in %s (session granted in %s)", pathLine(cfg, ps.Path), took.Round(time.Millisecond), asked.Round(time.Millisecond))
}
