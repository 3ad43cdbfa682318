package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zeebo/blake3"

	"mesh/protocol"
)

// The soak drives the real binary the way a busy household would, with
// faults on top, and checks that nothing acknowledged is lost. By default
// it is short enough for CI; the figures in the README come from
//
//	go test -run '^TestSoak$' -v -timeout 60m . -soak.users 1000 -soak.duration 10m -soak.interval 10s
var (
	soakUsers     = flag.Int("soak.users", 60, "soak: chatting WebSocket users")
	soakDuration  = flag.Duration("soak.duration", 50*time.Second, "soak: how long users chat")
	soakInterval  = flag.Duration("soak.interval", 2*time.Second, "soak: each user sends one message this often")
	soakRoomSize  = flag.Int("soak.room-size", 10, "soak: members per room")
	soakTransfers = flag.Int("soak.transfers", 3, "soak: files sent laptop → home during the run (one with the receiving agent killed)")
	soakFileMiB   = flag.Int("soak.file-mib", 24, "soak: size of each transferred file, MiB")
)

// TestSoak: N users chat in rooms of soak.room-size while files move
// between two agents and a terminal is shared; halfway through the server
// is killed with SIGKILL and restarted on the same database. Meanwhile the
// receiving agent is killed mid-transfer (the send is rerun and resumes),
// and one client stops reading on a busy room. At the end every
// acknowledged message must be in its room's history exactly once, every
// member must have seen every message, every file's BLAKE3 must match and
// the terminal viewer must have seen every line.
func TestSoak(t *testing.T) {
	t.Parallel()
	if *soakRoomSize < 2 || *soakUsers < *soakRoomSize {
		t.Fatalf("soak.users %d, soak.room-size %d: want room-size ≥ 2 and users ≥ room-size", *soakUsers, *soakRoomSize)
	}
	s := newSoak(t)
	defer s.srv.stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	s.setupChat(t)
	s.setupMachines(t)
	fire := s.setupFirehose(t)

	begin := time.Now()
	s.begin = begin
	var wg sync.WaitGroup
	for _, u := range s.users {
		wg.Add(1)
		go func() { defer wg.Done(); u.run(ctx, s) }()
	}
	s.waitConnected(t, len(s.users), time.Minute)
	t.Logf("soak: %d users connected in %s", len(s.users), time.Since(begin).Round(time.Millisecond))

	sendCtx, stopSending := context.WithCancel(ctx)
	for _, u := range s.users {
		wg.Add(1)
		go func() { defer wg.Done(); u.send(sendCtx, *soakInterval) }()
	}
	fireDone := make(chan struct{})
	go func() { defer close(fireDone); fire.run(sendCtx, s) }()

	termRes := make(chan string, 1)
	go func() { termRes <- s.terminalShare(ctx, t) }()
	xferRes := make(chan []string, 1)
	go func() { xferRes <- s.transfers(ctx) }()

	// Halfway: SIGKILL the server, restart it on the same database and
	// port, and time how long until every user is back.
	select {
	case <-time.After(*soakDuration / 2):
	case <-ctx.Done():
	}
	s.killServer(t)

	time.Sleep(time.Until(begin.Add(*soakDuration)))
	stopSending()
	<-fireDone
	ackWait := time.Now()
	s.waitAcked(2 * time.Minute)
	t.Logf("soak: senders stopped; outstanding sends acknowledged within %s", time.Since(ackWait).Round(time.Millisecond))
	terminal := <-termRes
	xfers := <-xferRes
	stall := fire.stallOutcome(s)
	cancel()
	wg.Wait()
	s.report(t, fire, stall, terminal, xfers)
}

// soak is the shared state of one run.
type soak struct {
	dir, addr string
	srv       *soakServer
	begin     time.Time
	users     []*soakUser
	rooms     map[int64][]*soakUser
	tokens    map[string]string // username → access token
	http      *http.Client

	laptop, home, viewer machine
	homeAgent            *soakProc

	connected  atomic.Int64 // sessions currently open (after system.welcome)
	peak       atomic.Int64
	dials      atomic.Int64 // dial attempts that failed
	sysErrors  atomic.Int64 // system.error frames received
	reconnects atomic.Int64

	logsBefore string // logs of the killed server process

	winMu   sync.Mutex // guards windows
	windows []latHist  // delivery latency by the 30 s window the message was sent in

	mu      sync.Mutex // guards the fields below
	faults  []string
	killAt  time.Time
	backAt  time.Time // every user reconnected after the kill
	failure []string  // problems that fail the test
}

func newSoak(t *testing.T) *soak {
	t.Helper()
	s := &soak{dir: t.TempDir(), rooms: map[int64][]*soakUser{}, tokens: map[string]string{},
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	srv, err := startSoakServer(s.dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.srv = srv
	s.addr = strings.TrimPrefix(srv.url, "http://")
	t.Cleanup(func() { srv.stop() })
	return s
}

func (s *soak) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failure = append(s.failure, fmt.Sprintf(format, args...))
}

func (s *soak) fault(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fmt.Sprintf(format, args...))
}

func (s *soak) url() string { return "http://" + s.addr }

// soakEnv is the server's environment: open registration and cheap
// bcrypt so that setting up a thousand users is quick; everything else is
// the default a self-hoster runs with. Info logs show dropped sessions.
var soakEnv = []string{"MESH_AUTH_REGISTRATION=open", "MESH_AUTH_BCRYPT_COST=4", "MESH_LOG=info"}

// soakServer is `mesh serve` as its own process.
type soakServer struct {
	cmd  *exec.Cmd
	url  string
	logs *syncBuffer
	done chan error
	once sync.Once
}

func startSoakServer(dir, addr string) (*soakServer, error) {
	cmd := exec.Command(meshBin, "serve", "--listen", addr)
	cmd.Dir, cmd.Env = dir, append(cleanEnv(), soakEnv...)
	s := &soakServer{cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = s.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("mesh serve printed no URL: %v\n%s", err, s.logs.String())
	}
	_, rest, _ := strings.Cut(line, "open ")
	s.url, _, _ = strings.Cut(rest, " ")
	go func() { _, _ = io.Copy(io.Discard, stdout); s.done <- cmd.Wait() }()
	return s, nil
}

// stop ends the server with SIGTERM (once); a server already killed is fine.
func (s *soakServer) stop() {
	s.once.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM) // may have been killed already
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
		}
	})
}

// killServer SIGKILLs the server, restarts it on the same database and
// address, and records how long until every chat user was back.
func (s *soak) killServer(t *testing.T) {
	old := s.srv
	before := s.connected.Load()
	s.mu.Lock()
	s.killAt = time.Now()
	s.mu.Unlock()
	if err := old.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-old.done
	old.once.Do(func() {}) // nothing left to stop
	s.logsBefore += old.logs.String()
	var srv *soakServer
	var err error
	for try := 0; try < 50; try++ { // the port is free once the process is gone; retry a busy moment
		if srv, err = startSoakServer(s.dir, s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart after SIGKILL: %v", err)
	}
	restarted := time.Since(s.killAt)
	s.srv = srv
	t.Cleanup(srv.stop)
	deadline := time.Now().Add(2 * time.Minute)
	for s.connected.Load() < int64(len(s.users)) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // counting other goroutines' reconnects
	}
	back := time.Since(s.killAt)
	s.mu.Lock()
	s.backAt = time.Now()
	s.mu.Unlock()
	s.fault("server SIGKILL at %s (%d sessions open): serving again after %s, %d/%d users reconnected and resynced %s after the kill",
		s.killAt.Sub(s.begin).Round(time.Second), before, restarted.Round(time.Millisecond),
		s.connected.Load(), len(s.users), back.Round(time.Millisecond))
}

func (s *soak) waitConnected(t *testing.T, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for s.connected.Load() < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d users connected within %s\n%s", s.connected.Load(), n, d, s.srv.logs.String())
		}
		time.Sleep(20 * time.Millisecond) // other goroutines dial
	}
}

// waitAcked waits until no user has an unacknowledged send.
func (s *soak) waitAcked(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		n := 0
		for _, u := range s.users {
			u.mu.Lock()
			n += len(u.pending)
			u.mu.Unlock()
		}
		if n == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// post is a JSON POST that returns an error instead of failing a test, so
// goroutines may use it.
func (s *soak) post(path, tok, body string, out any) error {
	req, err := http.NewRequest(http.MethodPost, s.url()+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	return s.do(req, tok, out)
}

func (s *soak) get(path, tok string, out any) error {
	req, err := http.NewRequest(http.MethodGet, s.url()+path, nil)
	if err != nil {
		return err
	}
	return s.do(req, tok, out)
}

func (s *soak) do(req *http.Request, tok string, out any) error {
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s = %d %s", req.Method, req.URL.Path, res.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

func (s *soak) register(name string) (string, error) {
	var a struct {
		AccessToken string `json:"access_token"`
	}
	err := s.post("/api/auth/register", "", `{"username":"`+name+`","password":"secret1"}`, &a)
	return a.AccessToken, err
}

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

// setupMachines enrols laptop and home (user "xfer") and viewer (user
// "watcher") as agents, and starts home's daemon.
func (s *soak) setupMachines(t *testing.T) {
	t.Helper()
	for _, n := range []string{"xfer", "watcher"} {
		tok, err := s.register(n)
		if err != nil {
			t.Fatal(err)
		}
		s.tokens[n] = tok
	}
	s.laptop, s.home, s.viewer = newMachine(t, "laptop"), newMachine(t, "home"), newMachine(t, "viewer-pc")
	for _, m := range []*machine{&s.laptop, &s.home, &s.viewer} {
		m.env[len(m.env)-1] = "MESH_LOG=info" // debug logs of a long run are large
	}
	s.laptop.login(t, s.url(), "xfer")
	s.home.login(t, s.url(), "xfer")
	s.viewer.login(t, s.url(), "watcher")
	p, err := s.startAgent(s.home)
	if err != nil {
		t.Fatal(err)
	}
	s.homeAgent = p
	t.Cleanup(func() { s.homeAgent.stop() })
}

// soakProc is a mesh process started by the soak.
type soakProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
	once sync.Once
}

func (s *soak) startProc(m machine, args ...string) (*soakProc, error) {
	cmd := exec.Command(meshBin, args...)
	cmd.Dir, cmd.Env = m.home, append(cleanEnv(), m.env...)
	p := &soakProc{cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.done <- cmd.Wait() }()
	return p, nil
}

func (p *soakProc) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM) // may have exited already
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// startAgent runs `mesh agent run` on m and waits until it is online.
func (s *soak) startAgent(m machine) (*soakProc, error) {
	p, err := s.startProc(m, "agent", "run")
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var l struct {
			Devices []struct {
				DeviceID string `json:"device_id"`
				Online   bool   `json:"online"`
			} `json:"devices"`
		}
		if s.get("/api/devices", s.tokens["xfer"], &l) == nil {
			for _, d := range l.Devices {
				if d.DeviceID == m.name && d.Online {
					return p, nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond) // an outside process: nothing to wait on
	}
	p.stop()
	return nil, fmt.Errorf("agent %s not online within 60 s:\n%s", m.name, p.out.String())
}

// transfers sends soak.transfers files from laptop to home, spread over
// the run. The first one has the receiving agent SIGKILLed part-way; the
// send is rerun after the agent restarts and must resume. It returns one
// line per transfer.
func (s *soak) transfers(ctx context.Context) []string {
	n := *soakTransfers
	if n == 0 {
		return nil
	}
	src := filepath.Join(s.laptop.home, "outbox")
	if err := os.MkdirAll(src, 0o755); err != nil {
		s.fail("transfers: %v", err)
		return nil
	}
	size := int64(*soakFileMiB) << 20
	gap := *soakDuration / time.Duration(n+1)
	var lines []string
	for i := range n {
		select {
		case <-ctx.Done():
			return lines
		case <-time.After(time.Until(s.begin.Add(gap * time.Duration(i+1)))):
		}
		name := fmt.Sprintf("soak-%02d.bin", i)
		path := filepath.Join(src, name)
		want, err := writeRandomFile(path, size)
		if err != nil {
			s.fail("transfer %d: %v", i, err)
			continue
		}
		start := time.Now()
		var line string
		if i == 0 {
			line, err = s.transferWithAgentKill(path, name, size)
		} else {
			line, err = s.sendRetrying(path, 2*time.Minute)
		}
		took := time.Since(start)
		if err != nil {
			s.fail("transfer %d (%s): %v", i, name, err)
			lines = append(lines, fmt.Sprintf("%s: FAILED: %v", name, err))
			continue
		}
		got := filepath.Join(s.home.inbox(), name)
		sum, err := hashFile(got)
		switch {
		case err != nil:
			s.fail("transfer %d: %v", i, err)
		case sum != want:
			s.fail("transfer %d: received blake3 %s, sent %s", i, sum, want)
			line += " BLAKE3 MISMATCH"
		default:
			line = fmt.Sprintf("%s %d MiB in %s, blake3 matches; %s", name, size>>20, took.Round(time.Millisecond), line)
		}
		lines = append(lines, line)
		_ = os.Remove(path) // disk space: a long soak sends many files
		_ = os.Remove(got)
	}
	return lines
}

// sendRetrying runs send-file until it succeeds or d passes: a send
// started while the server restarts fails to get a session, as it should.
func (s *soak) sendRetrying(path string, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	tries := 0
	for {
		tries++
		p, err := s.startProc(s.laptop, "agent", "send-file", "--to", "home", path)
		if err != nil {
			return "", err
		}
		err = <-p.done
		if err == nil {
			note := "sent"
			if m := resumedRE.FindStringSubmatch(p.out.String()); m != nil {
				note = "resumed after " + m[1] + " bytes already verified"
			}
			if tries > 1 {
				note += fmt.Sprintf(" on try %d", tries)
			}
			return note, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("send-file failed %d times; last: %v\n%s", tries, err, p.out.String())
		}
		time.Sleep(time.Second)
	}
}

// transferWithAgentKill SIGKILLs home's agent once a quarter of the file
// has arrived, restarts it, and reruns the send, which must resume.
func (s *soak) transferWithAgentKill(path, name string, size int64) (string, error) {
	p, err := s.startProc(s.laptop, "agent", "send-file", "--to", "home", path)
	if err != nil {
		return "", err
	}
	part := filepath.Join(s.home.inbox(), name+".part")
	deadline := time.Now().Add(2 * time.Minute)
	var at int64
	for at < size/4 {
		select {
		case err := <-p.done:
			return "", fmt.Errorf("send finished (%v) before a quarter arrived; the file is too small to interrupt:\n%s", err, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			p.stop()
			return "", fmt.Errorf("no quarter of %s arrived within 2 minutes", name)
		}
		if fi, err := os.Stat(part); err == nil {
			at = fi.Size()
		}
		time.Sleep(time.Millisecond) // polling a file another process writes
	}
	_ = s.homeAgent.cmd.Process.Kill()
	<-s.homeAgent.done
	s.homeAgent.once.Do(func() {})
	killedAt := at
	senderErr := <-p.done // the peer vanished: the sender must fail, saying so
	msg := lastLine(p.out.String())
	if senderErr == nil {
		return "", fmt.Errorf("send-file succeeded although the receiver was killed:\n%s", p.out.String())
	}
	agent, err := s.startAgent(s.home)
	if err != nil {
		return "", err
	}
	s.homeAgent = agent
	note, err := s.sendRetrying(path, 2*time.Minute)
	if err != nil {
		return "", err
	}
	if !strings.Contains(note, "resumed") {
		s.fail("the rerun send of %s after the agent kill did not resume: %s", name, note)
	}
	s.fault("receiving agent SIGKILLed with %d of %d MiB of %s written: the sender exited with %q; agent restarted; rerun %s",
		killedAt>>20, size>>20, name, msg, note)
	return "receiver killed mid-way, " + note, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

func writeRandomFile(path string, n int64) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	h := blake3.New()
	r := rand.NewChaCha8([32]byte{byte(n), byte(len(path))})
	if _, err := io.CopyN(io.MultiWriter(f, h), r, n); err != nil {
		f.Close()
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := blake3.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

var resumedRE = regexp.MustCompile(`resumed after (\d+) bytes already verified`)

var tickRE = regexp.MustCompile(`tick-(\d+)\b`)

// terminalShare shares a terminal on laptop running a command that prints
// one numbered line per half second until the run ends; watcher joins it
// from viewer-pc over QUIC. The server restart happens while it runs: the
// peer-to-peer session does not go through the server, so no line may be
// missing.
func (s *soak) terminalShare(ctx context.Context, t *testing.T) string {
	// The command stops by the clock, a little before the run ends; the
	// lines the sharer's own terminal showed are what the viewer must see.
	secs := max(int((*soakDuration - 10*time.Second).Seconds()), 5)
	script := fmt.Sprintf(`i=1; end=$(( $(date +%%s) + %d )); while [ $(date +%%s) -lt $end ]; do echo tick-$i; i=$((i+1)); sleep 0.5; done`, secs)
	sharer, err := s.startProc(s.laptop, "agent", "share-terminal", "--allow", "watcher", "--", "sh", "-c", script)
	if err != nil {
		s.fail("share-terminal: %v", err)
		return "FAILED"
	}
	defer sharer.stop()
	var id string
	deadline := time.Now().Add(60 * time.Second)
	for id == "" && time.Now().Before(deadline) {
		for line := range strings.Lines(sharer.out.String()) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "share: "); ok && strings.Contains(sharer.out.String(), "join-terminal ") {
				id = v
			}
		}
		time.Sleep(20 * time.Millisecond) // an outside process
	}
	if id == "" {
		s.fail("share-terminal printed no share id:\n%s", sharer.out.String())
		return "FAILED: no share id"
	}
	viewer, err := s.startProc(s.viewer, "agent", "join-terminal", id)
	if err != nil {
		s.fail("join-terminal: %v", err)
		return "FAILED"
	}
	defer viewer.stop()
	var exit error
	select {
	case exit = <-viewer.done:
		viewer.done <- exit
	case <-time.After(*soakDuration + time.Minute):
		s.fail("join-terminal did not end with the share")
	case <-ctx.Done():
	}
	select { // once the share has ended, its output is complete
	case err := <-sharer.done:
		sharer.done <- err // for the deferred stop
	case <-time.After(30 * time.Second):
		s.fail("share-terminal still running 30 s after its viewer left")
		sharer.stop()
	}
	lines := 0
	for _, m := range tickRE.FindAllStringSubmatch(sharer.out.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		lines = max(lines, n)
	}
	if lines == 0 {
		s.fail("the shared command printed nothing:\n%s", sharer.out.String())
		return "FAILED: no output"
	}
	seen := map[int]bool{}
	for _, m := range tickRE.FindAllStringSubmatch(viewer.out.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		seen[n] = true
	}
	var missing []int
	for i := 1; i <= lines; i++ {
		if !seen[i] {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		s.fail("terminal viewer missed %d of %d lines (first %d); its output:\n%s", len(missing), lines, missing[0], viewer.out.String())
		return fmt.Sprintf("viewer saw %d of %d lines", lines-len(missing), lines)
	}
	return fmt.Sprintf("viewer saw all %d lines in %s, across the server restart; join-terminal exited with %v (%s)",
		lines, *soakDuration/2, exit, lastLine(viewer.out.String()))
}

// verify reads every room's history and checks it against what users
// acknowledged and saw.
func (s *soak) verify(t *testing.T) (stored, lost, dups, gaps, unacked int) {
	t.Helper()
	for room, members := range s.rooms {
		count := map[string]int{}
		var seqs []int64
		before := int64(0)
		for {
			path := fmt.Sprintf("/api/rooms/%d/messages?limit=200", room)
			if before > 0 {
				path += fmt.Sprintf("&before=%d", before)
			}
			var page struct {
				Messages []protocol.Message `json:"messages"`
				HasMore  bool               `json:"has_more"`
			}
			if err := s.get(path, members[0].tok, &page); err != nil {
				t.Fatalf("history of room %d: %v", room, err)
			}
			for _, m := range page.Messages {
				count[m.ClientMsgID]++
				seqs = append(seqs, m.Seq)
			}
			if !page.HasMore || len(page.Messages) == 0 {
				break
			}
			before = page.Messages[len(page.Messages)-1].Seq
		}
		stored += len(seqs)
		for i, seq := range seqs { // newest first: N … 1
			if want := int64(len(seqs) - i); seq != want {
				s.fail("room %d: history seq %d at position %d, want %d", room, seq, i, want)
				break
			}
		}
		acked := map[string]bool{}
		for _, u := range members {
			u.mu.Lock()
			for id := range u.acked {
				acked[id] = true
				switch c := count[id]; {
				case c == 0:
					lost++
					s.fail("room %d: acknowledged message %s is not in the history", room, id)
				case c > 1:
					dups++
					s.fail("room %d: message %s is in the history %d times", room, id, c)
				}
			}
			unacked += len(u.pending)
			for seq := int64(1); seq <= int64(len(seqs)); seq++ {
				if !u.seen[seq] {
					gaps++
				}
			}
			u.mu.Unlock()
		}
		for id, c := range count {
			if !acked[id] && c > 0 {
				s.fail("room %d: message %s is stored but its sender never saw it acknowledged", room, id)
			}
		}
	}
	if gaps > 0 {
		s.fail("%d deliveries missing: members did not see every message of their room", gaps)
	}
	return stored, lost, dups, gaps, unacked
}

func (s *soak) report(t *testing.T, fire *firehose, stall, terminal string, xfers []string) {
	t.Helper()
	stored, lost, dups, gaps, unacked := s.verify(t)
	var ack, del, all latHist
	sent, synced, deliveries := 0, 0, int64(0)
	for _, u := range s.users {
		u.mu.Lock()
		ack.merge(&u.ackLat)
		del.merge(&u.delLat)
		all.merge(&u.allLat)
		sent += u.sent
		synced += u.synced
		u.mu.Unlock()
	}
	deliveries = all.total
	fire.reader.mu.Lock()
	fireLat := fire.reader.delLat.quantile(0.99)
	fireSeen := fire.reader.upTo
	fire.reader.mu.Unlock()
	secs := soakDuration.Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, "\n== soak: %d users in rooms of %d (+ a firehose room), %s, one message per user every %s\n",
		*soakUsers, *soakRoomSize, *soakDuration, *soakInterval)
	fmt.Fprintf(&b, "load:      %d chat sessions (peak %d at once) + 1 stalled + 4 agent processes; %d messages sent, %.1f msg/s; %d live deliveries, %.0f/s\n",
		len(s.users), s.peak.Load(), sent, float64(sent)/secs, deliveries, float64(deliveries)/secs)
	fmt.Fprintf(&b, "latency:   ack p50 %s p99 %s; delivery p50 %s p99 %s (outside the restart window), p99 %s (all), max %s\n",
		ack.quantile(0.5).Round(time.Microsecond), ack.quantile(0.99).Round(time.Microsecond),
		del.quantile(0.5).Round(time.Microsecond), del.quantile(0.99).Round(time.Microsecond),
		all.quantile(0.99).Round(time.Microsecond), time.Duration(all.max).Round(time.Millisecond))
	s.winMu.Lock()
	fmt.Fprintf(&b, "timeline:  delivery p50/p99 by when the message was sent, per %s:", soakWindow)
	for i := range s.windows {
		w := &s.windows[i]
		if i%5 == 0 {
			fmt.Fprintf(&b, "\n          ")
		}
		fmt.Fprintf(&b, " %3ds %s/%s", int((time.Duration(i) * soakWindow).Seconds()),
			w.quantile(0.5).Round(100*time.Microsecond), w.quantile(0.99).Round(time.Millisecond))
	}
	s.winMu.Unlock()
	fmt.Fprintf(&b, "\nfaults:\n")
	for _, f := range s.faults {
		fmt.Fprintf(&b, "  - %s\n", f)
	}
	fmt.Fprintf(&b, "  - stalled client on the firehose room: %s; the firehose reader saw every one of %d messages, p99 %s\n",
		stall, fireSeen, fireLat.Round(time.Microsecond))
	fmt.Fprintf(&b, "  - terminal share: %s\n", terminal)
	fmt.Fprintf(&b, "transfers:\n")
	for _, x := range xfers {
		fmt.Fprintf(&b, "  - %s\n", x)
	}
	fmt.Fprintf(&b, "errors:    %d system.error, %d failed dials (while the server was down), %d reconnects, %d messages delivered by room.sync\n",
		s.sysErrors.Load(), s.dials.Load(), s.reconnects.Load(), synced)
	fmt.Fprintf(&b, "result:    %d stored, lost %d, duplicates %d, missing deliveries %d, unacknowledged at the end %d\n",
		stored, lost, dups, gaps, unacked)
	t.Log(b.String())
	if unacked > 0 {
		s.fail("%d sends still unacknowledged two minutes after the senders stopped", unacked)
	}
	for _, f := range s.failure {
		t.Error(f)
	}
	if t.Failed() {
		t.Logf("server log (last 8 KB):\n%s", s.srv.logs.String()[max(0, len(s.srv.logs.String())-8000):])
	}
}
