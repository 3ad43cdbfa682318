package e2e

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// BenchmarkPersist measures sustained chat messages stored per second (WAL,
// synchronous=NORMAL, group commit of up to 128 per transaction) through the
// real server: 50 senders, each in its own room with 64 sends in flight, for
// 5 s. Every acknowledged message is counted only after the server stored it.
func BenchmarkPersist(b *testing.B) {
	for b.Loop() {
		srv := startServer(b, serverOpts{env: benchEnv("MESH_SERVER_WS_RATE=1000000", "MESH_SERVER_WS_BURST=1000000")})
		const senders, window = 50, 64
		names := make([]string, senders)
		for i := range names {
			names[i] = fmt.Sprintf("writer%02d", i)
		}
		toks := srv.registerAll(b, names)
		rooms := make([]int64, senders)
		for i, tok := range toks {
			rooms[i] = srv.createRoom(b, tok, names[i])
		}
		conns := srv.dialMany(b, toks)
		var acked atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		start := time.Now()
		for i, ws := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := persistSender(ws, rooms[i], window, stop, &acked); err != nil {
					b.Error(err)
				}
			}()
		}
		time.Sleep(5 * time.Second) // the measured interval, not synchronisation
		close(stop)
		wg.Wait()
		el := time.Since(start)
		n := acked.Load()
		b.ReportMetric(float64(n)/el.Seconds(), "stored-msgs/s")
		b.Logf("%d messages acknowledged by %d senders in %s", n, senders, el.Round(time.Millisecond))
	}
}

// persistSender keeps window sends in flight until stop, counting acks.
func persistSender(ws *websocket.Conn, room int64, window int, stop <-chan struct{}, acked *atomic.Int64) error {
	credit := make(chan struct{}, window)
	for range window {
		credit <- struct{}{}
	}
	readErr := make(chan error, 1)
	go func() {
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			env, err := protocol.Decode(b)
			if err != nil || env.Type != protocol.TypeChatCreated {
				continue
			}
			acked.Add(1)
			credit <- struct{}{}
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		case err := <-readErr:
			return err
		case <-credit:
		}
		id := fmt.Sprint(i)
		if err := benchSend(ws, protocol.TypeChatSend, id, protocol.ChatSend{RoomID: room, Text: "persist " + id, ClientMsgID: id}); err != nil {
			return err
		}
	}
}
