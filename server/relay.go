package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"mesh/protocol"
	"mesh/store"
)

// The relay carries QUIC datagrams between the two agents of a p2p
// session over their WebSockets when no direct path works: so it works
// wherever the web app does, through any reverse proxy. It reads a frame's
// session id and nothing else; the datagrams are QUIC ciphertext pinned to
// the two devices' certificates, which the relay cannot read or alter
// unnoticed.
const (
	relayIdle     = time.Minute // a pair with no traffic this long is forgotten
	relayPending  = 64          // frames queued to one session before the relay drops (about 4 MiB)
	relaySweepGap = 10 * time.Second
)

// relay is the server's half: the pairs of sessions in use.
type relay struct {
	st   *store.Store
	hub  *hub
	log  *slog.Logger
	now  func() time.Time
	mbps int // per user, 0 = no cap

	mu    sync.Mutex            // guards pairs, users
	pairs map[string]*relayPair // by session id
	users map[int64]*rate.Limiter

	relayed atomic.Int64 // bytes, for the admin
}

// relayPair is one session's two sides on the relay.
type relayPair struct {
	id        string
	userID    int64  // who asked for the session
	initiator string // device key; "" until the first of the user's devices sends
	target    string // device key

	mu       sync.Mutex // guards ini, tgt, initiator
	ini, tgt *conn

	bytes   [2]atomic.Int64 // from the initiator, from the target
	frames  [2]atomic.Int64
	dropped atomic.Int64
	last    atomic.Int64 // unix nanoseconds of the last frame
}

func newRelay(st *store.Store, h *hub, log *slog.Logger, now func() time.Time, mbps int) *relay {
	return &relay{st: st, hub: h, log: log, now: now, mbps: mbps, pairs: map[string]*relayPair{}, users: map[int64]*rate.Limiter{}}
}

// onRelayFrame forwards one relay frame from cn to the other side of its
// session. Frames of devices that are not the session's, of unknown or
// expired sessions, and what is over the sender's bandwidth are dropped.
func (s *Server) onRelayFrame(cn *conn, b []byte) {
	r := s.relay
	id, err := protocol.RelaySessionID(b)
	if err != nil {
		cn.replyLimited(protocol.CodeInvalid, err.Error())
		return
	}
	if cn.device.ID == "" {
		cn.replyLimited(protocol.CodeForbidden, "only an agent's device token may use the relay")
		return
	}
	p, err := r.pair(id, cn)
	if err != nil {
		cn.replyLimited(protocol.CodeNotFound, "no live p2p session "+id+" for the relay; ask for a new session")
		return
	}
	side := p.side(cn)
	if side < 0 {
		if cn.limiter.Allow() { // a flood gets neither an answer nor a log line per frame
			r.log.Info("relay frame refused: not a device of the session", "session_id", id, "device_id", cn.device.ID)
			cn.reply("", protocol.CodeForbidden, "this device is not part of session "+id)
		}
		return
	}
	p.last.Store(time.Now().UnixNano())
	dst := p.other(side, r.hub)
	if dst == nil || !r.allow(cn.user.ID, len(b)) {
		p.dropped.Add(1)
		return
	}
	if f := relayFrame(b); !dst.offer(f) {
		recycle(f)
		p.dropped.Add(1)
		return
	}
	p.bytes[side].Add(int64(len(b)))
	if p.frames[side].Add(1) == 1 && p.frames[1-side].Load() == 0 { // the first frame it carried
		r.log.Info("relay session started", "session_id", id, "from_device", cn.device.ID)
	}
	r.relayed.Add(int64(len(b)))
}

// pair finds or makes the pair of session id, which must be live to start.
// Looking a session up costs a database read, so cn gets as many as its
// frame rate allows: frames for made-up ids cannot make the server busy.
func (r *relay) pair(id string, cn *conn) (*relayPair, error) {
	r.mu.Lock()
	p := r.pairs[id]
	r.mu.Unlock()
	if p != nil {
		return p, nil
	}
	if !cn.limiter.Allow() {
		return nil, errors.New("too many relay frames for sessions not yet known")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sess, err := r.st.SessionByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if !r.now().Before(sess.ExpiresAt) {
		return nil, errors.New("session expired")
	}
	p = &relayPair{id: id, userID: sess.UserID, target: store.DeviceKey(sess.TargetDevice)}
	if sess.InitiatorDevice != "" {
		p.initiator = store.DeviceKey(sess.InitiatorDevice)
	}
	p.last.Store(time.Now().UnixNano())
	r.mu.Lock()
	if q := r.pairs[id]; q != nil { // another frame made it meanwhile
		p = q
	} else {
		r.pairs[id] = p
	}
	r.mu.Unlock()
	return p, nil
}

// side says which end cn is (0 the initiator, 1 the target) and makes cn
// that end's session on the relay; -1 if cn's device is not in the pair.
func (p *relayPair) side(cn *conn) int {
	dev := store.DeviceKey(cn.device.ID)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case dev == p.target:
		p.tgt = cn
		return 1
	case dev == p.initiator, p.initiator == "" && cn.user.ID == p.userID:
		p.initiator, p.ini = dev, cn
		return 0
	}
	return -1
}

// other is the session that gets what side sends: the other end's, or the
// target device's agent before the target has sent anything.
func (p *relayPair) other(side int, h *hub) *conn {
	p.mu.Lock()
	ini, tgt := p.ini, p.tgt
	p.mu.Unlock()
	if side == 1 {
		return ini
	}
	if tgt == nil {
		tgt = h.deviceConn(p.target)
	}
	return tgt
}

// allow charges n relayed bytes to a user's bandwidth.
func (r *relay) allow(userID int64, n int) bool {
	if r.mbps <= 0 {
		return true
	}
	r.mu.Lock()
	l := r.users[userID]
	if l == nil {
		bps := float64(r.mbps) * 1e6 / 8
		l = rate.NewLimiter(rate.Limit(bps), max(int(bps/4), 2*protocol.MaxFrame))
		r.users[userID] = l
	}
	r.mu.Unlock()
	return l.AllowN(time.Now(), n)
}

// run forgets idle pairs, logging what each carried, until ctx ends.
func (r *relay) run(ctx context.Context) {
	t := time.NewTicker(relaySweepGap)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.sweep(time.Now().Add(relayIdle))
			return
		case now := <-t.C:
			r.sweep(now)
		}
	}
}

func (r *relay) sweep(now time.Time) {
	r.mu.Lock()
	var ended []*relayPair
	for id, p := range r.pairs {
		if now.Sub(time.Unix(0, p.last.Load())) >= relayIdle {
			ended = append(ended, p)
			delete(r.pairs, id)
		}
	}
	if len(r.pairs) == 0 {
		clear(r.users) // a user's burst comes back once all their pairs end
	}
	r.mu.Unlock()
	for _, p := range ended {
		if p.frames[0].Load()+p.frames[1].Load() == 0 {
			continue // never carried anything: a direct session's target said hello
		}
		r.log.Info("relay session ended", "session_id", p.id, "bytes_from_initiator", p.bytes[0].Load(),
			"bytes_from_target", p.bytes[1].Load(), "frames_from_initiator", p.frames[0].Load(),
			"frames_from_target", p.frames[1].Load(), "frames_dropped", p.dropped.Load())
	}
}

// offer queues a relay frame unless relayPending frames wait already; a
// relay drops rather than closing a slow agent's session, as a network
// drops datagrams. It reports whether f was queued.
func (cn *conn) offer(f frame) bool {
	cn.mu.Lock()
	if cn.closing || len(cn.pending)+cn.inHand >= relayPending {
		cn.mu.Unlock()
		return false
	}
	cn.pending = append(cn.pending, f)
	cn.startFlush()
	return true
}

// replyLimited is reply for what a flood could repeat: within the
// session's frame rate, else dropped.
func (cn *conn) replyLimited(code, msg string) {
	if cn.limiter.Allow() {
		cn.reply("", code, msg)
	}
}
