package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// TestCrashKeepsAcknowledgedMessages kills `mesh serve` with SIGKILL while
// clients send, restarts it on the same database, and requires every message
// whose chat.message.created reached its sender to be in the history exactly
// once, with gap-free sequence numbers.
func TestCrashKeepsAcknowledgedMessages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := []string{"MESH_AUTH_BCRYPT_COST=4", "MESH_AUTH_REGISTRATION=open", "MESH_SERVER_WS_RATE=100000", "MESH_SERVER_WS_BURST=100000", "MESH_LOG=warn"}
	s := startServer(t, serverOpts{dir: dir, env: env})
	tok := apiToken(t, s.url, "alice")
	room := apiRoom(t, s.url, tok, "crash")

	const senders = 4
	var (
		mu    sync.Mutex           // guards acked
		acked = map[string]int64{} // client_msg_id → seq
		wg    sync.WaitGroup
	)
	enough := make(chan struct{})
	var once sync.Once
	for w := range senders {
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(s.url, tok), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		// At most 64 unacknowledged sends per writer: flat out, the four
		// sessions (each gets every message) fell 4096 events behind under
		// the race detector and were dropped as too slow, as designed.
		window, gone := make(chan struct{}, 64), make(chan struct{})
		wg.Add(2)
		go func() { // writer: sends until the server dies
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case window <- struct{}{}:
				case <-gone: // the reader stopped: the server is gone
					return
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				b, _ := protocol.Encode(protocol.Envelope{Type: protocol.TypeChatSend, ID: id,
					Payload: mustRaw(protocol.ChatSend{RoomID: room, Text: "crash " + id, ClientMsgID: id})})
				if ws.WriteMessage(websocket.TextMessage, b) != nil {
					return
				}
			}
		}()
		go func() { // reader: records acknowledgements
			defer wg.Done()
			defer close(gone)
			for {
				_, b, err := ws.ReadMessage()
				if err != nil {
					return
				}
				e, err := protocol.Decode(b)
				if err != nil || e.Type != protocol.TypeChatCreated {
					continue
				}
				var cc protocol.ChatCreated
				if e.Unmarshal(&cc) != nil || cc.RefID == "" {
					continue
				}
				select {
				case <-window:
				default:
				}
				mu.Lock()
				acked[cc.Message.ClientMsgID] = cc.Message.Seq
				n := len(acked)
				mu.Unlock()
				if n >= 2000 {
					once.Do(func() { close(enough) })
				}
			}
		}()
	}
	select {
	case <-enough:
	case <-time.After(3 * time.Minute): // a liveness bound: CI's race build shares 2 cores with browsers
		t.Fatal("senders did not get 2000 acknowledgements in 3 minutes")
	}
	s.kill(t) // SIGKILL: no shutdown code runs
	wg.Wait() // every connection has ended; acked is final
	t.Logf("killed the server after %d acknowledged messages", len(acked))

	s2 := startServer(t, serverOpts{dir: dir, env: env})
	defer s2.stop(t)
	seen := map[string]int{}
	var seqs []int64
	before := int64(0)
	for {
		url := fmt.Sprintf("%s/api/rooms/%d/messages?limit=200", s2.url, room)
		if before > 0 {
			url += fmt.Sprintf("&before=%d", before)
		}
		var page struct {
			Messages []protocol.Message `json:"messages"`
			HasMore  bool               `json:"has_more"`
		}
		getJSON(t, url, tok, &page)
		for _, m := range page.Messages {
			seen[m.ClientMsgID]++
			seqs = append(seqs, m.Seq)
		}
		if !page.HasMore {
			break
		}
		before = page.Messages[len(page.Messages)-1].Seq
	}
	for id, seq := range acked {
		if seen[id] != 1 {
			t.Errorf("acknowledged message %s (seq %d) is in the history %d times, want 1", id, seq, seen[id])
		}
	}
	for i, seq := range seqs { // newest first: N, N-1, ..., 1
		if want := int64(len(seqs) - i); seq != want {
			t.Fatalf("history seq %d at position %d, want %d: a gap or a duplicate", seq, i, want)
		}
	}
	t.Logf("history after restart: %d messages, all %d acknowledged ones present once", len(seqs), len(acked))
}
