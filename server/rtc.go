package server

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"mesh/protocol"
	"mesh/server/netguard"
	"mesh/server/turn"
	"mesh/store"
)

// selfCheckEvery is how old the admin's view of the TURN self-check may get.
const selfCheckEvery = time.Minute

// rtc is how calls (and agents) cross NATs: the embedded TURN server, nil
// with [rtc] turn = false, and what clients are told about it.
type rtc struct {
	turn   *turn.Server
	host   string     // in the stun: and turn: URLs
	public netip.Addr // the relay address
	from   string     // where public came from, for the log and the admin

	mu    sync.Mutex // guards check
	check turn.Check
}

// newRTC starts the embedded TURN server when the config wants it.
func newRTC(cfg Config, st *store.Store, log *slog.Logger) (*rtc, error) {
	r := &rtc{}
	if !cfg.RTC.TURN {
		return r, nil
	}
	r.public, r.from = publicIP(cfg, log)
	r.host = r.public.String()
	if u, err := url.Parse(cfg.HTTP.PublicURL); err == nil && u.Hostname() != "" {
		r.host = u.Hostname()
	}
	key, err := loadOrCreateKey(cfg.turnSecretFile(), "TURN secret", log)
	if err != nil {
		return nil, err
	}
	lo, hi, _ := cfg.RTC.relayPorts()                     // checked by Validate
	allowed, _ := parsePrefixes(cfg.RTC.TURNAllowedPeers) // checked by Validate
	bind, _, _ := net.SplitHostPort(cfg.RTC.TURNListen)
	if a, err := netip.ParseAddr(bind); err != nil || a.IsUnspecified() {
		bind = ""
	}
	r.turn, err = turn.Listen(cfg.RTC.TURNListen, turn.Config{
		Public: r.public, BindIP: bind, PortMin: lo, PortMax: hi,
		// The file's text is the secret, as coturn's static-auth-secret
		// takes it: the same file can serve a coturn beside mesh.
		Secret:     []byte(hex.EncodeToString(key)),
		TTL:        cfg.RTC.TURNCredentialTTL,
		MaxPerUser: cfg.RTC.TURNMaxPerUser, UserMbps: cfg.RTC.TURNUserMbps,
		Peers: netguard.Guard{AllowPrivate: cfg.RTC.TURNAllowPrivatePeers, Allowed: allowed},
		Now:   cfg.now,
	}, st, log.With("component", "turn"))
	if err != nil {
		return nil, err
	}
	log.Info("stun/turn serving", "addr", r.turn.Addr().String(), "transports", "udp,tcp",
		"public_ip", r.public.String(), "public_ip_from", r.from, "relay_ports", cfg.RTC.TURNRelayPorts, "urls_host", r.host)
	return r, nil
}

// publicIP picks the relay address: turn_public_ip, else public_url's host
// (looked up when it is a name), else listen's address, else the first
// address of an interface that is up, else loopback.
func publicIP(cfg Config, log *slog.Logger) (netip.Addr, string) {
	if a, err := netip.ParseAddr(cfg.RTC.TURNPublicIP); err == nil {
		return a, "rtc.turn_public_ip"
	}
	if u, err := url.Parse(cfg.HTTP.PublicURL); err == nil && u.Hostname() != "" {
		if a, err := netip.ParseAddr(u.Hostname()); err == nil && a.Unmap().Is4() {
			return a.Unmap(), "server.public_url"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		as, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", u.Hostname())
		cancel()
		if err == nil && len(as) > 0 {
			return as[0].Unmap(), "server.public_url (DNS)"
		}
		log.Warn("turn: cannot look up the public_url host; set rtc.turn_public_ip", "host", u.Hostname(), "err", err)
	}
	if h, _, err := net.SplitHostPort(cfg.HTTP.Listen); err == nil {
		if a, err := netip.ParseAddr(h); err == nil && a.Unmap().Is4() && !a.IsUnspecified() {
			return a.Unmap(), "server.listen"
		}
	}
	if a, ok := interfaceIP(); ok {
		return a, "network interface"
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1}), "loopback (no other address)"
}

// interfaceIP is the first IPv4 address of an interface that is up, not loopback.
func interfaceIP() (netip.Addr, bool) {
	ifs, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		as, _ := i.Addrs() // an interface without addresses has nothing to offer
		for _, a := range as {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLinkLocalUnicast() {
				return p.Addr(), true
			}
		}
	}
	return netip.Addr{}, false
}

// run keeps the TURN server until ctx ends; it checks once, at start, that
// the public address answers, and logs what it found.
func (r *rtc) run(ctx context.Context, log *slog.Logger) error {
	if r.turn == nil {
		return nil
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		c := r.selfCheck(ctx)
		switch {
		case ctx.Err() != nil:
		case c.OK:
			log.Info("stun/turn self-check passed", "addr", c.Addr, "mapped", c.Mapped)
		default:
			log.Warn("stun/turn self-check failed: calls between networks may not connect; forward UDP and TCP of this port and the relay ports to this machine",
				"addr", c.Addr, "err", c.Error)
		}
	})
	return r.turn.Run(ctx)
}

// selfCheck sends a STUN binding to the public address and keeps the answer.
func (r *rtc) selfCheck(ctx context.Context) turn.Check {
	c := turn.SelfCheck(ctx, net.JoinHostPort(r.public.String(), strconv.Itoa(r.turn.Addr().Port)), 2*time.Second)
	r.mu.Lock()
	r.check = c
	r.mu.Unlock()
	return c
}

// lastCheck is the latest self-check, run again when older than a minute.
func (r *rtc) lastCheck(ctx context.Context) turn.Check {
	r.mu.Lock()
	c := r.check
	r.mu.Unlock()
	if time.Since(c.At) < selfCheckEvery {
		return c
	}
	return r.selfCheck(ctx)
}

// iceServers lists what a client of user's connects through: mesh's own
// STUN and TURN (with a fresh credential of user's) and the configured
// ones. expires is the credential's expiry, zero without one.
func (s *Server) iceServers(user string) (servers []protocol.ICEServer, expires time.Time, err error) {
	servers = []protocol.ICEServer{}
	if t := s.rtc.turn; t != nil {
		c := t.Credential(user)
		hp := net.JoinHostPort(s.rtc.host, strconv.Itoa(t.Addr().Port))
		servers = append(servers,
			protocol.ICEServer{URLs: []string{"stun:" + hp}},
			protocol.ICEServer{URLs: []string{"turn:" + hp + "?transport=udp", "turn:" + hp + "?transport=tcp"},
				Username: c.Username, Credential: c.Password})
		expires = c.Expires
	}
	var stun, turns []string
	for _, u := range s.cfg.RTC.ICEServers {
		if strings.HasPrefix(u, "turn") {
			turns = append(turns, u)
		} else {
			stun = append(stun, u)
		}
	}
	if len(stun) > 0 {
		servers = append(servers, protocol.ICEServer{URLs: stun})
	}
	if len(turns) > 0 {
		ts := protocol.ICEServer{URLs: turns, Username: s.cfg.RTC.TURNUsername}
		if f := s.cfg.RTC.TURNPassFile; f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, time.Time{}, fmt.Errorf("read rtc.turn_password_file: %w", err)
			}
			ts.Credential = strings.TrimSpace(string(b))
		}
		servers = append(servers, ts)
	}
	return servers, expires, nil
}

// rtcAnswer is GET /api/rtc/config.
type rtcAnswer struct {
	ICEServers []protocol.ICEServer `json:"ice_servers"`
	// ICETransportPolicy is RTCPeerConnection's: "relay" when the admin
	// wants calls relayed only (rtc.relay_only), else "all".
	ICETransportPolicy string      `json:"ice_transport_policy"`
	ExpiresAt          *time.Time  `json:"expires_at,omitempty"` // of the TURN credential
	TURN               *turnStatus `json:"turn,omitempty"`       // admins only
}

// turnStatus is what an admin learns of the embedded TURN server.
type turnStatus struct {
	Enabled      bool        `json:"enabled"`
	Listen       string      `json:"listen,omitempty"`
	PublicIP     string      `json:"public_ip,omitempty"`
	PublicIPFrom string      `json:"public_ip_from,omitempty"`
	RelayPorts   string      `json:"relay_ports,omitempty"`
	Allocations  int         `json:"allocations"`
	BytesRelayed int64       `json:"bytes_relayed"`
	Check        *turn.Check `json:"check,omitempty"`
}

// rtcConfig answers GET /api/rtc/config: the ICE servers calls use, with a
// short-lived TURN credential of the caller's.
func (s *Server) rtcConfig(c echo.Context) error {
	u := currentUser(c)
	servers, exp, err := s.iceServers(u.Username)
	if err != nil {
		return err // logged; the browser hears "internal error"
	}
	a := rtcAnswer{ICEServers: servers, ICETransportPolicy: "all"}
	if s.cfg.RTC.RelayOnly {
		a.ICETransportPolicy = "relay"
	}
	if !exp.IsZero() {
		a.ExpiresAt = &exp
	}
	if _, device := currentDevice(c); u.IsAdmin && !device {
		a.TURN = &turnStatus{}
		if t := s.rtc.turn; t != nil {
			chk := s.rtc.lastCheck(c.Request().Context())
			a.TURN = &turnStatus{Enabled: true, Listen: t.Addr().String(), PublicIP: s.rtc.public.String(), PublicIPFrom: s.rtc.from,
				RelayPorts: s.cfg.RTC.TURNRelayPorts, Allocations: t.Allocations(), BytesRelayed: t.Relayed(), Check: &chk}
		}
	}
	return c.JSON(http.StatusOK, a)
}
