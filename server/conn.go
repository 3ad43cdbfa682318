package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"mesh/protocol"
	"mesh/store"
)

const (
	writeWait  = 10 * time.Second // a write blocked this long means the peer stalled: drop it
	pongWait   = 60 * time.Second // no frame (pong included) for this long: dead peer
	pingPeriod = 25 * time.Second
	lingerWait = 2 * time.Second // how long a closing session waits for the peer's close
	// maxPending is how many events a session may fall behind by before it
	// is dropped. Events are shared between recipients, so this bounds
	// pointers, not bytes, per session.
	maxPending = 4096
	// sendBuffer caps the kernel's send buffer per session. Autotuning would
	// let a stalled client park megabytes in the kernel before its queue
	// ever filled; chat needs little per-connection throughput.
	sendBuffer = 128 << 10
)

// conn is one WebSocket session. Its reader runs the client's requests in
// order. Writes never block a publisher: events are queued, and a flusher
// goroutine, started only while there is something to write, sends them
// in batches (one writev). An idle session thus costs one goroutine.
type conn struct {
	hub     *hub
	log     *slog.Logger
	on      connHooks
	ws      *websocket.Conn
	nc      net.Conn // the socket under ws; frames are written to it directly
	user    store.User
	limiter *rate.Limiter
	readEnd chan struct{} // closed when the reader has stopped reading
	done    chan struct{} // closed when the socket is closed
	shut    sync.Once     // closes the socket and done

	// device is the agent this session authenticated as (by device token);
	// its ID is empty for a user's own sessions (browsers, scripts).
	device store.Device
	ip     string // the client's address as the server sees it
	seq    uint64 // the order sessions opened in; set by hub.add under hub.mu
	// sharing is set once the session shares a terminal (terminal.open): it
	// is then a share-terminal process, not the device's agent daemon.
	sharing atomic.Bool
	// shareLimit bounds a sharer's terminal output in bytes rather than
	// frames: a busy program's output is many frames, all legitimate. Set
	// with sharing, used by the reader goroutine only.
	shareLimit *rate.Limiter

	mu          sync.Mutex // guards the fields below
	pending     []frame
	inHand      int   // frames the flusher has taken but not yet written
	ready       bool  // upgraded: ws and nc are set and may be written
	writing     bool  // a flusher goroutine is running
	closing     bool  // a close frame is queued; nothing more is accepted
	closeFrame  frame // that close frame
	deviceID    string
	quicPort    int
	fingerprint string
	candidates  []protocol.Candidate // where its QUIC socket may be reached
	rbuf        []byte               // readLoop's, reused for every message
}

// connHooks are what a session hands its frames to and tells of its end,
// so that a conn needs only them, the hub and a logger, not the Server.
type connHooks struct {
	request   func(*conn, protocol.Envelope) // one decoded text frame
	termData  func(*conn, []byte)            // one binary frame: terminal bytes
	relayData func(*conn, []byte)            // one relay frame: QUIC datagrams between agents
	ended     func(*conn)                    // the hub has dropped the session
}

// newUpgrader: small buffers and a shared write pool keep idle sessions
// cheap (measured: 7.8 KiB per connection against 25.7 KiB with gorilla's
// defaults, counting the return from the handler after the upgrade).
// newUpgrader upgrades with readBuffer bytes of read buffer: 512 for
// people's sessions (memory per idle session), 64 KiB for agents, whose
// relay frames are tens of KiB.
func newUpgrader(readBuffer int) *websocket.Upgrader {
	return &websocket.Upgrader{
		ReadBufferSize:  readBuffer,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     func(*http.Request) bool { return true }, // originAllowed answers first, with a JSON error
	}
}

// websocket upgrades an authenticated request. The handler returns right
// after the upgrade so net/http's per-request buffers are freed.
func (s *Server) websocket(c echo.Context) error {
	if !s.originAllowed(c.Request()) {
		return refuse(kindForbidden, codeOriginForbidden,
			"origin %q may not open a WebSocket; set [server] public_url to the address users open, or add the origin to allowed_origins",
			c.Request().Header.Get("Origin"))
	}
	cn := &conn{
		hub: s.hub, log: s.log, on: s.connHooks(),
		user: currentUser(c), ip: c.RealIP(),
		limiter: rate.NewLimiter(rate.Limit(s.cfg.HTTP.WSRate), s.cfg.HTTP.WSBurst),
		readEnd: make(chan struct{}), done: make(chan struct{}),
	}
	if d, ok := currentDevice(c); ok {
		cn.device, cn.deviceID = d, d.ID
	}
	// Registered before the upgrade answers, so every event published after
	// the client sees 101 reaches it; until then events only queue.
	first, err := s.hub.add(cn, s.cfg.HTTP.MaxSessionsPerUser, s.cfg.HTTP.MaxSessionsPerIP)
	switch {
	case errors.Is(err, errShuttingDown):
		return refuse(kindUnavailable, codeShuttingDown, "the server is shutting down; reconnect shortly")
	case errors.Is(err, errUserSessions):
		s.log.Info("websocket refused: too many sessions", "user", cn.user.Username, "ip", cn.ip, "cap", s.cfg.HTTP.MaxSessionsPerUser)
		return refuse(kindRateLimited, codeTooManySessions,
			"you have %d sessions open, the most this server allows per user; close some tabs or agents (or ask the admin to raise [server] max_sessions_per_user)",
			s.cfg.HTTP.MaxSessionsPerUser)
	case errors.Is(err, errIPSessions):
		s.log.Info("websocket refused: too many sessions", "user", cn.user.Username, "ip", cn.ip, "cap", s.cfg.HTTP.MaxSessionsPerIP)
		return refuse(kindRateLimited, codeTooManySessions,
			"%d sessions are open from your address, the most this server allows; close some (or ask the admin to raise [server] max_sessions_per_ip)",
			s.cfg.HTTP.MaxSessionsPerIP)
	}
	up := s.upgrader
	if cn.device.ID != "" {
		up = s.agentUpgrader
	}
	ws, err := up.Upgrade(c.Response(), c.Request(), nil)
	if err != nil {
		s.hub.remove(cn)
		cn.closeSocket()
		return nil // the upgrader has answered the client
	}
	if s.afterUpgrade != nil {
		s.afterUpgrade()
	}
	nc := ws.NetConn()
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(sendBuffer) // a tuning; the default works too
	}
	cn.mu.Lock()
	cn.ws, cn.nc, cn.ready = ws, nc, true
	cn.startFlush()
	s.log.Debug("websocket opened", "user", cn.user.Username, "ip", c.RealIP())
	if first {
		s.hub.presence(c.Request().Context(), cn.user, true)
	}
	go cn.readLoop()
	return nil
}

// connHooks are the Server's handlers for its sessions.
func (s *Server) connHooks() connHooks {
	return connHooks{request: s.dispatch, termData: s.onTermFrame, relayData: s.onRelayFrame, ended: s.dropTerminals}
}

// enqueue queues f without waiting. A session more than maxPending frames
// behind has stopped reading and is dropped with 1013 (it can resume with
// room.sync).
func (cn *conn) enqueue(f frame) {
	cn.mu.Lock()
	if cn.closing {
		cn.mu.Unlock()
		return
	}
	if len(cn.pending)+cn.inHand >= maxPending {
		cn.mu.Unlock()
		if cn.close(websocket.CloseTryAgainLater, "too slow: reconnect and resume with room.sync") {
			cn.log.Info("websocket dropped: client too slow", "user", cn.user.Username, "queued", maxPending)
		}
		return
	}
	cn.pending = append(cn.pending, f)
	cn.startFlush()
}

// startFlush starts the flusher unless one runs or the upgrade is not
// done yet; cn.mu must be held, and is released.
func (cn *conn) startFlush() {
	start := cn.ready && !cn.writing
	if start {
		cn.writing = true
	}
	cn.mu.Unlock()
	if start {
		go cn.flush()
	}
}

// close queues a close frame with code and reason after what is queued (a
// slow session's backlog is dropped instead) and refuses anything more; the
// socket closes once the frame is out and the peer answered, or soon after.
// Only the first call counts, and it alone returns true.
func (cn *conn) close(code int, reason string) (first bool) {
	cn.mu.Lock()
	if cn.closing {
		cn.mu.Unlock()
		return false
	}
	cn.closing = true
	if code == websocket.CloseTryAgainLater {
		cn.pending = nil // the backlog would only delay the close
	}
	cn.closeFrame = closeFrame(code, reason)
	cn.pending = append(cn.pending, cn.closeFrame)
	cn.startFlush()
	return true
}

// flush writes what is queued, batch by batch, and exits when the queue is empty.
func (cn *conn) flush() {
	for {
		cn.mu.Lock()
		batch := cn.pending
		cn.pending, cn.inHand = nil, len(batch)
		closing := cn.closing
		if len(batch) == 0 {
			cn.writing = false
			cn.mu.Unlock()
			return
		}
		last := closing && &batch[len(batch)-1][0] == &cn.closeFrame[0]
		cn.mu.Unlock()

		wait := writeWait // a write blocked this long means a stalled peer
		if closing {
			wait = time.Second
		}
		_ = cn.nc.SetWriteDeadline(time.Now().Add(wait)) // a failed deadline shows up as a failed write
		bufs := make(net.Buffers, len(batch))
		for i, f := range batch {
			bufs[i] = f
		}
		_, err := bufs.WriteTo(cn.nc)
		for _, f := range batch {
			recycle(f)
		}
		if err != nil {
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() && !closing {
				cn.log.Info("websocket dropped: client stalled", "user", cn.user.Username, "blocked", wait)
			}
			cn.closeSocket() // the reader notices and cleans up
			return
		}
		if last {
			// Closing a socket with unread input resets it and can lose the
			// frames just sent: wait for the peer's close first.
			select {
			case <-cn.readEnd:
			case <-time.After(lingerWait):
			}
			cn.closeSocket()
			return
		}
	}
}

// closeSocket closes the connection at once.
func (cn *conn) closeSocket() {
	cn.shut.Do(func() {
		if cn.nc != nil { // nil when the upgrade failed
			_ = cn.nc.Close() // nothing to do about a failed close
		}
		close(cn.done)
	})
}

func (cn *conn) readLoop() {
	defer func() {
		close(cn.readEnd)
		cn.close(websocket.CloseNormalClosure, "")
		select {
		case <-cn.done:
		case <-time.After(2 * lingerWait):
			cn.closeSocket()
		}
		last := cn.hub.remove(cn)
		cn.on.ended(cn) // after remove: a watcher told the share ended finds the device set updated
		if last {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			cn.hub.presence(ctx, cn.user, false)
		}
		cn.log.Debug("websocket closed", "user", cn.user.Username)
	}()
	_ = cn.ws.SetReadDeadline(time.Now().Add(pongWait)) // a failed deadline shows up as a failed read
	cn.ws.SetPongHandler(func(string) error { return cn.ws.SetReadDeadline(time.Now().Add(pongWait)) })
	// The peer's close is answered through the queue like every frame
	// (gorilla's default handler would write one of its own, and the
	// deferred close below a second: browsers report that as an error).
	cn.ws.SetCloseHandler(func(code int, _ string) error {
		if code == websocket.CloseNoStatusReceived {
			code = websocket.CloseNormalClosure
		}
		cn.close(code, "")
		return nil
	})
	for {
		mt, r, err := cn.ws.NextReader()
		if err != nil {
			return
		}
		cn.mu.Lock()
		closing := cn.closing
		cn.mu.Unlock()
		if closing { // read only to find the peer's close
			_ = cn.ws.SetReadDeadline(time.Now().Add(lingerWait)) // as above
			_, _ = io.Copy(io.Discard, r)                         // errors end the next NextReader
			continue
		}
		_ = cn.ws.SetReadDeadline(time.Now().Add(pongWait)) // as above
		b, err := cn.readFrame(r)
		if err != nil {
			return
		}
		if len(b) > protocol.MaxFrame {
			cn.reply("", protocol.CodeFrameTooLarge, "frame is over 64 KiB; the connection is closed")
			cn.close(websocket.CloseMessageTooBig, "frame over 64 KiB")
			continue
		}
		if !cn.allow(mt, b) {
			cn.reply("", protocol.CodeRateLimited, "too many frames; slow down and reconnect")
			cn.close(websocket.ClosePolicyViolation, "rate limit exceeded")
			continue
		}
		if mt == websocket.BinaryMessage && len(b) > 0 && b[0] == protocol.PeerPackets {
			cn.on.relayData(cn, b) // small and frequent: a goroutine each would cost more than it
			continue
		}
		// Decoding and handling run on a short-lived goroutine so the
		// reader's own stack, kept by every idle session, stays small.
		handled := make(chan struct{})
		go func() {
			defer close(handled)
			if mt == websocket.BinaryMessage {
				cn.on.termData(cn, b)
				return
			}
			env, err := protocol.Decode(b)
			if err != nil {
				cn.reply(env.ID, protocol.ErrorCode(err), err.Error())
				return
			}
			cn.on.request(cn, env)
		}()
		<-handled
	}
}

// Terminal output a sharer may send: far above what a terminal produces
// (a PTY's output measured ~24 MB/s flat out), low enough to stop a flood.
const (
	shareBytesPerSec = 32 << 20
	shareBurst       = 64 << 20
)

// allow applies the rate limit to one message of type mt: relay frames
// are charged by the relay (which drops what is over), a sharer's binary
// output counts bytes, everything else counts frames.
func (cn *conn) allow(mt int, b []byte) bool {
	switch {
	case mt == websocket.BinaryMessage && len(b) > 0 && b[0] == protocol.PeerPackets:
		return true
	case mt == websocket.BinaryMessage && cn.shareLimit != nil:
		return cn.shareLimit.AllowN(time.Now(), len(b))
	}
	return cn.limiter.Allow()
}

// reply sends system.error to this session only.
func (cn *conn) reply(refID, code, msg string) {
	ev, err := cn.hub.event(protocol.TypeSystemError, "", protocol.Error{Code: code, Message: msg, RefID: refID})
	if err != nil {
		cn.log.Error("encode system.error", "err", err)
		return
	}
	cn.enqueue(ev)
}

// sendTo queues one event for this session only.
func (cn *conn) sendTo(t protocol.Type, payload any) {
	ev, err := cn.hub.event(t, cn.user.Username, payload)
	if err != nil {
		cn.log.Error("encode event", "type", t, "err", err)
		return
	}
	cn.enqueue(ev)
}
