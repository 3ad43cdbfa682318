package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
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
// order; its writer is the only goroutine that writes, fed by a bounded
// queue, so a slow client never blocks anyone who publishes to it.
type conn struct {
	s       *Server
	ws      *websocket.Conn
	user    store.User
	limiter *rate.Limiter
	wake    chan struct{} // capacity 1: the writer has something to do
	quit    chan struct{} // closed to stop the writer
	readEnd chan struct{} // closed when the reader has stopped reading
	done    chan struct{} // closed when the writer has closed the socket
	once    sync.Once

	// device is the agent this session authenticated as (by device token);
	// its ID is empty for a user's own sessions (browsers, scripts).
	device store.Device
	ip     string // the client's address as the server sees it

	mu          sync.Mutex // guards pending, inHand, closeCode, closeReason, deviceID, quicPort, fingerprint
	pending     []*websocket.PreparedMessage
	inHand      int // events the writer has taken but not yet written
	closeCode   int
	closeReason string
	deviceID    string // as announced in system.hello (for a device session: its id)
	quicPort    int
	fingerprint string
}

var wsUpgrader = websocket.Upgrader{
	// Small buffers and a shared write pool keep idle sessions cheap (FACTS.md).
	ReadBufferSize:  512,
	WriteBufferSize: 4096,
	WriteBufferPool: &sync.Pool{},
}

// websocket upgrades an authenticated request. The handler returns right
// after the upgrade so net/http's per-request buffers are freed.
func (s *Server) websocket(c echo.Context) error {
	if !s.originAllowed(c.Request()) {
		return errorf(http.StatusForbidden, "origin_forbidden",
			"origin %q may not open a WebSocket; add it to [server] allowed_origins", c.Request().Header.Get("Origin"))
	}
	up := wsUpgrader
	up.CheckOrigin = func(*http.Request) bool { return true } // checked above, with a JSON error
	ws, err := up.Upgrade(c.Response(), c.Request(), nil)
	if err != nil {
		return nil // the upgrader has answered the client
	}
	if tc, ok := ws.NetConn().(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(sendBuffer) // a tuning; the default works too
	}
	cn := &conn{
		s: s, ws: ws, user: currentUser(c), ip: c.RealIP(),
		limiter: rate.NewLimiter(rate.Limit(s.cfg.HTTP.WSRate), s.cfg.HTTP.WSBurst),
		wake:    make(chan struct{}, 1), quit: make(chan struct{}),
		readEnd: make(chan struct{}), done: make(chan struct{}),
	}
	if d, ok := currentDevice(c); ok {
		cn.device, cn.deviceID = d, d.ID
	}
	first, ok := s.hub.add(cn)
	if !ok {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		_ = ws.Close() // shutting down; nothing to report
		return nil
	}
	s.log.Debug("websocket opened", "user", cn.user.Username, "ip", c.RealIP())
	if first {
		s.hub.presence(c.Request().Context(), cn.user, true)
	}
	go cn.writeLoop()
	go cn.readLoop()
	return nil
}

// originAllowed lets non-browser clients (no Origin) through, and browsers
// only from the server's own origin or the configured list.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	if pu, err := url.Parse(s.cfg.HTTP.PublicURL); err == nil && s.cfg.HTTP.PublicURL != "" &&
		strings.EqualFold(pu.Scheme+"://"+pu.Host, u.Scheme+"://"+u.Host) {
		return true
	}
	for _, o := range s.cfg.HTTP.AllowedOrigins {
		if strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return true
		}
	}
	return false
}

// enqueue hands ev to the writer without waiting. A session more than
// maxPending events behind has stopped reading and is dropped (it can
// resume with room.sync).
func (c *conn) enqueue(ev *websocket.PreparedMessage) {
	c.mu.Lock()
	full := len(c.pending)+c.inHand >= maxPending
	if !full {
		c.pending = append(c.pending, ev)
	}
	c.mu.Unlock()
	if full {
		if c.close(websocket.CloseTryAgainLater, "too slow: reconnect and resume with room.sync") {
			c.s.log.Info("websocket dropped: client too slow", "user", c.user.Username, "queued", maxPending)
		}
		return
	}
	select {
	case c.wake <- struct{}{}:
	default: // the writer is already due to look
	}
}

// close asks the writer to flush what is queued, send a close frame with
// code and reason, and close the socket. Safe to call many times; only
// the first call counts, and it alone returns true.
func (c *conn) close(code int, reason string) (first bool) {
	c.once.Do(func() {
		first = true
		c.mu.Lock()
		c.closeCode, c.closeReason = code, reason
		c.mu.Unlock()
		close(c.quit)
	})
	return first
}

// take returns what is queued and empties the queue; an idle session holds
// no queue memory.
func (c *conn) take() []*websocket.PreparedMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	evs := c.pending
	c.pending = nil
	c.inHand = len(evs)
	return evs
}

// wrote counts one taken event as written.
func (c *conn) wrote() {
	c.mu.Lock()
	c.inHand--
	c.mu.Unlock()
}

func (c *conn) writeLoop() {
	ping := time.NewTicker(pingPeriod)
	defer func() {
		ping.Stop()
		_ = c.ws.Close() // ends the read loop too
		close(c.done)
	}()
	for {
		select {
		case <-c.wake:
			for _, ev := range c.take() {
				_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait)) // a failed deadline shows up as a failed write
				if c.ws.WritePreparedMessage(ev) != nil {
					c.close(websocket.CloseAbnormalClosure, "")
					return
				}
				c.wrote()
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				c.close(websocket.CloseAbnormalClosure, "")
				return
			}
		case <-c.quit:
			c.finish()
			return
		}
	}
}

// finish sends what was queued before close (a system.error, say) and the
// close frame within one short deadline, so a stalled peer gets nothing
// more, then waits briefly for the peer's close: closing a socket with
// unread input would reset it and lose the frames just sent.
func (c *conn) finish() {
	_ = c.ws.SetWriteDeadline(time.Now().Add(time.Second)) // a failed deadline shows up as a failed write
	c.mu.Lock()
	code, reason := c.closeCode, c.closeReason
	c.mu.Unlock()
	evs := c.take()
	if code == websocket.CloseTryAgainLater {
		evs = nil // dropped for being slow: the backlog would only delay the close
	}
	for _, ev := range evs {
		if c.ws.WritePreparedMessage(ev) != nil {
			return
		}
	}
	msg := websocket.FormatCloseMessage(code, reason)
	if c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)) != nil {
		return
	}
	select {
	case <-c.readEnd:
	case <-time.After(lingerWait):
	}
}

func (c *conn) readLoop() {
	defer func() {
		c.close(websocket.CloseNormalClosure, "")
		close(c.readEnd)
		<-c.done
		if c.s.hub.remove(c) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c.s.hub.presence(ctx, c.user, false)
		}
		c.s.log.Debug("websocket closed", "user", c.user.Username)
	}()
	_ = c.ws.SetReadDeadline(time.Now().Add(pongWait)) // a failed deadline shows up as a failed read
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		select {
		case <-c.quit: // closing: read only to find the peer's close
			_ = c.ws.SetReadDeadline(time.Now().Add(lingerWait)) // as above
			_, _ = io.Copy(io.Discard, r)                        // errors end the next NextReader
			continue
		default:
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(pongWait)) // as above
		b, err := io.ReadAll(io.LimitReader(r, protocol.MaxFrame+1))
		if err != nil {
			return
		}
		if len(b) > protocol.MaxFrame {
			c.reply("", protocol.CodeFrameTooLarge, "frame is over 64 KiB; the connection is closed")
			c.close(websocket.CloseMessageTooBig, "frame over 64 KiB")
			continue
		}
		if !c.limiter.Allow() {
			c.reply("", protocol.CodeRateLimited, "too many frames; slow down and reconnect")
			c.close(websocket.ClosePolicyViolation, "rate limit exceeded")
			continue
		}
		env, err := protocol.Decode(b)
		if err != nil {
			c.reply(env.ID, protocol.ErrorCode(err), err.Error())
			continue
		}
		c.s.dispatch(c, env)
	}
}

// reply sends system.error to this session only.
func (c *conn) reply(refID, code, msg string) {
	ev, err := c.s.hub.event(protocol.TypeSystemError, "", protocol.Error{Code: code, Message: msg, RefID: refID})
	if err != nil {
		c.s.log.Error("encode system.error", "err", err)
		return
	}
	c.enqueue(ev)
}

// sendTo queues one event for this session only.
func (c *conn) sendTo(t protocol.Type, payload any) {
	ev, err := c.s.hub.event(t, c.user.Username, payload)
	if err != nil {
		c.s.log.Error("encode event", "type", t, "err", err)
		return
	}
	c.enqueue(ev)
}
