package e2e

import (
	"fmt"
	"testing"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// webServer is a `mesh serve` that a test may take down and bring back up
// on the same address and database.
type webServer struct {
	*meshServer
	dir  string
	env  []string
	down bool
}

// startWebServer runs `mesh serve` with open registration; its log is
// shown if the test fails. Start it after newBrowser, so that the tabs
// (opened later) close before it stops.
func startWebServer(t *testing.T, env ...string) *webServer {
	t.Helper()
	s := &webServer{dir: t.TempDir(), env: append([]string{"MESH_AUTH_BCRYPT_COST=4", "MESH_AUTH_REGISTRATION=open"}, env...)}
	s.meshServer = startServer(t, serverOpts{dir: s.dir, env: s.env})
	s.stopAtCleanup(t)
	return s
}

// stopAtCleanup stops the server when the test ends, showing its log if
// the test failed, before startServer's own cleanup (registered earlier,
// so it runs later) would stop it without the log.
func (s *webServer) stopAtCleanup(t *testing.T) {
	t.Cleanup(func() {
		if !s.down {
			s.stopAndLog(t)
		}
	})
}

// stopAndLog stops the server, showing its log if the test failed.
func (s *webServer) stopAndLog(t *testing.T) {
	t.Helper()
	s.down = true
	if logs := s.stop(t); t.Failed() {
		t.Logf("mesh serve log:\n%s", tail(logs, 60))
	}
}

// restart starts the stopped server again on its address.
func (s *webServer) restart(t *testing.T) {
	t.Helper()
	s.meshServer = startServer(t, serverOpts{dir: s.dir, env: s.env, addr: s.addr()})
	s.down = false
	s.stopAtCleanup(t)
}

// seedMessages sends n messages "history N" to room over one WebSocket
// and waits until the server has stored them all.
func seedMessages(t *testing.T, base, tok string, room int64, n int) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(base, tok), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := benchSend(ws, protocol.TypeSystemHello, "hello", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := benchWaitFor(ws, protocol.TypeSystemWelcome, webWait); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("seed-%d", i)
		if err := benchSend(ws, protocol.TypeChatSend, id, protocol.ChatSend{RoomID: room, Text: fmt.Sprintf("history %d", i), ClientMsgID: id}); err != nil {
			t.Fatal(err)
		}
	}
	for acked := 0; acked < n; {
		env, err := benchWaitFor(ws, protocol.TypeChatCreated, webWait)
		if err != nil {
			t.Fatalf("after %d of %d acknowledgements: %v", acked, n, err)
		}
		var cc protocol.ChatCreated
		if env.Unmarshal(&cc) == nil && cc.RefID != "" {
			acked++
		}
	}
}
