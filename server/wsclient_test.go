package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// wsClient is a real WebSocket client whose frames arrive on a channel.
type wsClient struct {
	t      testing.TB
	ws     *websocket.Conn
	in     chan protocol.Envelope
	bin    chan []byte   // binary messages (terminal frames), in order with in
	closed chan struct{} // closed when the server closed us
	cerr   error         // why, once closed
	ids    atomic.Int64
}

const waitLong = 10 * time.Second // generous bound for a frame that must arrive

func (ts *testServer) wsURL(token string) string {
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws?token=" + token
}

// dial connects with token and fails the test on any refusal.
func (ts *testServer) dial(t testing.TB, token string) *wsClient {
	t.Helper()
	ws, res, err := websocket.DefaultDialer.Dial(ts.wsURL(token), nil)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial /ws: %v (status %d)", err, status)
	}
	c := &wsClient{t: t, ws: ws, in: make(chan protocol.Envelope, 4096), bin: make(chan []byte, 4096), closed: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(func() { _ = ws.Close() })
	return c
}

func (c *wsClient) readLoop() {
	defer close(c.closed)
	for {
		mt, b, err := c.ws.ReadMessage()
		if err != nil {
			c.cerr = err
			return
		}
		if mt == websocket.BinaryMessage {
			c.bin <- b
			continue
		}
		env, err := protocol.Decode(b)
		if err != nil {
			c.cerr = fmt.Errorf("server sent an undecodable frame %q: %w", b, err)
			return
		}
		c.in <- env
	}
}

// send writes one envelope and returns its id.
func (c *wsClient) send(typ protocol.Type, payload any) string {
	c.t.Helper()
	id := fmt.Sprintf("c%d", c.ids.Add(1))
	p, err := json.Marshal(payload)
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := protocol.Encode(protocol.Envelope{Type: typ, ID: id, Timestamp: time.Now(), Payload: p})
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
	return id
}

func (c *wsClient) sendRaw(b []byte) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

// waitFor returns the first frame of type typ, skipping others; it fails
// the test if none comes within waitLong or the connection ends.
func (c *wsClient) waitFor(typ protocol.Type) protocol.Envelope {
	c.t.Helper()
	return c.waitMatch(typ, func(protocol.Envelope) bool { return true })
}

// waitMatch is waitFor with a predicate.
func (c *wsClient) waitMatch(typ protocol.Type, ok func(protocol.Envelope) bool) protocol.Envelope {
	c.t.Helper()
	deadline := time.After(waitLong)
	for {
		select {
		case env := <-c.in:
			if env.Type == typ && ok(env) {
				return env
			}
		case <-c.closed:
			// Drain what arrived before the close.
			for {
				select {
				case env := <-c.in:
					if env.Type == typ && ok(env) {
						return env
					}
				default:
					c.t.Fatalf("connection closed (%v) before a %s frame", c.cerr, typ)
				}
			}
		case <-deadline:
			c.t.Fatalf("no %s frame within %s", typ, waitLong)
		}
	}
}

// waitError waits for system.error with ref_id and returns its code.
func (c *wsClient) waitError(refID string) protocol.Error {
	c.t.Helper()
	env := c.waitMatch(protocol.TypeSystemError, func(e protocol.Envelope) bool {
		var pe protocol.Error
		return e.Unmarshal(&pe) == nil && pe.RefID == refID
	})
	var pe protocol.Error
	_ = env.Unmarshal(&pe) // decoded in the predicate
	return pe
}

// waitClosed waits for the server to close the connection and returns the close error.
func (c *wsClient) waitClosed() error {
	c.t.Helper()
	select {
	case <-c.closed:
		return c.cerr
	case <-time.After(waitLong):
		c.t.Fatalf("connection not closed within %s", waitLong)
		return nil
	}
}

// say sends a chat message and waits for its acknowledgement.
func (c *wsClient) say(roomID int64, text string) protocol.Message {
	c.t.Helper()
	id := c.send(protocol.TypeChatSend, protocol.ChatSend{RoomID: roomID, Text: text, ClientMsgID: "m-" + text})
	return c.ack(id)
}

// ack waits for the chat.message.created that answers request id.
func (c *wsClient) ack(id string) protocol.Message {
	c.t.Helper()
	deadline := time.After(waitLong)
	for {
		select {
		case env := <-c.in:
			switch env.Type {
			case protocol.TypeChatCreated:
				var cc protocol.ChatCreated
				if err := env.Unmarshal(&cc); err != nil {
					c.t.Fatal(err)
				}
				if cc.RefID == id {
					return cc.Message
				}
			case protocol.TypeSystemError:
				var pe protocol.Error
				_ = env.Unmarshal(&pe) // best effort for the message
				if pe.RefID == id {
					c.t.Fatalf("send %s refused: %s %s", id, pe.Code, pe.Message)
				}
			}
		case <-c.closed:
			c.t.Fatalf("connection closed (%v) before ack of %s", c.cerr, id)
		case <-deadline:
			c.t.Fatalf("no ack for %s within %s", id, waitLong)
		}
	}
}

// message waits for a chat.message.created with the given text.
func (c *wsClient) message(text string) protocol.Message {
	c.t.Helper()
	var m protocol.Message
	c.waitMatch(protocol.TypeChatCreated, func(e protocol.Envelope) bool {
		var cc protocol.ChatCreated
		if e.Unmarshal(&cc) != nil {
			return false
		}
		m = cc.Message
		return cc.Message.Text == text
	})
	return m
}

// createRoom makes a room over REST and returns its id.
func (ts *testServer) createRoom(t testing.TB, token, name, visibility string) int64 {
	t.Helper()
	a := ts.do(t, http.MethodPost, "/api/rooms", mustJSON(t, map[string]string{"name": name, "visibility": visibility}), token)
	if a.Status != http.StatusCreated {
		t.Fatalf("create room %q = %d %s", name, a.Status, a.Body)
	}
	var r struct{ ID int64 }
	if err := json.Unmarshal(a.Body, &r); err != nil || r.ID == 0 {
		t.Fatalf("create room answer %s: %v", a.Body, err)
	}
	return r.ID
}

// openServer starts a server with open registration.
func openServer(t testing.TB) *testServer {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.Auth.Registration = "open"
	return startServer(t, cfg)
}
