package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// createSession posts a p2p session request with tok and decodes a 201.
func (ts *testServer) createSession(t *testing.T, tok string, req protocol.P2PSessionRequest) (protocol.P2PSession, answer) {
	t.Helper()
	a := ts.do(t, http.MethodPost, "/api/p2p/sessions", mustJSON(t, req), tok)
	var s protocol.P2PSession
	if a.Status == http.StatusCreated {
		if err := json.Unmarshal(a.Body, &s); err != nil {
			t.Fatalf("decode session %s: %v", a.Body, err)
		}
	}
	return s, a
}

// sessionCreated waits for the p2p.session.created of session id.
func (c *wsClient) sessionCreated(id string) protocol.P2PSession {
	c.t.Helper()
	var s protocol.P2PSession
	c.waitMatch(protocol.TypeP2PSessionCreated, func(e protocol.Envelope) bool {
		return e.Unmarshal(&s) == nil && s.SessionID == id
	})
	return s
}

// nextSession returns the next p2p.session.created, whichever it is.
func (c *wsClient) nextSession() protocol.P2PSession {
	c.t.Helper()
	var s protocol.P2PSession
	if err := c.waitFor(protocol.TypeP2PSessionCreated).Unmarshal(&s); err != nil {
		c.t.Fatal(err)
	}
	return s
}

func TestTerminalP2PSessions(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok, ctok, laptop := terminalUsers(t, ts)
	daemon := ts.agent(t, laptop, 5001, fp('1')) // `mesh agent run` on the laptop
	sharer := ts.share(t, laptop, 6001, fp('1'), protocol.TerminalOpen{ShareID: "s1", Cols: 80, Rows: 24, Allow: []string{"bob"}})
	bobsPC := ts.enroll(t, btok, "bobs-pc", fp('3'))
	bobDaemon := ts.agent(t, bobsPC, 5003, fp('3'))

	sess, a := ts.createSession(t, bobsPC, protocol.P2PSessionRequest{Kind: protocol.SessionTerminal, ShareID: "s1"})
	if a.Status != http.StatusCreated {
		t.Fatalf("terminal session = %d %s", a.Status, a.Body)
	}
	want := protocol.Endpoints{Initiator: protocol.Endpoint{IP: "127.0.0.1", Port: 5003, Fingerprint: fp('3')},
		Target: protocol.Endpoint{IP: "127.0.0.1", Port: 6001, Fingerprint: fp('1')}}
	if sess.Kind != protocol.SessionTerminal || sess.ShareID != "s1" || sess.TargetDeviceID != "laptop" ||
		sess.InitiatorDeviceID != "bobs-pc" || !cmp.Equal(sess.Endpoints, want) {
		t.Fatalf("terminal session = %+v, want the share conn's endpoint %+v", sess, want.Target)
	}
	if got := sharer.sessionCreated(sess.SessionID); got.SessionToken != sess.SessionToken || got.ShareID != "s1" {
		t.Fatalf("share conn got %+v", got)
	}
	bobDaemon.sessionCreated(sess.SessionID)

	// A file session to the laptop goes to its daemon, not the share
	// conn; and the daemon never heard of the terminal session before it.
	desktop := ts.enroll(t, atok, "desktop", fp('2'))
	ts.agent(t, desktop, 5002, fp('2'))
	file, a := ts.createSession(t, desktop, protocol.P2PSessionRequest{Kind: protocol.SessionFile, TargetDeviceID: "laptop"})
	if a.Status != http.StatusCreated || file.Endpoints.Target.Port != 5001 {
		t.Fatalf("file session to the laptop = %d %s, want the daemon's port 5001", a.Status, a.Body)
	}
	if got := daemon.nextSession(); got.SessionID != file.SessionID {
		t.Fatalf("daemon's first p2p.session.created is %+v, want the file session", got)
	}

	for name, tc := range map[string]struct {
		tok  string
		req  protocol.P2PSessionRequest
		want int
	}{
		"not allowed":    {ts.enroll(t, ctok, "carols-pc", fp('4')), protocol.P2PSessionRequest{Kind: "terminal", ShareID: "s1"}, 403},
		"unknown share":  {bobsPC, protocol.P2PSessionRequest{Kind: "terminal", ShareID: "nope"}, 404},
		"wrong device":   {bobsPC, protocol.P2PSessionRequest{Kind: "terminal", ShareID: "s1", TargetDeviceID: "desktop"}, 400},
		"no share id":    {bobsPC, protocol.P2PSessionRequest{Kind: "terminal", TargetDeviceID: "laptop"}, 400},
		"share's device": {laptop, protocol.P2PSessionRequest{Kind: "terminal", ShareID: "s1"}, 400},
	} {
		if _, a := ts.createSession(t, tc.tok, tc.req); a.Status != tc.want {
			t.Errorf("%s: %d %s, want %d", name, a.Status, a.Body, tc.want)
		}
	}
	if _, a := ts.createSession(t, ts.enroll(t, ctok, "carols-2", fp('5')), protocol.P2PSessionRequest{Kind: "terminal", ShareID: "s1"}); !bytes.Contains(a.Body, []byte("--allow carol")) {
		t.Errorf("refusal %s lacks the --allow hint", a.Body)
	}
	// The owner's other device may join without an allow entry.
	if _, a := ts.createSession(t, desktop, protocol.P2PSessionRequest{Kind: "terminal", ShareID: "s1", TargetDeviceID: "laptop"}); a.Status != http.StatusCreated {
		t.Errorf("owner's other device: %d %s", a.Status, a.Body)
	}
}

// TestDeviceSessionsAreASet: a device with a daemon and a share-terminal
// session keeps both; the share session never stands for the device.
func TestDeviceSessionsAreASet(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok := ts.register(t, "alice", "secret1")
	laptop, desktop := ts.enroll(t, atok, "laptop", fp('1')), ts.enroll(t, atok, "desktop", fp('2'))
	ts.agent(t, desktop, 5002, fp('2'))
	ts.agent(t, laptop, 5001, fp('1'))
	target := func() int {
		t.Helper()
		s, a := ts.createSession(t, desktop, protocol.P2PSessionRequest{Kind: protocol.SessionFile, TargetDeviceID: "laptop"})
		if a.Status != http.StatusCreated {
			t.Fatalf("file session = %d %s", a.Status, a.Body)
		}
		return s.Endpoints.Target.Port
	}
	sharer := ts.share(t, laptop, 6001, fp('1'), protocol.TerminalOpen{ShareID: "s1", Cols: 80, Rows: 24})
	if port := target(); port != 5001 {
		t.Fatalf("file session targets port %d with a newer share session, want the daemon's 5001", port)
	}
	// A session that has not announced a QUIC endpoint loses to one that has.
	ts.dial(t, laptop)
	if port := target(); port != 5001 {
		t.Fatalf("file session targets port %d, want the announced daemon's 5001", port)
	}
	watcher := ts.dial(t, atok)
	watcher.watch("s1")
	_ = sharer.ws.Close()
	watcher.waitFor(protocol.TypeTerminalExit) // sent once the server has forgotten the session
	for _, d := range ts.devices(t, atok).Devices {
		if d.DeviceID == "laptop" && !d.Online {
			t.Fatal("laptop offline after its share session closed, with its daemon still connected")
		}
	}
	if port := target(); port != 5001 {
		t.Fatalf("file session after the share closed targets port %d, want 5001", port)
	}
}

// TestTerminalSlowWatcher: a watcher that never reads holds up neither
// the sharer nor the other watcher, who gets every byte in order.
func TestTerminalSlowWatcher(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, t.TempDir())
	cfg.Auth.Registration = "open"
	cfg.HTTP.WSRate, cfg.HTTP.WSBurst = 1_000_000, 1_000_000 // the sharer is a load generator here
	ts := startServer(t, cfg)
	atok, btok, _, laptop := terminalUsers(t, ts)
	sharer := ts.share(t, laptop, 6001, fp('1'), protocol.TerminalOpen{ShareID: "s1", Cols: 80, Rows: 24, Allow: []string{"bob"}})

	// A small receive buffer, set before connecting so the window is
	// negotiated for it, makes the stall bite after a few KB.
	nd := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	d := websocket.Dialer{NetDialContext: nd.DialContext}
	stalled, _, err := d.Dial(ts.wsURL(btok), nil) // bob never reads
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	watch, err := protocol.Encode(protocol.Envelope{Type: protocol.TypeTerminalWatch, ID: "w", Timestamp: time.Now(), Payload: mustJSON(t, protocol.TerminalRef{ShareID: "s1"})})
	if err != nil {
		t.Fatal(err)
	}
	if err := stalled.WriteMessage(websocket.TextMessage, watch); err != nil {
		t.Fatal(err)
	}
	fast := ts.dial(t, atok)
	fast.watch("s1")
	sharer.waitViewers("s1", "alice", "bob")
	const n, size = 5000, 1024
	got := make(chan error, 1)
	var progress atomic.Uint64 // what the fast watcher has
	go func() {
		var off uint64
		defer func() { progress.Store(math.MaxUint64) }() // the sender stops waiting
		for off < n*size {
			select {
			case b := <-fast.bin:
				f, err := protocol.DecodeTermFrame(b)
				if err != nil || f.Offset != off || !bytes.Equal(f.Data, chunk(f.Offset, size)) {
					got <- fmt.Errorf("frame at %d (%v), want %d bytes at %d", f.Offset, err, size, off)
					return
				}
				off += uint64(len(f.Data))
				progress.Store(off)
			case <-time.After(waitLong):
				got <- fmt.Errorf("fast watcher stuck at offset %d of %d", off, n*size)
				return
			}
		}
		got <- nil
	}()
	start := time.Now()
	for i := range n {
		// The server drops a watcher 4096 frames behind, as too slow; a
		// sharer faster than any terminal (it reads 5 MB in 20 ms) would
		// get even the fast one dropped, so it keeps within 2000 frames of
		// it. The stalled watcher must not hold either back.
		for uint64(i*size) > progress.Load()+2000*size {
			time.Sleep(time.Millisecond)
		}
		sharer.output("s1", uint64(i*size), chunk(uint64(i*size), size))
	}
	sent := time.Since(start)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	t.Logf("sharer sent %d KiB in %s; the fast watcher had all of it after %s", n*size>>10, sent, time.Since(start))
}

// chunk is the output at offset off: bytes that differ from frame to frame.
func chunk(off uint64, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(off>>10) ^ byte(i)
	}
	return b
}

func TestTerminalSharerDisconnects(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok, _, laptop := terminalUsers(t, ts)
	sharer := ts.share(t, laptop, 6001, fp('1'), protocol.TerminalOpen{ShareID: "s1", Cols: 80, Rows: 24, Allow: []string{"bob"}})
	alice, bob := ts.dial(t, atok), ts.dial(t, btok)
	alice.watch("s1")
	bob.watch("s1")
	sharer.waitViewers("s1", "alice", "bob")
	_ = sharer.ws.Close()
	for _, w := range []*wsClient{alice, bob} {
		var ex protocol.TerminalExit
		if err := w.waitFor(protocol.TypeTerminalExit).Unmarshal(&ex); err != nil || ex.Code != -1 || ex.Reason != "the sharer disconnected" {
			t.Fatalf("terminal.exit = %+v (%v), want code -1, the sharer disconnected", ex, err)
		}
	}
	// The share id is free again, for a new share.
	ts.share(t, laptop, 6001, fp('1'), protocol.TerminalOpen{ShareID: "s1", Cols: 80, Rows: 24})
}

func TestTerminalMalformedBinary(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok := ts.register(t, "alice", "secret1")
	c := ts.dial(t, atok)
	for _, b := range [][]byte{{}, {9, 1, 'x'}, {protocol.TermOutput, 40, 'a'}, {protocol.TermOutput, 1, 'a', 0, 0}} {
		c.sendBinary(b)
		c.send(protocol.TypeSystemHello, protocol.Hello{})
		if errs := errorsBefore(c, protocol.TypeSystemWelcome); !slices.Equal(errs, []string{protocol.CodeInvalid}) {
			t.Fatalf("binary %q: errors %v, want [invalid] and the connection open", b, errs)
		}
	}
}

// TestTerminalReopenSameDevice: an agent that reconnects before the server
// noticed its old session die opens its share again and takes it over,
// watchers included; the old session has no say any more.
func TestTerminalReopenSameDevice(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok, _, laptop := terminalUsers(t, ts)
	old := ts.share(t, laptop, 6001, fp('1'), protocol.TerminalOpen{ShareID: "s1", Cols: 80, Rows: 24, Allow: []string{"bob"}})
	alice, bob := ts.dial(t, atok), ts.dial(t, btok)
	alice.watch("s1")
	bob.watch("s1")
	old.waitViewers("s1", "alice", "bob")
	old.output("s1", 0, []byte("before"))
	alice.waitTerm() // "before", live

	now := ts.agent(t, laptop, 6002, fp('1'))
	now.send(protocol.TypeTerminalOpen, protocol.TerminalOpen{ShareID: "s1", Cols: 100, Rows: 30, AllowInput: true})
	now.waitViewers("s1", "alice") // bob is no longer allowed
	var ex protocol.TerminalExit
	if err := bob.waitFor(protocol.TypeTerminalExit).Unmarshal(&ex); err != nil || ex.Code != -1 {
		t.Fatalf("bob's terminal.exit = %+v (%v)", ex, err)
	}
	var open protocol.TerminalOpen
	if err := alice.waitFor(protocol.TypeTerminalOpen).Unmarshal(&open); err != nil || open.Cols != 100 || !open.AllowInput {
		t.Fatalf("alice's new terminal.open = %+v (%v)", open, err)
	}
	// A restarted agent counts output from 0 again; that is accepted once.
	live := now.output("s1", 0, []byte("after"))
	if got := alice.waitBinary(); !bytes.Equal(got, live) {
		t.Fatalf("after the takeover alice got %q, want %q", got, live)
	}
	old.output("s1", 6, []byte("stale"))
	old.send(protocol.TypeSystemHello, protocol.Hello{})
	if errs := errorsBefore(old, protocol.TypeSystemWelcome); !slices.Equal(errs, []string{protocol.CodeForbidden}) {
		t.Fatalf("output from the replaced session: errors %v, want [forbidden]", errs)
	}
	_ = old.ws.Close() // the share is not the old session's to end
	typed := alice.input("s1", []byte("ok\r"))
	if got := now.waitBinary(); !bytes.Equal(got, typed) {
		t.Fatalf("new sharer got %q, want %q", got, typed)
	}
}
