package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"mesh/protocol"
)

// ALPN is the TLS application protocol of agent-to-agent QUIC.
const ALPN = "mesh-p2p/1"

// Application error codes in CONNECTION_CLOSE; the reason travels beside them.
const (
	codeDone     quic.ApplicationErrorCode = 0 // normal end, or shutdown
	codeDenied   quic.ApplicationErrorCode = 1 // P2P_DENY; reason is the DenyError's
	codeProtocol quic.ApplicationErrorCode = 2 // no well-formed P2P_HELLO in time
)

// Transport tuning. On loopback one stream is CPU-bound (BenchmarkBareQUIC:
// 330-470 MB/s on 2 cores, whatever the windows from quic-go's 6/15 MiB
// defaults up to 64/96 MiB), so the windows are sized for the WAN, where a
// stream cannot outrun window/RTT: quic-go's 6 MiB stream default caps a
// 100 ms path at 60 MB/s, 32 MiB at 330 MB/s. They also bound the memory a
// peer can pin per connection (48 MiB); quic-go grows them only as needed.
// MaxIdleTimeout notices a vanished peer; keep-alives stop NATs from
// forgetting an idle terminal share.
const (
	maxStreamWindow = 32 << 20
	maxConnWindow   = 48 << 20
	idleTimeout     = 30 * time.Second
	keepAlive       = 15 * time.Second
	closeLinger     = 5 * time.Second // how long the target waits for the initiator to hang up
	maxSessionID    = 128             // bytes; server ids are far shorter
	announceGrace   = 2 * time.Second // how long TLS waits for a session naming the client's certificate
)

// Certificate errors of [Endpoint.Dial]. ErrPeerCertificate: the target's
// certificate is not the one the server handed out for the session.
// ErrCertificateRefused: the target refused this device's certificate, as
// it does when it knows no live session for it (not yet announced, expired,
// used) or when the server holds another fingerprint for this device.
var (
	ErrPeerCertificate    = errors.New("peer certificate does not match the session's fingerprint")
	ErrCertificateRefused = errors.New("the target refused this device's certificate")
)

// Config configures an [Endpoint].
type Config struct {
	Identity         Identity
	DeviceID         string        // this agent's device id
	User             string        // this agent's username; its own user is always accepted
	AcceptFrom       []string      // other usernames that may start sessions here; "*" is anyone
	Sessions         *SessionCache // sessions announced to this device; nil makes an empty one
	Log              *slog.Logger  // nil discards; the caller names the component
	HandshakeTimeout time.Duration // QUIC handshake plus P2P_HELLO/P2P_OK; 0 means 10s
}

// Endpoint is this agent's QUIC side: one [quic.Transport] on one UDP socket
// that both accepts sessions ([Endpoint.Serve]) and starts them
// ([Endpoint.Dial]). It is safe for concurrent use.
type Endpoint struct {
	cfg   Config
	log   *slog.Logger
	tr    *quic.Transport
	rtr   *quic.Transport // over the server's relay; nil without one
	conf  *quic.Config
	rconf *quic.Config // for the relay
	stun  sync.Mutex   // one STUN exchange at a time reads the socket's non-QUIC packets

	relayDelay time.Duration // see SetRelayDelay

	mu     sync.Mutex // guards closed
	closed bool
}

// Session is an admitted session: Stream is the first stream, past
// P2P_OK and ready for the kind's protocol. On the dialing side FromUser is
// this endpoint's User.
type Session struct {
	Session  protocol.P2PSession
	FromUser string
	Conn     *quic.Conn
	Stream   *quic.Stream
	Path     Path // how the two agents reach each other

	accepted bool // this side is the target
}

// Close ends the session with CONNECTION_CLOSE (code 0, reason), which drops
// whatever the peer has not yet received. The initiator hangs up: on its
// side Close is immediate, so read the target's last answer first. On the
// target's side Close first ends Stream's write side and waits (up to 5s)
// for the initiator to hang up, so the target's last answer arrives.
func (p *Session) Close(reason string) error {
	if p.accepted {
		_ = p.Stream.Close() // FIN; an error means it was closed already
		linger(context.Background(), p.Conn)
	}
	return p.Conn.CloseWithError(codeDone, reason)
}

// NewEndpoint returns an endpoint on pc, which the caller keeps and closes
// after [Endpoint.Close]. A *net.UDPConn gets quic-go's batching and GSO;
// wrapped conns lose about half the throughput.
func NewEndpoint(cfg Config, pc net.PacketConn) (*Endpoint, error) {
	if len(cfg.Identity.Cert.Certificate) == 0 || cfg.Identity.Fingerprint == "" {
		return nil, errors.New("new endpoint: no identity; load one with LoadOrCreateIdentity")
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.Sessions == nil {
		cfg.Sessions = NewSessionCache(nil)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Endpoint{
		cfg:        cfg,
		log:        log,
		relayDelay: relayDelay,
		tr:         &quic.Transport{Conn: pc},
		conf: &quic.Config{
			HandshakeIdleTimeout:       cfg.HandshakeTimeout / 2, // quic-go allows twice this in all
			MaxIdleTimeout:             idleTimeout,
			KeepAlivePeriod:            keepAlive,
			MaxStreamReceiveWindow:     maxStreamWindow,
			MaxConnectionReceiveWindow: maxConnWindow,
		},
	}, nil
}

// Addr is the local address of the endpoint's socket.
func (e *Endpoint) Addr() net.Addr { return e.tr.Conn.LocalAddr() }

// Close stops listening and dialing and drops every connection without
// telling the peers. It does not close the PacketConn.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	return e.tr.Close()
}

// Serve accepts sessions until ctx is done or the endpoint is closed, then
// closes its connections and returns once every handler has returned (nil on
// either). Each connection must open a stream and send P2P_HELLO within
// HandshakeTimeout; a session the cache redeems, whose requester is this
// endpoint's User or in AcceptFrom, is answered P2P_OK and passed to handle
// in the connection's own goroutine. handle's ctx ends with Serve's or the
// connection; when handle returns, the session is closed with
// [Session.Close] unless handle did so. Refusals are answered P2P_DENY
// and logged at info.
func (e *Endpoint) Serve(ctx context.Context, handle func(context.Context, *Session)) error {
	trs := []*quic.Transport{e.tr}
	if e.rtr != nil {
		trs = append(trs, e.rtr)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // closes every connection; see serveConn
	errs := make(chan error, len(trs))
	for _, tr := range trs {
		conf := e.conf
		if tr == e.rtr {
			conf = e.rconf
		}
		ln, err := tr.Listen(e.serverTLS(), conf)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", tr.Conn.LocalAddr(), err)
		}
		defer ln.Close()
		wg.Go(func() { errs <- e.accept(ctx, ln, &wg, handle) })
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errs:
		return err
	}
}

// accept runs one listener's connections until ctx ends or it fails.
func (e *Endpoint) accept(ctx context.Context, ln *quic.Listener, wg *sync.WaitGroup, handle func(context.Context, *Session)) error {
	for {
		conn, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil || e.isClosed() {
				return nil
			}
			return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
		}
		wg.Go(func() { e.serveConn(ctx, conn, handle) })
	}
}

func (e *Endpoint) serveConn(ctx context.Context, conn *quic.Conn, handle func(context.Context, *Session)) {
	defer context.AfterFunc(ctx, func() {
		_ = conn.CloseWithError(codeDone, "target shutting down") // error only if already closed
	})()
	p, err := e.admit(ctx, conn)
	if err != nil {
		e.refuse(ctx, conn, p, err)
		return
	}
	p.Path = pathFrom(conn.RemoteAddr(), p.Session.Endpoints.Initiator)
	hctx, cancel := context.WithCancel(ctx)
	defer context.AfterFunc(conn.Context(), cancel)()
	handle(hctx, p)
	cancel()
	_ = p.Close("session over") // lingers; an error means handle closed it already
}

// admit reads and checks P2P_HELLO. A refusal is a *DenyError; the returned
// session, even then, carries the stream (if any) and the session id.
func (e *Endpoint) admit(ctx context.Context, conn *quic.Conn) (*Session, error) {
	hctx, cancel := context.WithTimeout(ctx, e.cfg.HandshakeTimeout)
	defer cancel()
	str, err := conn.AcceptStream(hctx)
	if err != nil {
		return nil, fmt.Errorf("accept first stream: %w", err)
	}
	p := &Session{Conn: conn, Stream: str, accepted: true}
	_ = str.SetReadDeadline(time.Now().Add(e.cfg.HandshakeTimeout)) // fails only on closed streams
	var h Hello
	if err := readBody(str, TypeHello, &h); err != nil {
		return p, fmt.Errorf("read %s: %w", TypeHello, err)
	}
	p.Session.SessionID = h.SessionID
	if len(h.SessionID) > maxSessionID { // no such session; keep the log line short
		p.Session.SessionID = h.SessionID[:maxSessionID]
		return p, &DenyError{ReasonUnknown}
	}
	pend, err := e.cfg.Sessions.Redeem(h, peerFingerprint(conn))
	switch {
	case err != nil:
		return p, err
	case pend.Session.TargetDeviceID != e.cfg.DeviceID:
		return p, &DenyError{"session is not for this device"}
	case !e.accepts(pend.FromUser):
		return p, &DenyError{Reason(fmt.Sprintf("user %s is not in accept_from on this device", pend.FromUser))}
	}
	p.Session, p.FromUser = pend.Session, pend.FromUser
	if err := WriteControl(str, TypeOK, nil); err != nil {
		return p, err
	}
	_ = str.SetReadDeadline(time.Time{})
	return p, nil
}

func (e *Endpoint) accepts(user string) bool {
	if strings.EqualFold(user, e.cfg.User) && user != "" {
		return true
	}
	return slices.ContainsFunc(e.cfg.AcceptFrom, func(a string) bool {
		return a == "*" || strings.EqualFold(a, user)
	})
}

// refuse ends a connection admit turned down: a *DenyError is answered with
// P2P_DENY (and the same reason in CONNECTION_CLOSE, in case the stream
// frame is lost), anything else just closes.
func (e *Endpoint) refuse(ctx context.Context, conn *quic.Conn, p *Session, err error) {
	log := e.log.With("remote", conn.RemoteAddr().String())
	if p != nil {
		log = log.With("session_id", p.Session.SessionID)
	}
	var deny *DenyError
	if !errors.As(err, &deny) {
		log.Info("peer handshake failed", "err", err)
		_ = conn.CloseWithError(codeProtocol, "no valid "+TypeHello) // error only if already closed
		return
	}
	reason := string(deny.Reason)
	log.Info("peer denied", "reason", reason)
	if WriteControl(p.Stream, TypeDeny, Deny{Reason: reason}) == nil && p.Stream.Close() == nil {
		linger(ctx, conn)
	}
	_ = conn.CloseWithError(codeDenied, reason) // error only if already closed
}

// linger waits until the peer closes conn, ctx ends or closeLinger passes, so
// the last data the target wrote can arrive before CONNECTION_CLOSE.
func linger(ctx context.Context, conn *quic.Conn) {
	t := time.NewTimer(closeLinger)
	defer t.Stop()
	select {
	case <-conn.Context().Done():
	case <-ctx.Done():
	case <-t.C:
	}
}

// Dial connects to s's target over the best path that answers: every
// candidate of the target at once, then the server's relay (when the
// endpoint has one) after a second or when no candidate is left. Each
// path checks the target's certificate against the session's fingerprint
// before anything is sent; the first to complete its handshake redeems
// the session with P2P_HELLO, and Session.Path says which it was. A
// refusal is a *DenyError; other errors say what was tried. The caller
// closes the returned session.
func (e *Endpoint) Dial(ctx context.Context, s protocol.P2PSession) (*Session, error) {
	t := s.Endpoints.Target
	if !protocol.ValidFingerprint(t.Fingerprint) {
		return nil, fmt.Errorf("session %s: target device %s announced no certificate fingerprint; restart 'mesh agent run' there", s.SessionID, s.TargetDeviceID)
	}
	targets := e.targets(t)
	if len(targets) == 0 && e.rtr == nil {
		return nil, fmt.Errorf("session %s: target device %s has no QUIC address (%q port %d); is 'mesh agent run' running there?",
			s.SessionID, s.TargetDeviceID, t.IP, t.Port)
	}
	conn, won, err := e.race(ctx, s, targets)
	where := net.JoinHostPort(t.IP, strconv.Itoa(t.Port))
	if err != nil {
		return nil, dialError(where, err)
	}
	where = won.addr.String()
	p, err := e.hello(ctx, conn, s)
	if err != nil {
		code, msg := codeDone, "giving up"
		if errors.Is(err, ErrProtocol) {
			code, msg = codeProtocol, "bad answer to "+TypeHello
		}
		_ = conn.CloseWithError(code, msg) // error only if already closed
		return nil, dialError(where, err)
	}
	p.Path = won.path
	return p, nil
}

func (e *Endpoint) hello(ctx context.Context, conn *quic.Conn, s protocol.P2PSession) (*Session, error) {
	hctx, cancel := context.WithTimeout(ctx, e.cfg.HandshakeTimeout)
	defer cancel()
	str, err := conn.OpenStreamSync(hctx)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	_ = str.SetReadDeadline(time.Now().Add(e.cfg.HandshakeTimeout)) // fails only on closed streams
	stop := context.AfterFunc(hctx, func() { _ = str.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	h := Hello{SessionID: s.SessionID, Token: s.SessionToken, DeviceID: e.cfg.DeviceID, Kind: s.Kind}
	if err := WriteControl(str, TypeHello, h); err != nil {
		return nil, err
	}
	if err := readBody(str, TypeOK, nil); err != nil {
		var app *quic.ApplicationError
		if errors.As(err, &app) && app.Remote && app.ErrorCode == codeDenied {
			return nil, &DenyError{Reason: Reason(app.ErrorMessage)}
		}
		if hctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w (no answer to %s within %s)", hctx.Err(), TypeHello, e.cfg.HandshakeTimeout)
		}
		return nil, fmt.Errorf("read answer to %s: %w", TypeHello, err)
	}
	if !stop() { // the deadline fired just after P2P_OK arrived
		return nil, fmt.Errorf("read answer to %s: %w", TypeHello, hctx.Err())
	}
	_ = str.SetReadDeadline(time.Time{})
	return &Session{Session: s, FromUser: e.cfg.User, Conn: conn, Stream: str}, nil
}

// dialError explains a failed dial in terms of what the user can do.
func dialError(hostport string, err error) error {
	var deny *DenyError
	var te *quic.TransportError
	var idle *quic.IdleTimeoutError
	var hs *quic.HandshakeTimeoutError
	var paths *pathsError
	switch {
	case errors.As(err, &deny):
		return err
	case errors.As(err, &paths) && len(paths.errs) == 1: // one path: say what went wrong on it
		return dialError(hostport, paths.errs[0])
	case errors.As(err, &paths):
		return fmt.Errorf("no path to the target answered (%w); is 'mesh agent run' running there?", err)
	case errors.Is(err, ErrPeerCertificate):
		return fmt.Errorf("dial %s: %w; the agent answering there is not the session's target (a stale address?), ask for a new session", hostport, err)
	case errors.As(err, &te) && te.Remote && te.ErrorCode >= 0x100 && te.ErrorCode < 0x200:
		return fmt.Errorf("dial %s: %w (%w); it has no live session for this device: ask for a new session, and if that fails too, restart this device's agent so the server learns its certificate", hostport, ErrCertificateRefused, err)
	case errors.As(err, &idle), errors.As(err, &hs), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("dial %s: no answer (%w); is 'mesh agent run' running on the target, and does UDP get through to %[1]s (firewall, NAT)?", hostport, err)
	}
	return fmt.Errorf("dial %s: %w", hostport, err)
}

func peerFingerprint(conn *quic.Conn) string {
	certs := conn.ConnectionState().TLS.PeerCertificates
	if len(certs) == 0 {
		return ""
	}
	return Fingerprint(certs[0].Raw)
}

func (e *Endpoint) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}
