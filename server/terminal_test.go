package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// share connects as a device, announces port and fingerprint, opens the
// share and waits for its acknowledgement (an empty terminal.viewers).
func (ts *testServer) share(t *testing.T, devTok string, port int, fingerprint string, open protocol.TerminalOpen) *wsClient {
	t.Helper()
	c := ts.agent(t, devTok, port, fingerprint)
	c.send(protocol.TypeTerminalOpen, open)
	var v protocol.TerminalViewers
	if err := c.waitFor(protocol.TypeTerminalViewers).Unmarshal(&v); err != nil || v.ShareID != open.ShareID || len(v.Viewers) != 0 {
		t.Fatalf("terminal.open ack = %+v (%v), want share %q with no viewers", v, err, open.ShareID)
	}
	return c
}

// sendBinary writes one binary message.
func (c *wsClient) sendBinary(b []byte) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		c.t.Fatalf("write binary frame: %v", err)
	}
}

// output sends one TermOutput frame and returns the message as sent.
func (c *wsClient) output(id string, off uint64, data []byte) []byte {
	c.t.Helper()
	b := protocol.AppendTermFrame(nil, protocol.TermFrame{Kind: protocol.TermOutput, ShareID: id, Offset: off, Data: data})
	c.sendBinary(b)
	return b
}

// input sends one TermInput frame and returns the message as sent.
func (c *wsClient) input(id string, data []byte) []byte {
	c.t.Helper()
	b := protocol.AppendTermFrame(nil, protocol.TermFrame{Kind: protocol.TermInput, ShareID: id, Data: data})
	c.sendBinary(b)
	return b
}

// sync returns once the server has handled everything c sent before.
func (c *wsClient) sync() {
	c.t.Helper()
	c.send(protocol.TypeSystemHello, protocol.Hello{})
	c.waitFor(protocol.TypeSystemWelcome)
}

// waitBinary returns the next binary message.
func (c *wsClient) waitBinary() []byte {
	c.t.Helper()
	select {
	case b := <-c.bin:
		return b
	case <-c.closed:
		select {
		case b := <-c.bin:
			return b
		default:
			c.t.Fatalf("connection closed (%v) before a binary frame", c.cerr)
		}
	case <-time.After(waitLong):
		c.t.Fatalf("no binary frame within %s", waitLong)
	}
	return nil
}

// waitTerm returns the next binary message decoded.
func (c *wsClient) waitTerm() protocol.TermFrame {
	c.t.Helper()
	b := c.waitBinary()
	f, err := protocol.DecodeTermFrame(b)
	if err != nil {
		c.t.Fatalf("server sent an undecodable terminal frame: %v", err)
	}
	return f
}

// watch sends terminal.watch and returns the terminal.open it answers with.
func (c *wsClient) watch(id string) protocol.TerminalOpen {
	c.t.Helper()
	c.send(protocol.TypeTerminalWatch, protocol.TerminalRef{ShareID: id})
	var open protocol.TerminalOpen
	if err := c.waitFor(protocol.TypeTerminalOpen).Unmarshal(&open); err != nil || open.ShareID != id {
		c.t.Fatalf("terminal.open = %+v (%v), want share %q", open, err, id)
	}
	return open
}

// waitViewers waits for a terminal.viewers listing exactly want.
func (c *wsClient) waitViewers(id string, want ...string) {
	c.t.Helper()
	c.waitMatch(protocol.TypeTerminalViewers, func(e protocol.Envelope) bool {
		var v protocol.TerminalViewers
		return e.Unmarshal(&v) == nil && v.ShareID == id && slices.Equal(v.Viewers, want)
	})
}

// until returns the envelopes that arrive up to and including the first of type typ.
func (c *wsClient) until(typ protocol.Type) []protocol.Envelope {
	c.t.Helper()
	var got []protocol.Envelope
	deadline := time.After(waitLong)
	for {
		select {
		case env := <-c.in:
			if got = append(got, env); env.Type == typ {
				return got
			}
		case <-c.closed:
			c.t.Fatalf("connection closed (%v) before a %s frame", c.cerr, typ)
		case <-deadline:
			c.t.Fatalf("no %s frame within %s", typ, waitLong)
		}
	}
}

// terminalUsers registers alice (the sharer), bob (allowed) and carol (not),
// and enrols alice's laptop.
func terminalUsers(t *testing.T, ts *testServer) (atok, btok, ctok, laptop string) {
	t.Helper()
	atok, btok, ctok = ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1"), ts.register(t, "carol", "secret1")
	return atok, btok, ctok, ts.enroll(t, atok, "laptop", fp('1'))
}

func errCode(t *testing.T, c *wsClient, id string) string {
	t.Helper()
	return c.waitError(id).Code
}

func TestTerminalOpenRules(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, _, _, laptop := terminalUsers(t, ts)
	browser := ts.dial(t, atok)
	open := protocol.TerminalOpen{ShareID: "s1", Command: "bash", Cols: 80, Rows: 24}
	if code := errCode(t, browser, browser.send(protocol.TypeTerminalOpen, open)); code != protocol.CodeForbidden {
		t.Fatalf("terminal.open from a user token: %s, want forbidden", code)
	}
	ts.share(t, laptop, 6001, fp('1'), open)
	other := ts.agent(t, ts.enroll(t, atok, "desktop", fp('2')), 6002, fp('2'))
	for name, tc := range map[string]struct {
		typ     protocol.Type
		payload any
		want    string
	}{
		"zero size":           {protocol.TypeTerminalOpen, protocol.TerminalOpen{ShareID: "s2", Cols: 0, Rows: 24}, protocol.CodeInvalid},
		"bad id":              {protocol.TypeTerminalOpen, protocol.TerminalOpen{ShareID: "a b", Cols: 80, Rows: 24}, protocol.CodeInvalid},
		"taken by a device":   {protocol.TypeTerminalOpen, open, protocol.CodeInvalid},
		"viewers from client": {protocol.TypeTerminalViewers, protocol.TerminalViewers{ShareID: "s1"}, protocol.CodeInvalid},
		"resize not sharer":   {protocol.TypeTerminalResize, protocol.TerminalResize{ShareID: "s1", Cols: 10, Rows: 10}, protocol.CodeForbidden},
		"exit not sharer":     {protocol.TypeTerminalExit, protocol.TerminalExit{ShareID: "s1"}, protocol.CodeForbidden},
		"resize unknown":      {protocol.TypeTerminalResize, protocol.TerminalResize{ShareID: "nope", Cols: 10, Rows: 10}, protocol.CodeNotFound},
	} {
		if code := errCode(t, other, other.send(tc.typ, tc.payload)); code != tc.want {
			t.Errorf("%s: %s, want %s", name, code, tc.want)
		}
	}
	// Output only from the share's own session.
	other.output("s1", 0, []byte("x"))
	other.send(protocol.TypeSystemHello, protocol.Hello{})
	if errs := errorsBefore(other, protocol.TypeSystemWelcome); !slices.Equal(errs, []string{protocol.CodeForbidden}) {
		t.Fatalf("output from another session: errors %v, want [forbidden]", errs)
	}
}

// errorsBefore returns the codes of the system.errors that arrive before a frame of type typ.
func errorsBefore(c *wsClient, typ protocol.Type) []string {
	c.t.Helper()
	var codes []string
	for _, e := range c.until(typ) {
		var pe protocol.Error
		if e.Type == protocol.TypeSystemError && e.Unmarshal(&pe) == nil {
			codes = append(codes, pe.Code)
		}
	}
	return codes
}

func TestTerminalReplayAndRelay(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok, _, laptop := terminalUsers(t, ts)
	sharer := ts.share(t, laptop, 6001, fp('1'), protocol.TerminalOpen{ShareID: "s1", Command: "htop", Cols: 120, Rows: 40, Allow: []string{"Bob"}})
	first := []byte("hello \xff\xfe\x00 world\r\n") // not UTF-8: binary frames carry any bytes

	alice := ts.dial(t, atok) // the owner, in a browser
	if open := alice.watch("s1"); open.Cols != 120 || open.Rows != 40 || open.Command != "htop" || open.AllowInput {
		t.Fatalf("terminal.open to the watcher = %+v", open)
	}
	// The first watcher is the sharer's cue to send its recent screen.
	sharer.waitViewers("s1", "alice")
	sharer.output("s1", 0, first)
	sharer.output("s1", uint64(len(first)), []byte("$ "))
	for got := []byte{}; len(got) < len(first)+2; {
		f := alice.waitTerm()
		if f.Offset != uint64(len(got)) {
			t.Fatalf("alice got output at %d after %d bytes", f.Offset, len(got))
		}
		got = append(got, f.Data...)
	}
	bob := ts.dial(t, btok)
	bob.watch("s1")
	if f := bob.waitTerm(); f.Offset != 0 || len(f.Data) != len(first)+2 {
		t.Fatalf("bob's replay = %+v", f)
	}
	sharer.waitViewers("s1", "alice", "bob")

	live := sharer.output("s1", uint64(len(first))+2, []byte("ls\xff\r\n"))
	for _, w := range []*wsClient{alice, bob} {
		if got := w.waitBinary(); !bytes.Equal(got, live) {
			t.Fatalf("live frame = %q, want the sharer's exact message %q", got, live)
		}
	}
	// A second tab of bob's counts once.
	bob2 := ts.dial(t, btok)
	bob2.watch("s1")
	sharer.waitViewers("s1", "alice", "bob")
	bob2.send(protocol.TypeTerminalUnwatch, protocol.TerminalRef{ShareID: "s1"})
	bob.send(protocol.TypeTerminalUnwatch, protocol.TerminalRef{ShareID: "s1"})
	sharer.waitViewers("s1", "alice")
	_ = alice.ws.Close() // a watcher going away is a viewer less
	sharer.waitViewers("s1")
}

func TestTerminalReplayBoundsAndGaps(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, t.TempDir())
	cfg.Auth.Registration = "open"
	cfg.HTTP.WSRate, cfg.HTTP.WSBurst = 10_000, 10_000
	ts := startServer(t, cfg)
	atok, _, _, laptop := terminalUsers(t, ts)
	sharer := ts.share(t, laptop, 6001, fp('1'), protocol.TerminalOpen{ShareID: "big", Cols: 80, Rows: 24})
	first := ts.dial(t, atok) // someone watches, so the server keeps output
	first.watch("big")
	sharer.waitViewers("big", "alice")
	var all []byte
	for i := range 6 { // 360 KiB, more than the 256 KiB kept
		chunk := bytes.Repeat([]byte{byte('a' + i), 0xff}, 30<<10)
		sharer.output("big", uint64(len(all)), chunk)
		all = append(all, chunk...)
	}
	sharer.sync()
	w := ts.dial(t, atok)
	w.watch("big")
	var got []byte
	start := uint64(len(all) - 256<<10)
	for len(got) < 256<<10 {
		f := w.waitTerm()
		if f.Offset != start+uint64(len(got)) || len(f.Data) > protocol.MaxFrame-100 {
			t.Fatalf("replay frame at %d with %d bytes after %d bytes from %d", f.Offset, len(f.Data), len(got), start)
		}
		got = append(got, f.Data...)
	}
	if !bytes.Equal(got, all[start:]) {
		t.Fatal("replay is not the last 256 KiB of output")
	}
	// The sharer dropped output (a gap): the ring restarts at the new offset.
	gap := uint64(len(all)) + 1000
	sharer.output("big", gap, []byte("after the gap"))
	if f := w.waitTerm(); f.Offset != gap {
		t.Fatalf("live frame after the gap at %d, want %d", f.Offset, gap)
	}
	late := ts.dial(t, atok)
	late.watch("big")
	if f := late.waitTerm(); f.Offset != gap || string(f.Data) != "after the gap" {
		t.Fatalf("replay after a gap = %d %q", f.Offset, f.Data)
	}
	// Output that repeats bytes already relayed is refused.
	sharer.output("big", gap, []byte("again"))
	sharer.send(protocol.TypeSystemHello, protocol.Hello{})
	if errs := errorsBefore(sharer, protocol.TypeSystemWelcome); !slices.Equal(errs, []string{protocol.CodeInvalid}) {
		t.Fatalf("output behind the ring: errors %v, want [invalid]", errs)
	}
}

func TestTerminalWatchPermissions(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok, ctok, laptop := terminalUsers(t, ts)
	ts.share(t, laptop, 6001, fp('1'), protocol.TerminalOpen{ShareID: "s1", Command: "vim", Cols: 80, Rows: 24, AllowInput: true, Allow: []string{"bob"}})
	carol := ts.dial(t, ctok)
	id := carol.send(protocol.TypeTerminalWatch, protocol.TerminalRef{ShareID: "s1"})
	if pe := carol.waitError(id); pe.Code != protocol.CodeForbidden || !strings.Contains(pe.Message, "--allow carol") {
		t.Fatalf("carol watches: %+v, want forbidden with the --allow hint", pe)
	}
	if code := errCode(t, carol, carol.send(protocol.TypeTerminalWatch, protocol.TerminalRef{ShareID: "nope"})); code != protocol.CodeNotFound {
		t.Fatalf("watch an unknown share: %s, want not_found", code)
	}
	bob := ts.dial(t, btok)
	if open := bob.watch("s1"); !open.AllowInput {
		t.Fatalf("bob's terminal.open = %+v, want allow_input", open)
	}

	type listing struct {
		Terminals []struct {
			ShareID    string    `json:"share_id"`
			User       string    `json:"user"`
			DeviceID   string    `json:"device_id"`
			Command    string    `json:"command"`
			Cols       int       `json:"cols"`
			Rows       int       `json:"rows"`
			AllowInput bool      `json:"allow_input"`
			StartedAt  time.Time `json:"started_at"`
			Viewers    []string  `json:"viewers"`
		} `json:"terminals"`
	}
	for name, tc := range map[string]struct {
		tok  string
		want int
	}{"owner": {atok, 1}, "owner's device": {laptop, 1}, "allowed": {btok, 1}, "stranger": {ctok, 0}} {
		a := ts.do(t, http.MethodGet, "/api/terminals", nil, tc.tok)
		var l listing
		if a.Status != http.StatusOK || json.Unmarshal(a.Body, &l) != nil || len(l.Terminals) != tc.want {
			t.Errorf("%s: GET /api/terminals = %d %s, want %d shares", name, a.Status, a.Body, tc.want)
			continue
		}
		if tc.want == 1 {
			got := l.Terminals[0]
			if got.ShareID != "s1" || got.User != "alice" || got.DeviceID != "laptop" || got.Command != "vim" || got.Cols != 80 ||
				got.Rows != 24 || !got.AllowInput || got.StartedAt.IsZero() || !slices.Equal(got.Viewers, []string{"bob"}) {
				t.Errorf("%s: share = %+v", name, got)
			}
		}
	}
	if a := ts.do(t, http.MethodGet, "/api/terminals", nil, ""); a.Status != http.StatusUnauthorized {
		t.Errorf("GET /api/terminals without a token = %d", a.Status)
	}
}

func TestTerminalInput(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok, ctok, laptop := terminalUsers(t, ts)
	ro := ts.share(t, laptop, 6001, fp('1'), protocol.TerminalOpen{ShareID: "ro", Cols: 80, Rows: 24, Allow: []string{"bob"}})
	rw := ts.share(t, laptop, 6002, fp('1'), protocol.TerminalOpen{ShareID: "rw", Cols: 80, Rows: 24, AllowInput: true, Allow: []string{"bob"}})
	bob := ts.dial(t, btok)
	bob.watch("ro")

	// Read-only: every keystroke is dropped, with one error per watch.
	for range 3 {
		bob.input("ro", []byte("rm -rf /\r"))
	}
	bob.send(protocol.TypeSystemHello, protocol.Hello{})
	if errs := errorsBefore(bob, protocol.TypeSystemWelcome); !slices.Equal(errs, []string{protocol.CodeForbidden}) {
		t.Fatalf("typing into a read-only share: errors %v, want one forbidden", errs)
	}
	bob.send(protocol.TypeTerminalUnwatch, protocol.TerminalRef{ShareID: "ro"})
	ro.waitViewers("ro") // after bob's keystrokes, had they been relayed
	if n := len(ro.bin); n != 0 {
		t.Fatalf("the read-only sharer got %d input frames", n)
	}

	// With allow_input, the exact message reaches the sharer.
	bob.watch("rw")
	typed := bob.input("rw", []byte("echo \xff\x1b[A\r"))
	if got := rw.waitBinary(); !bytes.Equal(got, typed) {
		t.Fatalf("sharer got %q, want %q", got, typed)
	}
	// Keystrokes from a session that is not watching are refused.
	carol, alice := ts.dial(t, ctok), ts.dial(t, atok)
	for _, c := range []*wsClient{carol, alice} {
		c.input("rw", []byte("x"))
		c.send(protocol.TypeSystemHello, protocol.Hello{})
		if errs := errorsBefore(c, protocol.TypeSystemWelcome); !slices.Equal(errs, []string{protocol.CodeForbidden}) {
			t.Fatalf("input without watching: errors %v, want [forbidden]", errs)
		}
	}
}

func TestTerminalResizeAndExit(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok, _, laptop := terminalUsers(t, ts)
	sharer := ts.share(t, laptop, 6001, fp('1'), protocol.TerminalOpen{ShareID: "s1", Cols: 80, Rows: 24, Allow: []string{"bob"}})
	bob := ts.dial(t, btok)
	bob.watch("s1")
	sharer.send(protocol.TypeTerminalResize, protocol.TerminalResize{ShareID: "s1", Cols: 132, Rows: 50})
	var rs protocol.TerminalResize
	if err := bob.waitFor(protocol.TypeTerminalResize).Unmarshal(&rs); err != nil || rs.Cols != 132 || rs.Rows != 50 {
		t.Fatalf("terminal.resize = %+v (%v)", rs, err)
	}
	if code := errCode(t, sharer, sharer.send(protocol.TypeTerminalResize, protocol.TerminalResize{ShareID: "s1", Cols: 5000, Rows: 50})); code != protocol.CodeInvalid {
		t.Fatalf("resize to 5000 columns: %s, want invalid", code)
	}
	if open := ts.dial(t, atok).watch("s1"); open.Cols != 132 || open.Rows != 50 {
		t.Fatalf("a new watcher sees %dx%d, want 132x50", open.Cols, open.Rows)
	}
	sharer.send(protocol.TypeTerminalExit, protocol.TerminalExit{ShareID: "s1", Code: 3})
	var ex protocol.TerminalExit
	if err := bob.waitFor(protocol.TypeTerminalExit).Unmarshal(&ex); err != nil || ex.Code != 3 || ex.ShareID != "s1" {
		t.Fatalf("terminal.exit = %+v (%v)", ex, err)
	}
	if code := errCode(t, bob, bob.send(protocol.TypeTerminalWatch, protocol.TerminalRef{ShareID: "s1"})); code != protocol.CodeNotFound {
		t.Fatalf("watch an ended share: %s, want not_found", code)
	}
	if a := ts.do(t, http.MethodGet, "/api/terminals", nil, atok); !strings.Contains(string(a.Body), `"terminals":[]`) {
		t.Fatalf("GET /api/terminals after exit = %s", a.Body)
	}
}
