package server_test

import (
	"bytes"
	"strings"
	"testing"

	"mesh/protocol"
)

// TestTerminalNoCopyWithoutWatcher: output a sharer sends while no browser
// watches is not kept (a watcher arriving later is shown nothing of it),
// and once the last watcher leaves the server forgets what it kept.
func TestTerminalNoCopyWithoutWatcher(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, _, _, laptop := terminalUsers(t, ts)
	sharer := ts.share(t, laptop, 6001, fp('1'), protocol.TerminalOpen{ShareID: "quiet", Cols: 80, Rows: 24})
	sharer.output("quiet", 0, []byte("printed while nobody watched"))
	sharer.sync()
	if n := ts.Srv.TerminalKept("quiet"); n != 0 {
		t.Fatalf("the server keeps %d bytes of a share nobody watches, want 0", n)
	}
	w := ts.dial(t, atok)
	w.watch("quiet")
	sharer.waitViewers("quiet", "alice")
	live := sharer.output("quiet", 28, []byte("watched"))
	if got := w.waitBinary(); !bytes.Equal(got, live) {
		t.Fatalf("the watcher got %q first, want only what was sent while it watched", got)
	}
	if n := ts.Srv.TerminalKept("quiet"); n != len("watched") {
		t.Errorf("the server keeps %d bytes while watched, want %d", n, len("watched"))
	}
	w.send(protocol.TypeTerminalUnwatch, protocol.TerminalRef{ShareID: "quiet"})
	sharer.waitViewers("quiet")
	if n := ts.Srv.TerminalKept("quiet"); n != 0 {
		t.Errorf("after the last watcher left the server keeps %d bytes, want 0", n)
	}
}

// TestTerminalNoWeb: a --no-web share refuses browser watchers, saying how
// to join instead.
func TestTerminalNoWeb(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, _, _, laptop := terminalUsers(t, ts)
	ts.share(t, laptop, 6001, fp('1'), protocol.TerminalOpen{ShareID: "private", Cols: 80, Rows: 24, NoWeb: true})
	w := ts.dial(t, atok)
	id := w.send(protocol.TypeTerminalWatch, protocol.TerminalRef{ShareID: "private"})
	if e := w.waitError(id); e.Code != protocol.CodeForbidden || !strings.Contains(e.Message, "--no-web") || !strings.Contains(e.Message, "join-terminal private") {
		t.Errorf("watching a --no-web share: %+v, want forbidden, naming --no-web and join-terminal", e)
	}
}
