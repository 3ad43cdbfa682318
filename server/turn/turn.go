// Package turn is mesh's embedded STUN and TURN server (pion/turn), so
// that calls cross NATs with nothing but `mesh serve`. It owns the TURN
// credentials (the TURN REST convention, see [Credential]), who may
// allocate (a current user, within a quota), where a relay may send (not
// the server's own networks, see package netguard, except its own relay
// ports), each user's relayed bandwidth, ending a user's allocations when
// their credentials end, and the self-check of the public address.
//
// It does not decide who gets credentials: the server's HTTP handlers do.
package turn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pion "github.com/pion/turn/v4"
	"golang.org/x/sys/unix"

	"mesh/server/netguard"
)

// Realm is the TURN realm mesh's credentials are for.
const Realm = "mesh"

// sweepEvery is how often live allocations are checked against their
// users' credentials: the delay before a password change or a deleted
// user ends a relayed call.
const sweepEvery = time.Second

// Config is what the TURN server needs; the server package fills it from
// the [rtc] table.
type Config struct {
	Public     netip.Addr       // the relay address clients are told: the public IP
	BindIP     string           // what relay sockets bind to; "" = every interface
	PortMin    uint16           // relay ports, inclusive
	PortMax    uint16           //
	Secret     []byte           // the HMAC key of [Credential]s
	TTL        time.Duration    // lifetime of a credential for a new allocation
	MaxPerUser int              // allocations one user may hold; 0 = no cap
	UserMbps   int              // relayed megabits per second per user, both ways; 0 = no cap
	Peers      netguard.Guard   // where relays may send, besides the server's own relay ports
	Now        func() time.Time // the clock credentials are checked with; nil = time.Now
	SweepEvery time.Duration    // 0 = sweepEvery
}

// Users is the accounts the TURN server checks credentials against.
type Users interface {
	// CredentialsEnded says when name's credentials were last ended (a
	// password change ends them all); exists is false when there is no
	// such user. It is called for every authenticated TURN request, so it
	// must be cheap.
	CredentialsEnded(ctx context.Context, name string) (at time.Time, exists bool, err error)
}

// Server is one running TURN server. Create it with [Listen]; [Server.Run]
// keeps it until its context ends.
type Server struct {
	cfg     Config
	users   Users
	log     *slog.Logger
	udp     []net.PacketConn // one per core, on one port
	tcp     net.Listener
	pion    *pion.Server
	relays  *relays
	relayed atomic.Int64 // bytes relayed, both ways

	mu      sync.Mutex             // guards allocs, pending, states
	allocs  map[string]*allocation // by client transport ("udp/IP:PORT")
	pending map[string][]time.Time // allocations admitted by the quota, not yet made, by user
	states  map[string]*userState  // by user, while they hold allocations
}

// allocation is one live TURN allocation.
type allocation struct {
	user   string
	issued time.Time // of its credential: expiry minus TTL
	relay  *relayConn
}

// Listen opens the STUN/TURN port on addr, UDP and TCP on the same port
// (with port 0, a free one both ways), and starts serving it.
func Listen(addr string, cfg Config, users Users, log *slog.Logger) (*Server, error) {
	if !cfg.Public.IsValid() || !cfg.Public.Is4() {
		return nil, fmt.Errorf("turn: relay address %v: want an IPv4 address", cfg.Public)
	}
	if cfg.PortMin == 0 || cfg.PortMax < cfg.PortMin {
		return nil, fmt.Errorf("turn: relay ports %d-%d: want MIN-MAX", cfg.PortMin, cfg.PortMax)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = sweepEvery
	}
	udp, tcp, err := listenBoth(addr)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, users: users, log: log, udp: udp, tcp: tcp,
		allocs: map[string]*allocation{}, pending: map[string][]time.Time{}, states: map[string]*userState{}}
	s.relays = &relays{public: cfg.Public.Unmap(), bindIP: cfg.BindIP, min: cfg.PortMin, max: cfg.PortMax, srv: s,
		slots: make([]atomic.Pointer[relayConn], int(cfg.PortMax-cfg.PortMin)+1)}
	if s.relays.bindIP == "" {
		s.relays.bindIP = "0.0.0.0"
	}
	var pcs []pion.PacketConnConfig
	for _, pc := range udp {
		pcs = append(pcs, pion.PacketConnConfig{PacketConn: pc, RelayAddressGenerator: s.relays, PermissionHandler: s.permit})
	}
	s.pion, err = pion.NewServer(pion.ServerConfig{
		Realm:         Realm,
		AuthHandler:   s.auth,
		QuotaHandler:  s.quota,
		LoggerFactory: pionLogs{log},
		EventHandler: pion.EventHandler{
			OnAllocationCreated: s.created,
			OnAllocationDeleted: s.deleted,
		},
		PacketConnConfigs: pcs,
		ListenerConfigs:   []pion.ListenerConfig{{Listener: tcp, RelayAddressGenerator: s.relays, PermissionHandler: s.permit}},
	})
	if err != nil {
		for _, pc := range udp {
			_ = pc.Close() // not served; the pion error is the one to report
		}
		_ = tcp.Close()
		return nil, fmt.Errorf("turn: %w", err)
	}
	return s, nil
}

// listenBoth binds TCP and UDP to one port: TCP first, alone, so that a
// second server on the port fails at once; then one UDP socket per core
// (up to four) sharing the port with SO_REUSEPORT, each read by its own
// pion loop, as coturn does: one socket's loop caps the packet rate.
func listenBoth(addr string) ([]net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("turn listen %q: want host:port", addr)
	}
	const inUse = "is coturn or another mesh running? set [rtc] turn_listen, or turn = false"
	for range 16 { // with port 0, another program may hold the UDP side of the TCP port
		tcp, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("turn: listen tcp %s: %w (%s)", addr, err, inUse)
		}
		p := strconv.Itoa(tcp.Addr().(*net.TCPAddr).Port)
		udps, err := listenUDP(net.JoinHostPort(host, p), min(runtime.GOMAXPROCS(0), 4))
		if err == nil {
			return udps, tcp, nil
		}
		_ = tcp.Close() // retried, or the UDP error is reported
		if port != "0" {
			return nil, nil, fmt.Errorf("turn: listen udp %s: %w (%s)", addr, err, inUse)
		}
	}
	return nil, nil, fmt.Errorf("turn: no port free for both UDP and TCP on %s", host)
}

// udpBuffer is each UDP socket's kernel buffer: a burst of a few
// milliseconds of relayed video survives a busy moment of its loop.
const udpBuffer = 4 << 20

func listenUDP(addr string, n int) ([]net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return errors.Join(err, serr)
	}}
	var out []net.PacketConn
	for range n {
		pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
		if err != nil {
			for _, c := range out {
				_ = c.Close() // the bind error is the one to report
			}
			return nil, err
		}
		if uc, ok := pc.(*net.UDPConn); ok {
			_ = uc.SetReadBuffer(udpBuffer) // capped by net.core.rmem_max; the default works too
			_ = uc.SetWriteBuffer(udpBuffer)
		}
		out = append(out, pc)
	}
	return out, nil
}

// Addr is the UDP address the server listens on (TCP has the same port).
func (s *Server) Addr() *net.UDPAddr { return s.udp[0].LocalAddr().(*net.UDPAddr) }

// Relayed is the number of bytes relayed so far, both directions.
func (s *Server) Relayed() int64 { return s.relayed.Load() }

// Allocations is the number of live allocations.
func (s *Server) Allocations() int { return s.pion.AllocationCount() }

// Credential issues user a credential for a new allocation.
func (s *Server) Credential(user string) Credential {
	return NewCredential(s.cfg.Secret, user, s.cfg.Now(), s.cfg.TTL)
}

// Run ends users' allocations whose credentials ended, until ctx is done;
// then it closes the server and every allocation.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := s.pion.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("turn: close: %w", err)
			}
			return nil
		case <-t.C:
			s.sweep(ctx)
		}
	}
}

// sweep closes the relay sockets of allocations whose user is gone or
// ended their credentials after the allocation's credential was issued;
// pion then deletes the allocation.
func (s *Server) sweep(ctx context.Context) {
	s.mu.Lock()
	live := make([]*allocation, 0, len(s.allocs))
	for _, a := range s.allocs {
		live = append(live, a)
	}
	s.mu.Unlock()
	type standing struct {
		ended  time.Time
		exists bool
	}
	users := map[string]standing{}
	for _, a := range live {
		u, seen := users[a.user]
		if !seen {
			at, exists, err := s.users.CredentialsEnded(ctx, a.user)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("turn credential check", "user", a.user, "err", err)
				}
				return
			}
			u = standing{at, exists}
			users[a.user] = u
		}
		if !u.exists || a.issued.Before(u.ended) {
			s.log.Info("turn allocation ended: credentials ended", "user", a.user, "relay_port", a.relay.port)
			_ = a.relay.Close() // pion sees the read fail and deletes the allocation
		}
	}
}
