package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"mesh/protocol"
	"mesh/server"
	"mesh/server/notify/gotify/gotifytest"
	"mesh/store"
)

// pushWorld: alice and bob share a direct room; bob's pushes go to a
// Gotify-compatible test server.
type pushWorld struct {
	ts         *testServer
	gotify     *gotifytest.Server
	alice, bob string // tokens
	dm         int64
	bobID      int64
}

func newPushWorld(t *testing.T, tune func(*server.Config)) *pushWorld {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.Auth.Registration = "open"
	cfg.Notify.RetryMin = 20 * time.Millisecond
	cfg.Notify.AllowPrivateTargets = true // bob's own target, the fake Gotify, is on loopback
	if tune != nil {
		tune(&cfg)
	}
	w := &pushWorld{ts: startServer(t, cfg), gotify: gotifytest.New(t)}
	w.alice = w.ts.register(t, "alice", "secret1")
	w.bob = w.ts.register(t, "bob", "secret1")
	w.dm = w.directRoom(t)
	w.setTarget(t, w.gotify.AppToken())
	u, err := w.ts.Store.UserByName(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	w.bobID = u.ID
	return w
}

func (w *pushWorld) directRoom(t *testing.T) int64 {
	t.Helper()
	a := w.ts.do(t, "POST", "/api/rooms/direct", []byte(`{"username":"bob"}`), w.alice)
	var r struct {
		Room struct{ ID int64 } `json:"room"`
		ID   int64              `json:"id"`
	}
	if err := json.Unmarshal(a.Body, &r); err != nil || a.Status/100 != 2 {
		t.Fatalf("direct room: %d %s", a.Status, a.Body)
	}
	if r.ID == 0 {
		r.ID = r.Room.ID
	}
	return r.ID
}

func (w *pushWorld) setTarget(t *testing.T, token string) {
	t.Helper()
	body := fmt.Sprintf(`{"gotify_url":%q,"gotify_token":%q}`, w.gotify.URL(), token)
	if a := w.ts.do(t, "PUT", "/api/notify", []byte(body), w.bob); a.Status != 200 {
		t.Fatalf("PUT /api/notify = %d %s", a.Status, a.Body)
	}
}

// waitPushes polls bob's outbox (the server's own record) until every push
// is in a final state and n of them exist.
func (w *pushWorld) waitPushes(t *testing.T, n int, final bool) []store.Push {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps, err := w.ts.Store.PushesFor(context.Background(), w.bobID)
		if err != nil {
			t.Fatal(err)
		}
		done := len(ps) >= n
		for _, p := range ps {
			if final && p.State == store.PushPending {
				done = false
			}
		}
		if done {
			return ps
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's outbox after 10 s: %+v; want %d pushes, final=%v", ps, n, final)
		}
		time.Sleep(5 * time.Millisecond) // polling the worker's writes
	}
}

func TestPushOfflineUserGetsOneDirectMessagePush(t *testing.T) {
	t.Parallel()
	w := newPushWorld(t, nil)
	alice := w.ts.dial(t, w.alice)
	alice.say(w.dm, "lunch at noon?")
	got := w.gotify.WaitMessages(t, 1, 10*time.Second)
	if got[0].Title != "alice" || got[0].Message != "lunch at noon?" || got[0].Priority != 8 {
		t.Errorf("push = %+v, want title alice, the text, priority 8", got[0])
	}
	ps := w.waitPushes(t, 1, true)
	if len(ps) != 1 || ps[0].State != store.PushSent || w.gotify.Requests() != 1 {
		t.Errorf("outbox %+v, %d requests; want one push, sent once", ps, w.gotify.Requests())
	}
}

func TestPushMentionOnlyForTheMentionedOfflineUser(t *testing.T) {
	t.Parallel()
	w := newPushWorld(t, nil)
	room := w.ts.createRoom(t, w.alice, "general", "public")
	carol := w.ts.register(t, "carol", "secret1")
	for _, name := range []string{"bob", "carol"} {
		if a := w.ts.do(t, "POST", fmt.Sprintf("/api/rooms/%d/members", room), []byte(`{"username":"`+name+`"}`), w.alice); a.Status/100 != 2 {
			t.Fatalf("add %s: %d %s", name, a.Status, a.Body)
		}
	}
	w.ts.dial(t, carol) // carol is present: no pushes for her
	alice := w.ts.dial(t, w.alice)
	alice.say(room, "no mention here")
	alice.say(room, "@bobby is someone else")
	alice.say(room, "@carol and @bob: standup")
	got := w.gotify.WaitMessages(t, 1, 10*time.Second)
	if got[0].Title != "alice in #general" || !strings.Contains(got[0].Message, "standup") {
		t.Errorf("push = %+v, want the mention from #general", got[0])
	}
	if ps := w.waitPushes(t, 1, true); len(ps) != 1 {
		t.Errorf("bob's outbox %+v, want exactly the one mention", ps)
	}
}

func TestPushNoneWhilePresent(t *testing.T) {
	t.Parallel()
	w := newPushWorld(t, nil)
	bob := w.ts.dial(t, w.bob)
	alice := w.ts.dial(t, w.alice)
	alice.say(w.dm, "you are here")
	bob.message("you are here")
	// A call to a present user rings; no push either.
	alice.send(protocol.TypeCallInvite, protocol.Call{CallID: "c1", ToUser: "bob", Media: "video"})
	bob.waitFor(protocol.TypeCallInvite)
	bob.ws.Close()
	waitOffline(t, w, "bob")
	alice.say(w.dm, "now you are gone")
	if got := w.gotify.WaitMessages(t, 1, 10*time.Second); got[0].Message != "now you are gone" {
		t.Errorf("first push = %+v, want only the message sent after bob left", got[0])
	}
	if ps := w.waitPushes(t, 1, true); len(ps) != 1 {
		t.Errorf("bob's outbox %+v, want one push", ps)
	}
}

// waitOffline polls the hub's view until user has no session.
func waitOffline(t *testing.T, w *pushWorld, user string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !server.Absent(w.ts.Srv, w.bobID) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still present after 10 s", user)
		}
		time.Sleep(5 * time.Millisecond) // the server notices the close on its own goroutine
	}
}

func TestPushMissedCallAndReceivedFile(t *testing.T) {
	t.Parallel()
	w := newPushWorld(t, nil)
	alice := w.ts.dial(t, w.alice)
	id := alice.send(protocol.TypeCallInvite, protocol.Call{CallID: "c1", ToUser: "bob", Media: "audio"})
	if e := alice.waitError(id); e.Code != protocol.CodeUnavailable {
		t.Fatalf("call to an absent user: %+v, want unavailable", e)
	}
	got := w.gotify.WaitMessages(t, 1, 10*time.Second)
	if got[0].Title != "Missed call from alice" || got[0].Priority != 10 {
		t.Errorf("call push = %+v", got[0])
	}
	// bob's agent reports a received file while bob has no browser open.
	dev := w.ts.enroll(t, w.bob, "home", fp('e'))
	agent := w.ts.dial(t, dev)
	agent.send(protocol.TypeTransferReport, protocol.TransferReport{SessionID: "s1", FromDevice: "laptop", ToDevice: "home",
		Name: "report.pdf", Size: 5_200_000, Outcome: protocol.OutcomeOK, Direct: true})
	got = w.gotify.WaitMessages(t, 2, 10*time.Second)
	if got[1].Title != "File received on home" || got[1].Message != "report.pdf (5.2 MB) from laptop" {
		t.Errorf("file push = %+v", got[1])
	}
}

func TestPushRetriedUntilGotifyIsBack(t *testing.T) {
	t.Parallel()
	w := newPushWorld(t, nil)
	w.gotify.SetDown(true)
	alice := w.ts.dial(t, w.alice)
	alice.say(w.dm, "are you there?")
	deadline := time.Now().Add(10 * time.Second)
	for w.gotify.Requests() < 2 { // the first attempt and at least one retry
		if time.Now().After(deadline) {
			t.Fatalf("%d requests to a Gotify that is down, want retries", w.gotify.Requests())
		}
		time.Sleep(5 * time.Millisecond) // polling the worker
	}
	w.gotify.SetDown(false)
	got := w.gotify.WaitMessages(t, 1, 10*time.Second)
	ps := w.waitPushes(t, 1, true)
	if got[0].Message != "are you there?" || len(ps) != 1 || ps[0].State != store.PushSent || ps[0].Attempts < 2 {
		t.Errorf("after the outage: %+v, outbox %+v; want one push sent after retries", got, ps)
	}
}

func TestPushRefusedIsNotRetriedAndShown(t *testing.T) {
	t.Parallel()
	w := newPushWorld(t, nil)
	w.setTarget(t, "A-wrong-token")
	alice := w.ts.dial(t, w.alice)
	alice.say(w.dm, "hello?")
	ps := w.waitPushes(t, 1, true)
	if ps[0].State != store.PushFailed || w.gotify.Requests() != 1 {
		t.Fatalf("outbox %+v after %d requests; want failed after one", ps, w.gotify.Requests())
	}
	a := w.ts.do(t, "GET", "/api/notify", nil, w.bob)
	var n struct {
		LastError string `json:"last_error"`
		TokenHint string `json:"token_hint"`
	}
	if err := json.Unmarshal(a.Body, &n); err != nil || !strings.Contains(n.LastError, "401") || strings.Contains(string(a.Body), "A-wrong-token") {
		t.Errorf("GET /api/notify = %s; want last_error with the 401 and the token not shown", a.Body)
	}
}

func TestPushPendingAcrossRestartIsSentOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := newPushWorld(t, func(c *server.Config) { c.HTTP.DB = dir + "/mesh.db"; c.Notify.RetryMin = time.Hour })
	w.gotify.SetDown(true)
	alice := w.ts.dial(t, w.alice)
	alice.say(w.dm, "before the restart")
	deadline := time.Now().Add(10 * time.Second)
	for w.gotify.Requests() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no attempt while Gotify was down")
		}
		time.Sleep(5 * time.Millisecond) // polling the worker
	}
	w.ts.stop()
	w.gotify.SetDown(false)
	cfg := w.ts.Cfg
	cfg.Notify.RetryMin = 20 * time.Millisecond
	ts2 := startServer(t, cfg)
	// The retry is an hour away: a restart must not wait for it, nor lose it.
	got := w.gotify.WaitMessages(t, 1, 10*time.Second)
	w.ts = ts2
	ps := w.waitPushes(t, 1, true)
	if got[0].Message != "before the restart" || len(ps) != 1 || ps[0].State != store.PushSent {
		t.Errorf("after restart: %+v, outbox %+v", got, ps)
	}
	if n := len(w.gotify.Messages()); n != 1 {
		t.Errorf("%d messages stored, want 1", n)
	}
}

func TestPushesCoalescedUnderTheRateLimit(t *testing.T) {
	t.Parallel()
	w := newPushWorld(t, func(c *server.Config) { c.Notify.MaxPerMinute = 60 }) // one a second
	alice := w.ts.dial(t, w.alice)
	for i := range 4 {
		alice.say(w.dm, fmt.Sprint("message ", i))
	}
	ps := w.waitPushes(t, 4, true)
	states := map[string]int{}
	for _, p := range ps {
		states[p.State]++
	}
	// How the four split depends on timing; that none is lost or repeated,
	// and the pace, do not.
	sent := states[store.PushSent]
	if sent+states[store.PushMerged] != 4 || sent < 1 || sent > 3 {
		t.Fatalf("outbox states %v: want 4 messages in at most 3 pushes", states)
	}
	got := w.gotify.WaitMessages(t, sent, 10*time.Second)
	last := got[len(got)-1]
	if last.Message != "message 3" && last.Message != "latest: message 3" {
		t.Errorf("last push %+v, want it to end with message 3", last)
	}
	for i := 1; i < len(got); i++ {
		if gap := got[i].Date.Sub(got[i-1].Date); gap < 900*time.Millisecond {
			t.Errorf("pushes %d and %d came %s apart; the limit is one a second", i-1, i, gap)
		}
		if !strings.HasSuffix(got[i].Title, "new messages from alice") && got[i].Title != "alice" {
			t.Errorf("push %d title %q", i, got[i].Title)
		}
	}
}

func TestNotifySettingsAPI(t *testing.T) {
	t.Parallel()
	w := newPushWorld(t, nil)
	a := w.ts.do(t, "PUT", "/api/notify", []byte(`{"kinds":{"dm":false},"gotify_url":"ftp://x"}`), w.bob)
	if a.Status != 400 {
		t.Errorf("ftp URL: %d %s, want 400", a.Status, a.Body)
	}
	a = w.ts.do(t, "PUT", "/api/notify", []byte(`{"kinds":{"dm":false,"pager":true}}`), w.bob)
	if a.Status != 400 || !strings.Contains(string(a.Body), "pager") {
		t.Errorf("unknown kind: %d %s, want 400 naming it", a.Status, a.Body)
	}
	a = w.ts.do(t, "PUT", "/api/notify", []byte(`{"kinds":{"dm":false}}`), w.bob)
	if a.Status != 200 || !strings.Contains(string(a.Body), `"dm":false`) || strings.Contains(string(a.Body), w.gotify.AppToken()) {
		t.Errorf("PUT kinds: %d %s", a.Status, a.Body)
	}
	if a := w.ts.do(t, "PUT", fmt.Sprintf("/api/rooms/%d/mute", w.dm), []byte(`{"muted":true}`), w.bob); a.Status != 200 {
		t.Errorf("mute: %d %s", a.Status, a.Body)
	}
	if a := w.ts.do(t, "POST", "/api/notify/test", nil, w.bob); a.Status != 200 {
		t.Errorf("test push: %d %s", a.Status, a.Body)
	}
	if got := w.gotify.WaitMessages(t, 1, 10*time.Second); got[0].Title != "mesh test" {
		t.Errorf("test push = %+v", got[0])
	}
}
