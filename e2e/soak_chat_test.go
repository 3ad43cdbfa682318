package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// setupChat registers the users and puts them in rooms of soak.room-size
// (the last room takes the remainder).
func (s *soak) setupChat(t *testing.T) {
	t.Helper()
	n := *soakUsers
	s.users = make([]*soakUser, n)
	err := benchParallel(n, 8, func(i int) error {
		u := &soakUser{name: fmt.Sprintf("u%04d", i), pending: map[string]time.Time{}, acked: map[string]int64{}, seen: map[int64]bool{}}
		tok, err := s.register(u.name)
		u.tok = tok
		s.users[i] = u
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	size := *soakRoomSize
	groups := n / size
	err = benchParallel(groups, 8, func(g int) error {
		members := s.users[g*size : (g+1)*size]
		if g == groups-1 {
			members = s.users[g*size:]
		}
		var r struct {
			ID int64 `json:"id"`
		}
		if err := s.post("/api/rooms", members[0].tok, fmt.Sprintf(`{"name":"soak-%d","visibility":"private"}`, g), &r); err != nil {
			return err
		}
		for _, m := range members {
			m.room = r.ID
			if m != members[0] {
				if err := s.post(fmt.Sprintf("/api/rooms/%d/members", r.ID), members[0].tok, `{"username":"`+m.name+`"}`, nil); err != nil {
					return err
				}
			}
		}
		s.mu.Lock()
		s.rooms[r.ID] = members
		s.mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// soakUser is one chatting user with one WebSocket session at a time.
type soakUser struct {
	name, tok string
	room      int64
	// text, if set, makes the message text (the firehose's are long); it
	// must start with the id and the send time, as sentAt reads them.
	text func(id string, now time.Time) string

	wmu sync.Mutex // serialises writes to ws
	ws  *websocket.Conn

	mu      sync.Mutex           // guards the fields below
	next    int                  // the next message number
	pending map[string]time.Time // sent, not yet acknowledged: client_msg_id → first send
	acked   map[string]int64     // client_msg_id → seq
	seen    map[int64]bool       // seqs of the room this user received
	upTo    int64                // every seq ≤ upTo was seen
	sent    int
	ackLat  latHist
	delLat  latHist // live deliveries of others' messages, outside the restart window
	allLat  latHist // every live delivery, restart window included
	synced  int     // messages that arrived through room.sync
}

// run keeps a session open until ctx ends, reconnecting with backoff.
func (u *soakUser) run(ctx context.Context, s *soak) {
	backoff := 100 * time.Millisecond
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			s.reconnects.Add(1)
		}
		err := u.session(ctx, s)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			backoff = 100 * time.Millisecond
		}
		wait := backoff/2 + rand.N(backoff) // jitter spreads a thousand reconnects
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 3*time.Second)
	}
}

var soakDialer = websocket.Dialer{HandshakeTimeout: 20 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}

// session is one connection: hello, sync what was missed, resend what
// was not acknowledged, then read until the connection breaks.
func (u *soakUser) session(ctx context.Context, s *soak) error {
	ws, _, err := soakDialer.DialContext(ctx, "ws://"+s.addr+"/ws?token="+u.tok, nil)
	if err != nil {
		s.dials.Add(1)
		return err
	}
	defer ws.Close()
	stop := context.AfterFunc(ctx, func() { _ = ws.Close() })
	defer stop()
	if err := u.write(ws, protocol.TypeSystemHello, "hello", nil); err != nil {
		return err
	}
	if _, err := benchWaitFor(ws, protocol.TypeSystemWelcome, 20*time.Second); err != nil {
		return err
	}
	u.mu.Lock()
	since := u.upTo
	u.mu.Unlock()
	if err := u.write(ws, protocol.TypeRoomSync, "sync", protocol.RoomSync{RoomID: u.room, Since: since}); err != nil {
		return err
	}
	u.wmu.Lock()
	u.ws = ws
	u.wmu.Unlock()
	defer func() {
		u.wmu.Lock()
		u.ws = nil
		u.wmu.Unlock()
	}()
	// Resend every unacknowledged message with its client_msg_id: the
	// server stores each id once, so a send that did land is not doubled.
	u.mu.Lock()
	var resend []string
	for id := range u.pending {
		resend = append(resend, id)
	}
	u.mu.Unlock()
	for _, id := range resend {
		if err := u.sendMsg(id); err != nil {
			return err
		}
	}
	s.connected.Add(1)
	defer s.connected.Add(-1)
	for {
		if c := s.connected.Load(); c > s.peak.Load() {
			s.peak.Store(c) // a racy max is fine for a figure
		}
		_, b, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		e, err := protocol.Decode(b)
		if err != nil {
			s.fail("%s: undecodable frame %q: %v", u.name, b, err)
			continue
		}
		now := time.Now()
		switch e.Type {
		case protocol.TypeChatCreated:
			var cc protocol.ChatCreated
			if err := e.Unmarshal(&cc); err != nil {
				s.fail("%s: chat.message.created: %v", u.name, err)
				continue
			}
			u.got(s, cc.Message, now, true)
		case protocol.TypeRoomSynced:
			var rs protocol.RoomSynced
			if err := e.Unmarshal(&rs); err != nil {
				s.fail("%s: room.synced: %v", u.name, err)
				continue
			}
			for _, m := range rs.Messages {
				u.got(s, m, now, false)
			}
			if rs.HasMore && len(rs.Messages) > 0 {
				last := rs.Messages[len(rs.Messages)-1].Seq
				if err := u.write(ws, protocol.TypeRoomSync, "sync", protocol.RoomSync{RoomID: u.room, Since: last}); err != nil {
					return err
				}
			}
		case protocol.TypeSystemError:
			s.sysErrors.Add(1)
			s.fail("%s: system.error %s", u.name, e.Payload)
		}
	}
}

// got records one of the room's messages, live or synced.
func (u *soakUser) got(s *soak, m protocol.Message, now time.Time, live bool) {
	if m.RoomID != u.room {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if !live {
		u.synced++
	}
	u.seen[m.Seq] = true
	for u.seen[u.upTo+1] {
		u.upTo++
	}
	if m.From == u.name {
		if first, ok := u.pending[m.ClientMsgID]; ok {
			delete(u.pending, m.ClientMsgID)
			u.acked[m.ClientMsgID] = m.Seq
			if live {
				u.ackLat.record(int64(now.Sub(first)))
			}
		}
		return
	}
	if !live {
		return
	}
	sent, ok := sentAt(m.Text)
	if !ok {
		return
	}
	d := int64(now.Sub(sent))
	u.allLat.record(d)
	s.recordWindow(sent, d)
	s.mu.Lock()
	kill, back := s.killAt, s.backAt
	s.mu.Unlock()
	inWindow := !kill.IsZero() && sent.After(kill.Add(-2*time.Second)) && (back.IsZero() || sent.Before(back))
	if !inWindow {
		u.delLat.record(d)
	}
}

// soakWindow is the span of one line of the latency timeline.
const soakWindow = 30 * time.Second

func (s *soak) recordWindow(sent time.Time, d int64) {
	i := int(sent.Sub(s.begin) / soakWindow)
	if i < 0 {
		return
	}
	s.winMu.Lock()
	defer s.winMu.Unlock()
	for len(s.windows) <= i {
		s.windows = append(s.windows, latHist{})
	}
	s.windows[i].record(d)
}

// sentAt reads the send time a soak message carries after its id.
func sentAt(text string) (time.Time, bool) {
	f := strings.Fields(text)
	if len(f) < 2 {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	return time.Unix(0, ns), err == nil
}

// send posts a new message every interval, starting at a random phase.
func (u *soakUser) send(ctx context.Context, interval time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(rand.N(interval)):
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		u.mu.Lock()
		id := fmt.Sprintf("%s-%d", u.name, u.next)
		u.next++
		u.sent++
		u.pending[id] = time.Now()
		u.mu.Unlock()
		_ = u.sendMsg(id) // a failed write is resent after the reconnect
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sendMsg writes message id on the current session, if there is one.
func (u *soakUser) sendMsg(id string) error {
	u.mu.Lock()
	first, ok := u.pending[id]
	u.mu.Unlock()
	if !ok {
		return nil // acknowledged meanwhile (room.sync showed it stored)
	}
	text := id + " " + strconv.FormatInt(first.UnixNano(), 10)
	if u.text != nil {
		text = u.text(id, first)
	}
	u.wmu.Lock()
	ws := u.ws
	u.wmu.Unlock()
	if ws == nil {
		return nil // not connected: the next session resends it
	}
	return u.write(ws, protocol.TypeChatSend, id, protocol.ChatSend{RoomID: u.room, Text: text, ClientMsgID: id})
}

func (u *soakUser) write(ws *websocket.Conn, t protocol.Type, id string, payload any) error {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second)) // a failed deadline shows up as a failed write
	return benchSend(ws, t, id, payload)
}

// firehose is a busy room: one sender near the per-session frame limit
// with long messages, one reader, and one client that stops reading.
type firehose struct {
	sender, reader *soakUser
	stall          *websocket.Conn
	stallName      string
}

// setupFirehose makes the busy room. Its sender and reader join s.users
// (so they are checked like everyone else); the staller does not.
func (s *soak) setupFirehose(t *testing.T) *firehose {
	t.Helper()
	f := &firehose{stallName: "fire-stall"}
	mk := func(name string) *soakUser {
		tok, err := s.register(name)
		if err != nil {
			t.Fatal(err)
		}
		return &soakUser{name: name, tok: tok, pending: map[string]time.Time{}, acked: map[string]int64{}, seen: map[int64]bool{}}
	}
	f.sender, f.reader = mk("fire-send"), mk("fire-read")
	pad := strings.Repeat("x", 3500)
	f.sender.text = func(id string, at time.Time) string {
		return id + " " + strconv.FormatInt(at.UnixNano(), 10) + " " + pad
	}
	stallTok, err := s.register(f.stallName)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		ID int64 `json:"id"`
	}
	if err := s.post("/api/rooms", f.sender.tok, `{"name":"firehose","visibility":"private"}`, &r); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{f.reader.name, f.stallName} {
		if err := s.post(fmt.Sprintf("/api/rooms/%d/members", r.ID), f.sender.tok, `{"username":"`+n+`"}`, nil); err != nil {
			t.Fatal(err)
		}
	}
	f.sender.room, f.reader.room = r.ID, r.ID
	s.rooms[r.ID] = []*soakUser{f.sender, f.reader}
	s.users = append(s.users, f.sender, f.reader)

	// The staller's socket has a tiny receive buffer, so the server's
	// writes block soon after it stops reading, as on a dead Wi-Fi link.
	d := soakDialer
	d.NetDialContext = (&net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}).DialContext
	ws, _, err := d.Dial("ws://"+s.addr+"/ws?token="+stallTok, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	if err := benchSend(ws, protocol.TypeSystemHello, "hello", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := benchWaitFor(ws, protocol.TypeSystemWelcome, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	f.stall = ws // from here on nobody reads it until stallOutcome
	return f
}

// run sends on the firehose at 15 messages/s, under the default limit of
// 20 frames/s per session.
func (f *firehose) run(ctx context.Context, s *soak) {
	f.sender.send(ctx, time.Second/15)
}

// stallOutcome reads what the stalled client was sent and how its session
// ended, and finds the server's reason in its log.
func (f *firehose) stallOutcome(s *soak) string {
	n := 0
	_ = f.stall.SetReadDeadline(time.Now().Add(5 * time.Second))
	var err error
	for {
		if _, _, err = f.stall.ReadMessage(); err != nil {
			break
		}
		n++
	}
	logs := s.allServerLogs()
	var reason string
	for line := range strings.Lines(logs) {
		if strings.Contains(line, "websocket dropped") && strings.Contains(line, "user="+f.stallName) {
			reason = strings.TrimSpace(line)
			if i := strings.Index(reason, "msg="); i >= 0 {
				reason = reason[i:]
			}
			break
		}
	}
	if reason == "" {
		s.fail("the stalled client was never dropped by the server (it read %d frames, then %v)", n, err)
		return fmt.Sprintf("NOT dropped: read %d frames afterwards, then %v", n, err)
	}
	return fmt.Sprintf("dropped by the server (%s); it had %d frames in its buffers", reason, n)
}

// allServerLogs are the logs of every server process of this run.
func (s *soak) allServerLogs() string { return s.logsBefore + s.srv.logs.String() }
