package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// TestTransferStartedFromTheWebApp: a browser's transfer.start makes the
// laptop's agent send a file from its send_dirs to home; a path outside them
// is refused and the refusal shows in the transfer list.
func TestTransferStartedFromTheWebApp(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	shared := t.TempDir()
	file := filepath.Join(shared, "notes.txt")
	if err := os.WriteFile(file, []byte("sent from the web app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.laptop.env = append(w.laptop.env, "MESH_AGENT_SEND_DIRS="+shared)
	w.laptop.run(t, w.srv.url, w.tok)

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(w.srv.url, "http")+"/ws?token="+w.tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	start := func(path string) {
		t.Helper()
		req := protocol.TransferStart{FromDevice: "laptop", ToDevice: "home", Paths: []string{path}}
		if err := benchSend(ws, protocol.TypeTransferStart, "s-"+filepath.Base(path), req); err != nil {
			t.Fatal(err)
		}
		if _, err := benchWaitFor(ws, protocol.TypeTransferStart, 10*time.Second); err != nil {
			t.Fatalf("transfer.start not accepted: %v", err)
		}
	}
	start(file)
	landed := filepath.Join(w.home.inbox(), "notes.txt")
	eventually(t, 20*time.Second, func() bool {
		b, err := os.ReadFile(landed)
		return err == nil && string(b) == "sent from the web app\n"
	}, "%s never arrived", landed)

	start("/etc/hostname") // not in send_dirs
	var l struct {
		Transfers []struct {
			Name, Outcome string
		} `json:"transfers"`
	}
	eventually(t, 20*time.Second, func() bool {
		l.Transfers = nil
		getJSON(t, w.srv.url+"/api/transfers", w.tok, &l)
		for _, tr := range l.Transfers {
			if tr.Name == "hostname" && tr.Outcome == protocol.OutcomeFailed {
				return true
			}
		}
		return false
	}, "no failed transfer reported for a path outside send_dirs: %+v", &l)
}
