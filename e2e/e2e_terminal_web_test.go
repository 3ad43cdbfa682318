package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// TestTerminalWatchedOverWebSocket: a browser's path, against the real
// share-terminal process. The watcher gets the recent screen and live
// output as binary frames, and on an --allow-input share its keystrokes
// run in the shell.
func TestTerminalWatchedOverWebSocket(t *testing.T) {
	t.Parallel()
	w := newTermWorld(t)
	sh := w.sharer.start(t, "agent", "share-terminal", "--allow-input", "--", "sh")
	id := sh.shareID(t)
	sh.typeIn(t, "echo before-$((40+2))\n")
	sh.waitOutput(t, "before-42")

	url := "ws" + strings.TrimPrefix(w.srv.url, "http") + "/ws?token=" + w.aliceTok
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := benchSend(ws, protocol.TypeTerminalWatch, "w1", protocol.TerminalRef{ShareID: id}); err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	readUntil := func(want string) {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second)) // a failed deadline shows up as a failed read
		for !strings.Contains(screen.String(), want) {
			mt, b, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %q: %v; got %q", want, err, screen.String())
			}
			if mt != websocket.BinaryMessage {
				if env, err := protocol.Decode(b); err == nil && env.Type == protocol.TypeSystemError {
					t.Fatalf("server: %s", b)
				}
				continue
			}
			f, err := protocol.DecodeTermFrame(b)
			if err != nil || f.Kind != protocol.TermOutput || f.ShareID != id {
				t.Fatalf("binary frame %q: %+v, %v", b, f, err)
			}
			screen.Write(f.Data)
		}
	}
	readUntil("before-42") // the ring's replay
	sh.waitOutput(t, "(browser)")

	marker := filepath.Join(t.TempDir(), "typed-in-browser")
	in := protocol.AppendTermFrame(nil, protocol.TermFrame{Kind: protocol.TermInput, ShareID: id,
		Data: []byte("touch " + marker + " && echo web-$((40+2))\r")})
	if err := ws.WriteMessage(websocket.BinaryMessage, in); err != nil {
		t.Fatal(err)
	}
	readUntil("web-42")
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("browser keystrokes on an --allow-input share did not run: %v", err)
	}
	sh.typeIn(t, "exit\n")
	if code := sh.exit(t); code != 0 {
		t.Fatalf("share-terminal exit code %d", code)
	}
}

// TestTerminalViewerDropsAndRejoins: a joiner killed outright does not end
// or stall the share, and the same command rejoins.
func TestTerminalViewerDropsAndRejoins(t *testing.T) {
	t.Parallel()
	w := newTermWorld(t)
	sh := w.sharer.start(t, "agent", "share-terminal", "--allow", "bob", "--", "sh")
	id := sh.shareID(t)
	first := w.bob.start(t, "agent", "join-terminal", id)
	first.waitOutput(t, "joined")
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.exit(t)
	sh.typeIn(t, "echo still-$((40+2))\n")
	sh.waitOutput(t, "still-42")
	again := w.bob.start(t, "agent", "join-terminal", id)
	again.waitOutput(t, "still-42")
	sh.typeIn(t, "echo live-$((40+2))\n")
	again.waitOutput(t, "live-42")
	sh.typeIn(t, "exit 0\n")
	if code := sh.exit(t); code != 0 {
		t.Fatalf("share-terminal exit code %d", code)
	}
	if code := again.exit(t); code != 0 {
		t.Fatalf("rejoined viewer exit code %d:\n%s", code, again.out.String())
	}
}
