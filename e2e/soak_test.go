package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	defer s.srv.halt()
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
	srv       *meshServer
	begin     time.Time
	users     []*soakUser
	rooms     map[int64][]*soakUser
	tokens    map[string]string // username → access token
	http      *http.Client

	laptop, home, viewer machine
	homeAgent            *proc

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
	srv, err := launchServer(serverOpts{dir: s.dir, env: soakEnv})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = srv
	s.addr = strings.TrimPrefix(srv.url, "http://")
	t.Cleanup(srv.halt)
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
// the default a self-hoster runs with, but for the cap on sessions per
// address: every simulated user comes from 127.0.0.1. Info logs show
// dropped sessions.
var soakEnv = []string{"MESH_AUTH_REGISTRATION=open", "MESH_AUTH_BCRYPT_COST=4", "MESH_LOG=info", "MESH_SERVER_MAX_SESSIONS_PER_IP=0"}

// killServer SIGKILLs the server, restarts it on the same database and
// address, and records how long until every chat user was back.
func (s *soak) killServer(t *testing.T) {
	old := s.srv
	before := s.connected.Load()
	s.mu.Lock()
	s.killAt = time.Now()
	s.mu.Unlock()
	old.kill(t)
	s.logsBefore += old.logs.String()
	var srv *meshServer
	var err error
	for try := 0; try < 50; try++ { // the port is free once the process is gone; retry a busy moment
		if srv, err = launchServer(serverOpts{dir: s.dir, addr: s.addr, env: soakEnv}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // a pause between retries
	}
	if err != nil {
		t.Fatalf("restart after SIGKILL: %v", err)
	}
	restarted := time.Since(s.killAt)
	s.srv = srv
	t.Cleanup(srv.halt)
	poll(2*time.Minute, 50*time.Millisecond, func() bool { return s.connected.Load() >= int64(len(s.users)) }) // the report says how many
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
	if !poll(d, 20*time.Millisecond, func() bool { return s.connected.Load() >= int64(n) }) {
		t.Fatalf("only %d of %d users connected within %s\n%s", s.connected.Load(), n, d, s.srv.logs.String())
	}
}

// waitAcked waits until no user has an unacknowledged send.
func (s *soak) waitAcked(d time.Duration) {
	poll(d, 50*time.Millisecond, func() bool { // the report counts what is still pending
		n := 0
		for _, u := range s.users {
			u.mu.Lock()
			n += len(u.pending)
			u.mu.Unlock()
		}
		return n == 0
	})
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
