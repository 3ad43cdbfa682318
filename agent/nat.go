package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"mesh/agent/peer"
	"mesh/protocol"
)

// candidateRefresh is how often an agent that accepts sessions asks the
// server's STUN for its mapping again. It also keeps the NAT's mapping
// alive: Linux forgets an idle UDP flow after 30 s unless it saw replies
// (then 120 s), home routers after 30 s to a few minutes.
const candidateRefresh = 25 * time.Second

// relayHeadStart is what direct paths get before the relay when the
// server's STUN did not answer (else peer.Endpoint's default, 1 s).
const relayHeadStart = 400 * time.Millisecond

// stunServer is the first stun: address the server lists for this device.
func stunServer(ctx context.Context, cfg Config) (string, error) {
	var rc struct {
		ICEServers []protocol.ICEServer `json:"ice_servers"`
	}
	if err := newClient(cfg.Server, cfg.DeviceToken).call(ctx, http.MethodGet, "/api/rtc/config", nil, &rc); err != nil {
		return "", err
	}
	for _, s := range rc.ICEServers {
		for _, u := range s.URLs {
			if hp, ok := strings.CutPrefix(u, "stun:"); ok {
				return hp, nil
			}
		}
	}
	return "", fmt.Errorf("the server lists no STUN server ([rtc] turn = false?)")
}

// gather lists ep's candidates: its interfaces' addresses and, when the
// server's STUN answers, its NAT's mapping (learnt on ep's own socket).
func gather(ctx context.Context, cfg Config, ep *peer.Endpoint, log *slog.Logger) []protocol.Candidate {
	addr, err := stunServer(ctx, cfg)
	return gatherWith(ctx, ep, addr, err, log)
}

// gatherWith is gather with the STUN address (or why there is none) known.
func gatherWith(ctx context.Context, ep *peer.Endpoint, addr string, err error, log *slog.Logger) []protocol.Candidate {
	port := 0
	if ua, ok := ep.Addr().(*net.UDPAddr); ok {
		port = ua.Port
	}
	cands := peer.HostCandidates(port)
	if err == nil {
		var c protocol.Candidate
		if c, err = ep.Reflexive(ctx, addr); err == nil && !slices.ContainsFunc(cands, func(h protocol.Candidate) bool { return h.Addr == c.Addr }) {
			cands = append(cands, c)
		}
	}
	if err != nil {
		log.Info("no server-reflexive address: peers behind other NATs will use the relay", "err", err)
	}
	return cands
}

// relayHost names the server in "relayed by HOST".
func relayHost(server string) string {
	if u, err := url.Parse(server); err == nil && u.Host != "" {
		return u.Host
	}
	return server
}

// pathLine is what send-file and join-terminal print before data flows.
func pathLine(cfg Config, p peer.Path) string {
	if p == peer.PathRelay {
		return "path: relayed by " + relayHost(cfg.Server)
	}
	return "path: " + p.String()
}

// dialer is the initiator's side of a session, for send-file and
// join-terminal: its own QUIC socket (the daemon may hold quic_listen),
// the candidates of that socket, and the relay over its own WebSocket.
type dialer struct {
	ep     *peer.Endpoint
	pc     net.PacketConn
	rc     *peer.RelayConn
	cands  []protocol.Candidate
	cancel context.CancelFunc
	done   chan struct{}
}

// openDialer prepares the initiator's side; close it when done. Without
// relay (the low-level send to an address given by hand) it dials only
// the session's addresses.
func openDialer(ctx context.Context, cfg Config, dir string, relay bool, log *slog.Logger) (*dialer, error) {
	id, err := peer.LoadOrCreateIdentity(dir)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return nil, fmt.Errorf("open a UDP socket: %w", err)
	}
	ep, err := peer.NewEndpoint(peer.Config{Identity: id, DeviceID: cfg.DeviceID, User: cfg.Username,
		Sessions: peer.NewSessionCache(nil), Log: log.With("component", "quic")}, pc)
	if err != nil {
		_ = pc.Close() // the endpoint error is the one worth reporting
		return nil, err
	}
	d := &dialer{ep: ep, pc: pc, cancel: func() {}, done: make(chan struct{})}
	if cfg.Server == "" || !relay { // direct only
		close(d.done)
		d.cands = peer.HostCandidates(pc.LocalAddr().(*net.UDPAddr).Port)
		return d, nil
	}
	l := &link{cfg: cfg, log: log.With("component", "relay-link"),
		hello: protocol.Hello{DeviceID: cfg.DeviceID, Fingerprint: id.Fingerprint, Version: protocol.Version}}
	d.rc = peer.NewRelayConn(l.sendBinary)
	l.onRelay = d.rc.Deliver
	ep.UseRelay(d.rc)
	var lctx context.Context
	lctx, d.cancel = context.WithCancel(context.Background())
	go func() { defer close(d.done); _ = l.run(lctx) }() // its errors are logged; the relay is only one path
	var wg sync.WaitGroup
	wg.Go(func() {
		gctx, cancel := context.WithTimeout(ctx, 1200*time.Millisecond) // STUN answers in a round trip
		defer cancel()
		d.cands = gather(gctx, cfg, ep, log)
		if !slices.ContainsFunc(d.cands, func(c protocol.Candidate) bool { return c.Type == protocol.CandidateSrflx }) {
			// No UDP answer from the server: the relay is likely the only
			// way out. Likely, not surely (a slow or busy server): direct
			// paths keep a head start that a 50 ms WAN handshake needs.
			ep.SetRelayDelay(relayHeadStart)
		}
	})
	select { // the relay must be there before the race, or it joins late
	case <-l.connected():
	case <-time.After(3 * time.Second):
		log.Info("the relay link is not up yet; direct paths only until it is")
	case <-ctx.Done():
	}
	wg.Wait()
	return d, nil
}

func (d *dialer) close() {
	_ = d.ep.Close() // closes the connections; the sockets below are ours
	d.cancel()
	<-d.done
	if d.rc != nil {
		_ = d.rc.Close()
	}
	_ = d.pc.Close()
}

// expect is what an agent that accepts sessions does when the server
// announces one: punch towards the initiator's candidates, and tell the
// relay which of this device's sessions speaks for the session.
func expect(ctx context.Context, ep *peer.Endpoint, l *link, s protocol.P2PSession) {
	frame := protocol.AppendRelayPacket(protocol.AppendRelayHeader(nil, s.SessionID), []byte{0}) // not QUIC: dropped at the far end
	l.sendBinary(frame)
	cands := s.Endpoints.Initiator.Candidates
	if ip, port := s.Endpoints.Initiator.IP, s.Endpoints.Initiator.Port; ip != "" && port > 0 {
		cands = append(cands, protocol.Candidate{Type: protocol.CandidateHost, Addr: net.JoinHostPort(ip, fmt.Sprint(port))})
	}
	go ep.Punch(ctx, cands)
}

// announcer keeps an accepting agent's candidates current in its link's
// system.hello, until ctx ends.
func announcer(ctx context.Context, cfg Config, ep *peer.Endpoint, l *link, log *slog.Logger) {
	var last []protocol.Candidate
	var stun string // asked of the server once it answers, not every round
	for {
		var err error
		if stun == "" {
			stun, err = stunServer(ctx, cfg)
		}
		cands := gatherWith(ctx, ep, stun, err, log)
		if !slices.ContainsFunc(cands, func(c protocol.Candidate) bool { return c.Type == protocol.CandidateSrflx }) {
			stun = "" // ask again next round: the server may have moved its STUN port
		}
		if !slices.Equal(cands, last) {
			l.mu.Lock()
			h := l.hello
			l.mu.Unlock()
			h.Candidates = cands
			l.setHello(h)
			log.Info("candidates", "candidates", fmt.Sprint(cands))
			last = cands
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(candidateRefresh):
		}
	}
}
