package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// link keeps the agent connected to the server's WebSocket, announcing its
// QUIC endpoint, and reconnects with backoff and jitter when the server goes away.
type link struct {
	cfg     Config
	log     *slog.Logger
	hello   protocol.Hello
	onEvent func(protocol.Envelope) // called on the read goroutine
	// onUp, if set, runs after each (re)connection's hello, on the read
	// goroutine before any event: what the server must know again.
	onUp func()
	// onBinary, if set, gets the binary terminal frames the server relays.
	onBinary func(protocol.TermFrame)
	// onRelay, if set, gets the relay frames (QUIC datagrams from a peer).
	onRelay func([]byte)

	upOnce, upClose sync.Once
	up              chan struct{} // closed once the first connection said hello; see connected

	mu sync.Mutex      // guards ws, hello after start
	ws *websocket.Conn // nil while disconnected
}

// connected is closed once the link first reaches the server.
func (l *link) connected() <-chan struct{} {
	l.upOnce.Do(func() {
		if l.up == nil {
			l.up = make(chan struct{})
		}
	})
	return l.up
}

// setHello replaces what the link announces, and announces it now when
// connected (the server takes a new system.hello as an update).
func (l *link) setHello(h protocol.Hello) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hello = h
	if l.ws != nil {
		_ = l.write(l.ws, protocol.TypeSystemHello, h) // a failed write breaks the connection, which says hello again
	}
}

const (
	minBackoff    = time.Second
	maxBackoff    = 30 * time.Second
	serverSilence = 70 * time.Second
)

// run returns only when ctx is done (nil), the server refuses the device
// for good ([ErrRevoked]), or its URL is refused ([ErrCleartext]).
func (l *link) run(ctx context.Context) error {
	backoff := minBackoff
	for {
		start := time.Now()
		err := l.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrRevoked) || errors.Is(err, ErrCleartext) {
			return err
		}
		if time.Since(start) > time.Minute {
			backoff = minBackoff // it was up for a while: a fresh outage
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jitter spreads agents' reconnects
		l.log.Warn("server connection lost; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// wsURL is the server's WebSocket address for token: wss:// for https://,
// and ws:// only where [CheckServerURL] allows cleartext.
func wsURL(server, token string, insecure bool) (string, error) {
	if err := CheckServerURL(server, insecure); err != nil {
		return "", err
	}
	u, err := url.Parse(server) // parsed by CheckServerURL
	if err != nil {
		return "", err
	}
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/ws"
	u.RawQuery = url.Values{"token": {token}}.Encode()
	return u.String(), nil
}

// session runs one connection until it breaks.
func (l *link) session(ctx context.Context) error {
	addr, err := wsURL(l.cfg.Server, l.cfg.DeviceToken, l.cfg.Insecure)
	if err != nil {
		return err
	}
	dialer := *websocket.DefaultDialer
	// Relay frames are up to 60 KiB: with the default 4 KiB buffers each
	// would go out as fifteen fragments, one write each.
	dialer.ReadBufferSize, dialer.WriteBufferSize = 64<<10, 64<<10
	ws, res, err := dialer.DialContext(ctx, addr, nil)
	if err != nil {
		if res != nil && res.StatusCode == http.StatusUnauthorized {
			return ErrRevoked
		}
		return fmt.Errorf("connect to %s: %w", l.cfg.Server, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = ws.Close() }) // unblocks the read on shutdown
	// The server pings every 25 s: silence for longer than serverSilence
	// means it is gone without a goodbye (a dead link, a killed host).
	_ = ws.SetReadDeadline(time.Now().Add(serverSilence)) // a failed deadline shows up as a failed read
	ws.SetPingHandler(func(data string) error {
		_ = ws.SetReadDeadline(time.Now().Add(serverSilence)) // as above
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(10*time.Second))
	})
	defer stop()
	defer ws.Close()
	l.mu.Lock()
	err = l.write(ws, protocol.TypeSystemHello, l.hello)
	if err == nil {
		l.ws = ws
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	l.connected() // makes l.up
	l.upClose.Do(func() { close(l.up) })
	defer func() {
		l.mu.Lock()
		l.ws = nil
		l.mu.Unlock()
	}()
	if l.onUp != nil {
		l.onUp()
	}
	var buf bytes.Buffer // reused for every message: relay frames come by the thousand
	for {
		mt, b, err := readMessage(ws, &buf)
		_ = ws.SetReadDeadline(time.Now().Add(serverSilence)) // as above
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == websocket.ClosePolicyViolation && strings.Contains(ce.Text, "device") {
				return fmt.Errorf("%w (%s)", ErrRevoked, ce.Text)
			}
			return err
		}
		if mt == websocket.BinaryMessage && len(b) > 0 && b[0] == protocol.PeerPackets {
			if l.onRelay != nil {
				l.onRelay(b)
			}
			continue
		}
		if mt == websocket.BinaryMessage {
			if f, err := protocol.DecodeTermFrame(b); err != nil {
				l.log.Warn("undecodable binary frame from the server", "err", err)
			} else if l.onBinary != nil {
				l.onBinary(f)
			}
			continue
		}
		env, err := protocol.Decode(b)
		if err != nil {
			l.log.Warn("undecodable frame from the server", "err", err)
			continue
		}
		switch env.Type {
		case protocol.TypeSystemWelcome:
			l.log.Info("connected to server", "server", l.cfg.Server, "device_id", l.cfg.DeviceID)
		case protocol.TypeSystemError:
			var e protocol.Error
			_ = env.Unmarshal(&e) // best effort: it is only logged
			l.log.Warn("server refused a request", "code", e.Code, "message", e.Message)
		}
		if l.onEvent != nil {
			l.onEvent(env)
		}
	}
}

// send queues nothing: it writes now if connected and reports whether it did.
func (l *link) send(t protocol.Type, payload any) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ws == nil {
		return false
	}
	return l.write(l.ws, t, payload) == nil
}

// sendBinary writes one binary message now if connected and reports whether it did.
func (l *link) sendBinary(b []byte) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ws == nil {
		return false
	}
	_ = l.ws.SetWriteDeadline(time.Now().Add(10 * time.Second)) // a failed deadline shows up as a failed write
	return l.ws.WriteMessage(websocket.BinaryMessage, b) == nil
}

// write sends one envelope; callers serialise writes (l.mu, or before the
// connection is published).
func (l *link) write(ws *websocket.Conn, t protocol.Type, payload any) error {
	p, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	b, err := protocol.Encode(protocol.Envelope{Type: t, ID: fmt.Sprintf("a%d", time.Now().UnixNano()), Timestamp: time.Now().UTC(), Payload: p})
	if err != nil {
		return err
	}
	_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second)) // a failed deadline shows up as a failed write
	return ws.WriteMessage(websocket.TextMessage, b)
}

// readMessage reads the next message into buf, whose bytes it returns:
// valid until the next call, so handlers copy what they keep.
func readMessage(ws *websocket.Conn, buf *bytes.Buffer) (int, []byte, error) {
	mt, r, err := ws.NextReader()
	if err != nil {
		return mt, nil, err
	}
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return mt, nil, err
	}
	return mt, buf.Bytes(), nil
}
