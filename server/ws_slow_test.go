package server_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mesh/protocol"
	"mesh/server"
)

// TestStalledClientDoesNotDelayOthers: one member never reads; 50 others
// must still receive every message, and the stalled one is dropped with
// 1013 rather than holding anything up.
func TestStalledClientDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, t.TempDir())
	cfg.Auth.Registration = "open"
	cfg.HTTP.WSRate, cfg.HTTP.WSBurst = 1_000_000, 1_000_000 // the sender is a load generator here
	ts := startServer(t, cfg)
	tok := ts.register(t, "alice", "secret1")
	room := ts.createRoom(t, tok, "busy", "public")

	// A small receive buffer, set before connecting so the window is
	// negotiated for it, makes the stall bite after a few KB.
	nd := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	d := websocket.Dialer{NetDialContext: nd.DialContext}
	stalled, _, err := d.Dial(ts.wsURL(tok), nil) // same user: membership is what matters
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	const readers, n = 50, 6000 // n > maxPending: a stalled session must overflow
	text := strings.Repeat("x", 200)
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	got := make([]atomic.Int64, readers) // what each reader has
	for r := range readers {
		ws := dialRaw(t, ts, tok)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := countMessages(ws, n, &got[r])
			got[r].Store(n) // done or failed: the sender stops waiting for it
			errs <- err
		}()
	}
	sender := ts.dial(t, tok)
	start := time.Now()
	for i := range n {
		// The server drops a session 4096 frames behind, as too slow; the
		// sender keeps within 2000 messages of the slowest live reader, so
		// that only the stalled one overflows (the point of the test).
		for i%100 == 0 && slowest(got) < int64(i-2000) {
			time.Sleep(time.Millisecond)
		}
		sender.send(protocol.TypeChatSend, protocol.ChatSend{RoomID: room, Text: fmt.Sprintf("%d %s", i, text), ClientMsgID: fmt.Sprint(i)})
		if i%100 == 99 { // keep the sender's own inbox from filling
			drain(sender)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d readers got %d messages each in %s with a stalled member", readers, n, time.Since(start))

	// The stalled client was dropped: after what the kernel buffered, its
	// connection ends, with close 1013 if the close frame still fit in the
	// socket, else abruptly (1006).
	var ce *websocket.CloseError
	_ = stalled.SetReadDeadline(time.Now().Add(waitLong))
	for got := 0; ; got++ {
		_, _, err := stalled.ReadMessage()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("stalled client still connected after reading %d frames", got)
		}
		if errors.As(err, &ce) && ce.Code != websocket.CloseTryAgainLater && ce.Code != websocket.CloseAbnormalClosure {
			t.Fatalf("stalled client closed with %v, want 1013", err)
		}
		if got >= n {
			t.Fatalf("stalled client got all %d messages; it was never dropped", got)
		}
		t.Logf("stalled client dropped after %d frames: %v", got, err)
		break
	}
}

func drain(c *wsClient) {
	for {
		select {
		case <-c.in:
		default:
			return
		}
	}
}

func dialRaw(t *testing.T, ts *testServer, tok string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(ts.wsURL(tok), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return ws
}

// countMessages reads until n chat messages arrived, checking their order.
// slowest is the least of the readers' counts.
func slowest(got []atomic.Int64) int64 {
	m := int64(math.MaxInt64)
	for i := range got {
		m = min(m, got[i].Load())
	}
	return m
}

func countMessages(ws *websocket.Conn, n int, progress *atomic.Int64) error {
	var seq int64
	for got := 0; got < n; progress.Store(int64(got)) {
		_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, b, err := ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("reader after %d of %d messages: %w", got, n, err)
		}
		env, err := protocol.Decode(b)
		if err != nil || env.Type != protocol.TypeChatCreated {
			continue
		}
		var cc protocol.ChatCreated
		if err := env.Unmarshal(&cc); err != nil {
			return err
		}
		if cc.Message.Seq <= seq {
			return fmt.Errorf("seq %d after %d: out of order", cc.Message.Seq, seq)
		}
		seq = cc.Message.Seq
		got++
	}
	return nil
}

// TestEventsReachSessionFromUpgrade: a session is registered before the
// upgrade answers, so a message posted the moment Dial returns is never
// missed (a client need not send system.hello first to be live).
func TestEventsReachSessionFromUpgrade(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, t.TempDir())
	cfg.HTTP.WSRate, cfg.HTTP.WSBurst = 10_000, 10_000
	ts := startServer(t, cfg)
	// The client sees 101 before the server's handler returns; widen
	// that window so a late registration would lose the message.
	server.SetAfterUpgrade(ts.Srv, func() { time.Sleep(20 * time.Millisecond) })
	tok := ts.register(t, "alice", "secret1")
	room := ts.createRoom(t, tok, "r", "public")
	sender := ts.dial(t, tok)
	const rounds = 20
	var wg sync.WaitGroup
	errs := make(chan error, rounds)
	for i := range rounds {
		ws := dialRaw(t, ts, tok)
		sender.send(protocol.TypeChatSend, protocol.ChatSend{RoomID: room, Text: fmt.Sprint("m", i), ClientMsgID: fmt.Sprint(i)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ws.Close()
			errs <- countMessages(ws, 1, new(atomic.Int64))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestOneCloseFrameAnswersTheClients: a client that closes hears exactly
// one close frame back (browsers log a second one as an error).
func TestOneCloseFrameAnswersTheClients(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t, t.TempDir()))
	tok := ts.register(t, "alice", "secret1")
	ws := dialRaw(t, ts, tok)
	nc := ws.NetConn()
	if err := ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(waitLong)); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(waitLong)) // a failed deadline shows up as a failed read
	raw, _ := io.ReadAll(nc)                         // until the server closes the socket
	closes := 0
	for len(raw) >= 2 {
		op, n, hdr := raw[0]&0x0f, int(raw[1]&0x7f), 2
		switch n {
		case 126:
			n, hdr = int(binary.BigEndian.Uint16(raw[2:])), 4
		case 127:
			n, hdr = int(binary.BigEndian.Uint64(raw[2:])), 10
		}
		if op == websocket.CloseMessage {
			closes++
		}
		raw = raw[min(len(raw), hdr+n):]
	}
	if closes != 1 {
		t.Errorf("%d close frames after the client's close, want 1", closes)
	}
}
