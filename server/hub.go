package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"mesh/protocol"
	"mesh/store"
)

// hub knows who is connected and who is in which room, and fans events out.
// publishRoom and publishUser are the one seam through which every event
// leaves; a multi-node deployment replaces what stands behind them.
type hub struct {
	log   *slog.Logger
	store *store.Store
	now   func() time.Time

	mu      sync.RWMutex                  // guards conns, devices, perIP, opened, rooms, closed
	conns   map[int64]map[*conn]struct{}  // user id → live sessions
	devices map[string]map[*conn]struct{} // store.DeviceKey(device id) → live sessions of that device
	perIP   map[string]int                // client address → live sessions from it
	opened  uint64                        // sessions added so far; numbers them in order
	// rooms caches member ids per room. Entries load under mu's write lock
	// and change under it after the store, so a load never races an update.
	rooms  map[int64]map[int64]struct{}
	closed bool
}

func newHub(st *store.Store, log *slog.Logger, now func() time.Time) *hub {
	return &hub{log: log, store: st, now: now,
		conns: make(map[int64]map[*conn]struct{}), devices: make(map[string]map[*conn]struct{}),
		perIP: make(map[string]int), rooms: make(map[int64]map[int64]struct{})}
}

// event encodes one envelope once for any number of recipients.
func (h *hub) event(t protocol.Type, from string, payload any) (frame, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	env := protocol.Envelope{Type: t, Timestamp: h.now().UTC(), From: from, Payload: b}
	raw, err := protocol.Encode(env)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return textFrame(raw), nil
}

// Reasons [hub.add] refuses a session.
var (
	errShuttingDown = errors.New("the server is shutting down")
	errUserSessions = errors.New("too many sessions for this user")
	errIPSessions   = errors.New("too many sessions from this address")
)

// add registers cn and reports whether it is its user's first session. It
// refuses cn while the server shuts down, and past the caps per user and
// per client address (0: no cap), so that one account or one host cannot
// use up the server's file descriptors.
func (h *hub) add(cn *conn, perUser, perIP int) (first bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return false, errShuttingDown
	case perUser > 0 && len(h.conns[cn.user.ID]) >= perUser:
		return false, errUserSessions
	case perIP > 0 && h.perIP[cn.ip] >= perIP:
		return false, errIPSessions
	}
	h.perIP[cn.ip]++
	set := h.conns[cn.user.ID]
	if set == nil {
		set = make(map[*conn]struct{})
		h.conns[cn.user.ID] = set
	}
	set[cn] = struct{}{}
	h.opened++
	cn.seq = h.opened
	if cn.device.ID != "" {
		ds := h.devices[store.DeviceKey(cn.device.ID)]
		if ds == nil {
			ds = make(map[*conn]struct{})
			h.devices[store.DeviceKey(cn.device.ID)] = ds
		}
		ds[cn] = struct{}{}
	}
	return len(set) == 1, nil
}

// remove unregisters cn and reports whether it was its user's last session.
func (h *hub) remove(cn *conn) (last bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set, ok := h.conns[cn.user.ID]
	if !ok {
		return false
	}
	if _, ok := set[cn]; !ok {
		return false
	}
	delete(set, cn)
	if h.perIP[cn.ip]--; h.perIP[cn.ip] <= 0 {
		delete(h.perIP, cn.ip)
	}
	if ds := h.devices[store.DeviceKey(cn.device.ID)]; ds != nil {
		delete(ds, cn)
		if len(ds) == 0 {
			delete(h.devices, store.DeviceKey(cn.device.ID))
		}
	}
	if len(set) == 0 {
		delete(h.conns, cn.user.ID)
		return true
	}
	return false
}

func (h *hub) online(userID int64) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns[userID]) > 0
}

// present reports whether userID has a session of their own open (a
// browser, a script), not only agents: whether they can read a message or
// answer a call now. Pushes go to users who are not present.
func (h *hub) present(userID int64) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for cn := range h.conns[userID] {
		if cn.device.ID == "" {
			return true
		}
	}
	return false
}

// members returns the member ids of a room, loading them once.
func (h *hub) members(ctx context.Context, roomID int64) (map[int64]struct{}, error) {
	h.mu.RLock()
	m, ok := h.rooms[roomID]
	h.mu.RUnlock()
	if ok {
		return m, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if m, ok := h.rooms[roomID]; ok {
		return m, nil
	}
	ids, err := h.store.MemberIDs(ctx, roomID)
	if err != nil {
		return nil, err
	}
	m = make(map[int64]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	h.rooms[roomID] = m
	return m, nil
}

func (h *hub) isMember(ctx context.Context, roomID, userID int64) (bool, error) {
	m, err := h.members(ctx, roomID)
	if err != nil {
		return false, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	_, ok := m[userID]
	return ok, nil
}

// memberChanged updates the cache after the store changed membership.
func (h *hub) memberChanged(roomID, userID int64, member bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.rooms[roomID]
	if !ok {
		return // loaded fresh from the store when next needed
	}
	if member {
		m[userID] = struct{}{}
	} else {
		delete(m, userID)
	}
}

// publishRoom sends ev to every session of every member of the room,
// except skip (which may be nil).
func (h *hub) publishRoom(ctx context.Context, roomID int64, ev frame, skip *conn) error {
	m, err := h.members(ctx, roomID)
	if err != nil {
		return err
	}
	var targets []*conn // members' sessions only: this is the hot path
	h.mu.RLock()
	for uid := range m {
		for cn := range h.conns[uid] {
			if cn != skip && cn.device.ID == "" { // agents get no chat
				targets = append(targets, cn)
			}
		}
	}
	h.mu.RUnlock()
	for _, cn := range targets {
		cn.enqueue(ev)
	}
	return nil
}

// publishUser sends ev to every session of a user, except skip.
func (h *hub) publishUser(userID int64, ev frame, skip *conn) { h.publishTo(userID, ev, skip, true) }

// publishPeople sends ev to the user's own sessions (browsers, scripts),
// not to their agents: chat, presence and calls are not an agent's business.
func (h *hub) publishPeople(userID int64, ev frame, skip *conn) { h.publishTo(userID, ev, skip, false) }

func (h *hub) publishTo(userID int64, ev frame, skip *conn, agents bool) {
	h.mu.RLock()
	targets := make([]*conn, 0, len(h.conns[userID]))
	for cn := range h.conns[userID] {
		if cn != skip && (agents || cn.device.ID == "") {
			targets = append(targets, cn)
		}
	}
	h.mu.RUnlock()
	for _, cn := range targets {
		cn.enqueue(ev)
	}
}

// sessions returns the live sessions keep accepts; keep runs under h.mu,
// so it must not lock it. Callers act on the result after the lock is gone.
func (h *hub) sessions(keep func(*conn) bool) []*conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*conn
	for _, set := range h.conns {
		for cn := range set {
			if keep(cn) {
				out = append(out, cn)
			}
		}
	}
	return out
}

func all(*conn) bool { return true }

// presence tells everyone who shares a room with u that u came or went.
func (h *hub) presence(ctx context.Context, u store.User, online bool) {
	ev, err := h.event(protocol.TypePresenceUpdate, u.Username, protocol.Presence{User: u.Username, Online: online})
	if err != nil {
		h.log.Error("presence event", "err", err)
		return
	}
	roomIDs, err := h.store.UserRoomIDs(ctx, u.ID)
	if err != nil {
		h.log.Error("presence rooms", "user", u.Username, "err", err)
		return
	}
	seen := map[int64]struct{}{u.ID: {}}
	for _, rid := range roomIDs {
		m, err := h.members(ctx, rid)
		if err != nil {
			h.log.Error("presence members", "room_id", rid, "err", err)
			continue
		}
		h.mu.RLock()
		var ids []int64
		for uid := range m {
			if _, ok := seen[uid]; !ok {
				seen[uid] = struct{}{}
				ids = append(ids, uid)
			}
		}
		h.mu.RUnlock()
		for _, uid := range ids {
			h.publishPeople(uid, ev, nil)
		}
	}
}

// shareRoom reports whether two users are members of a common room.
func (h *hub) shareRoom(ctx context.Context, a, b int64) (bool, error) {
	ids, err := h.store.UserRoomIDs(ctx, a)
	if err != nil {
		return false, err
	}
	for _, rid := range ids {
		if ok, err := h.isMember(ctx, rid, b); err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// pingAll keeps every session alive (and finds dead ones) every pingPeriod
// until ctx is done: one ticker for all, rather than one per session.
func (h *hub) pingAll(ctx context.Context) {
	t := time.NewTicker(pingPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, cn := range h.sessions(all) {
			cn.enqueue(pingFrame)
		}
	}
}

// deviceConn returns the session that speaks for a device (its agent
// daemon), or nil when it is offline: the newest of its sessions that
// announced a QUIC endpoint, else the newest at all. Sessions sharing a
// terminal never count: they serve their share only.
func (h *hub) deviceConn(id string) *conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var best, fallback *conn
	for cn := range h.devices[store.DeviceKey(id)] {
		if cn.sharing.Load() {
			continue
		}
		if fallback == nil || cn.seq > fallback.seq {
			fallback = cn
		}
		if ep := cn.endpoint(); ep.Port != 0 && ep.Fingerprint != "" && (best == nil || cn.seq > best.seq) {
			best = cn
		}
	}
	if best != nil {
		return best
	}
	return fallback
}

// deviceReady reports whether device id's agent is connected and has
// announced its QUIC endpoint: what "online" means for a device, since a
// session to it can be made only then.
func (h *hub) deviceReady(id string) bool {
	cn := h.deviceConn(id)
	if cn == nil {
		return false
	}
	ep := cn.endpoint()
	return ep.Port != 0 && ep.Fingerprint != ""
}

// closeDevice closes every session authenticated as device id.
func (h *hub) closeDevice(id string, code int, reason string) {
	for _, cn := range h.sessions(func(cn *conn) bool { return store.DeviceKey(cn.device.ID) == store.DeviceKey(id) }) {
		cn.close(code, reason)
	}
}

// closeAll closes every session (server shutdown; http.Server.Shutdown
// does not see hijacked connections) and refuses new ones.
func (h *hub) closeAll() {
	h.mu.Lock()
	h.closed = true // add refuses sessions from now on
	h.mu.Unlock()
	open := h.sessions(all)
	for _, cn := range open {
		cn.close(websocket.CloseGoingAway, "server shutting down; reconnect shortly")
	}
	for _, cn := range open {
		<-cn.done
	}
}
