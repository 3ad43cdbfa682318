package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mesh/protocol"
	"mesh/server"
	"mesh/store"
)

// FuzzWSFrame writes arbitrary text frames into one live, authenticated
// WebSocket session, reused across inputs, then a system.hello probe. Every
// frame the server sends must decode; every system.error must carry a code
// of protocol's and a message, and never internal; a frame that Decode
// refuses must be answered with system.error of its ErrorCode and its id as
// ref_id; and the probe must get its system.welcome, so the session still
// works. The server may close the session only for a frame over MaxFrame
// (frame_too_large, then close 1009); a new session must work after that.
// The rate limit is raised so it never decides.
//
// The server runs Serve on a real listener, not just its Handler behind
// httptest.NewServer: chat.message.send is stored by the chat goroutine
// Serve starts.
func FuzzWSFrame(f *testing.F) {
	cfg := testConfig(f, f.TempDir())
	cfg.Auth.Registration = "open"
	cfg.HTTP.WSRate, cfg.HTTP.WSBurst = 1_000_000, 1_000_000
	ts := startQuietServer(f, cfg)
	p := &wsProbe{ts: ts, token: ts.register(f, "fuzzer", "secret1"), prefix: fmt.Sprintf("probe-%d-", os.Getpid())}
	ts.register(f, "bob", "secret1")
	room := ts.createRoom(f, p.token, "general", "public")
	if a := ts.do(f, http.MethodPost, fmt.Sprintf("/api/rooms/%d/members", room), []byte(`{"username":"bob"}`), p.token); a.Status != http.StatusCreated {
		f.Fatalf("add bob = %d %s", a.Status, a.Body)
	}
	for _, s := range []string{
		`{"type":"system.hello","id":"h1","device_id":"laptop","quic_port":5000}`,
		`{"type":"room.join","id":"j1","payload":{"room_id":1}}`,
		`{"type":"room.sync","id":"s1","payload":{"room_id":1,"since":0}}`,
		`{"type":"chat.message.send","id":"m1","payload":{"room_id":1,"text":"hi <b>bob</b>","client_msg_id":"c1"}}`,
		`{"type":"chat.message.send","id":"m2","payload":{"to_user":"bob","text":"psst"}}`,
		`{"type":"chat.typing","payload":{"room_id":1}}`,
		`{"type":"call.invite","id":"c1","payload":{"call_id":"x","to_user":"bob","media":"audio"}}`,
		`{"type":"call.ice","payload":{"call_id":"x","to_user":"bob","candidate":{"candidate":"c"}}}`,
		`{"type":"p2p.session.request","id":"p1","payload":{"kind":"file","target_device_id":"desk"}}`,
		`{"type":"terminal.open","id":"t1","payload":{"share_id":"sh-1","cols":80,"rows":24}}`,
		`{"type":"terminal.watch","id":"t2","payload":{"share_id":"sh-1"}}`,
		`{"type":"terminal.resize","payload":{"share_id":"sh-1","cols":100,"rows":30}}`,
		`{"type":"terminal.exit","payload":{"share_id":"sh-1","code":0}}`,
		`{"type":"terminal.viewers","payload":{"share_id":"sh-1","viewers":[]}}`,
		`{"type":"transfer.report","payload":{"session_id":"s","outcome":"ok","size":1}}`,
		`{"type":"transfer.start","id":"x1","payload":{"from_device":"a","to_device":"b","paths":["/etc/hosts"]}}`,
		`{"type":"room.leave","id":"l1","payload":{"room_id":1}}`,
		`{"type":"room.joined","id":"r1"}`,
		`{"type":"chat.explode","id":"u1"}`,
		`{"type":"room.join","id":"bad","payload":{"room_id":"1"}}`,
		`{"type":"system.hello"`, ``, `null`, "\xff",
		`{"type":"chat.message.send","payload":{"room_id":1,"text":"` + strings.Repeat("x", protocol.MaxFrame) + `"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Cleanup(func() {
		if p.ws != nil {
			_ = p.ws.Close() // the server is stopping anyway
		}
	})
	f.Fuzz(func(t *testing.T, b []byte) { p.check(t, b) })
}

// startQuietServer is startServer without the -v log: a fuzz target may
// not call f.Log once it fuzzes, and the server logs from its own goroutines.
func startQuietServer(f *testing.F, cfg server.Config) *testServer {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, cfg.HTTP.DB)
	if err != nil {
		f.Fatalf("store.Open: %v", err)
	}
	srv, err := server.New(cfg, st, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatalf("server.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	f.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.Errorf("Serve: %v", err)
		}
		if err := st.Close(); err != nil {
			f.Errorf("store.Close: %v", err)
		}
	})
	return &testServer{URL: "http://" + ln.Addr().String(), Store: st, Cfg: cfg, Srv: srv}
}

// wsProbe is the fuzzed session, and the frames it sent lately for messages.
type wsProbe struct {
	ts     *testServer
	token  string
	prefix string // of probe ids: unique to this worker process
	ws     *websocket.Conn
	n      int
	recent []string
}

const wsFuzzWait = 10 * time.Second // a reply that must come

// check writes b and the probe, and reads until the probe's welcome.
func (p *wsProbe) check(t *testing.T, b []byte) {
	t.Helper()
	if p.ws == nil {
		p.dial(t)
	}
	p.recent = append(p.recent[max(0, len(p.recent)-4):], fmt.Sprintf("%.200q", b))
	if err := p.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatalf("write %.200q: %v", b, err)
	}
	if len(b) > protocol.MaxFrame {
		p.expectTooLarge(t)
		return
	}
	var wantCode, wantRef string
	if env, err := protocol.Decode(b); err != nil {
		wantCode, wantRef = protocol.ErrorCode(err), env.ID
	}
	p.hello(t, wantCode, wantRef)
}

func (p *wsProbe) dial(t *testing.T) {
	t.Helper()
	ws, res, err := websocket.DefaultDialer.Dial(p.ts.wsURL(p.token), nil)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial /ws: %v (status %d)", err, status)
	}
	p.ws = ws
}

// hello sends the probe and reads until its welcome, checking each frame on
// the way. With wantCode set, a system.error with that code and ref_id
// wantRef must come first.
func (p *wsProbe) hello(t *testing.T, wantCode, wantRef string) {
	t.Helper()
	p.n++
	id := fmt.Sprintf("%s%d", p.prefix, p.n)
	if err := p.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"system.hello","id":"`+id+`"}`)); err != nil {
		t.Fatalf("write probe after %v: %v", p.recent, err)
	}
	answered := wantCode == ""
	for {
		env, pe := p.read(t)
		switch {
		case env.Type == protocol.TypeSystemError && pe.Code == wantCode && pe.RefID == wantRef:
			answered = true
		case env.Type == protocol.TypeSystemWelcome:
			var w protocol.Welcome
			if err := env.Unmarshal(&w); err != nil || w.RefID != id {
				continue // a fuzzed hello's welcome
			}
			if !answered {
				t.Fatalf("%s: no system.error %s (ref_id %q) before the probe's welcome", p.recent[len(p.recent)-1], wantCode, wantRef)
			}
			return
		}
	}
}

// expectTooLarge reads until the server closes the session, which it must
// do with frame_too_large and 1009, then checks a new session works.
func (p *wsProbe) expectTooLarge(t *testing.T) {
	t.Helper()
	sawCode := false
	for !sawCode {
		env, pe := p.read(t)
		sawCode = env.Type == protocol.TypeSystemError && pe.Code == protocol.CodeFrameTooLarge
	}
	_ = p.ws.SetReadDeadline(time.Now().Add(wsFuzzWait)) // a failed deadline shows up as a failed read
	for {
		if _, _, err := p.ws.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
				t.Fatalf("after an oversize frame: %v, want close 1009", err)
			}
			break
		}
	}
	_ = p.ws.Close() // closed by the server already
	p.ws = nil
	p.dial(t)
	p.hello(t, "", "")
}

// knownCodes are the system.error codes a client may see from a fuzzed
// frame; internal would mean the server failed.
var knownCodes = map[string]bool{
	protocol.CodeMalformed: true, protocol.CodeUnknownType: true, protocol.CodeFrameTooLarge: true,
	protocol.CodeInvalid: true, protocol.CodeForbidden: true, protocol.CodeNotFound: true,
	protocol.CodeUnavailable: true, protocol.CodeUnsupported: true,
}

// read returns the next text frame, decoded, and its system.error payload
// if it is one, failing on a close, a read error, a frame that does not
// decode or a system.error that breaks the contract.
func (p *wsProbe) read(t *testing.T) (protocol.Envelope, protocol.Error) {
	t.Helper()
	for {
		_ = p.ws.SetReadDeadline(time.Now().Add(wsFuzzWait)) // a failed deadline shows up as a failed read
		mt, msg, err := p.ws.ReadMessage()
		if err != nil {
			t.Fatalf("session ended after %v: %v", p.recent, err)
		}
		if mt != websocket.TextMessage {
			continue // terminal bytes of a share the fuzzer watches
		}
		if len(msg) > protocol.MaxFrame {
			continue // a big room.synced; Decode refuses what a client may not send
		}
		env, err := protocol.Decode(msg)
		if err != nil {
			t.Fatalf("after %v the server sent %.300q, which does not decode: %v", p.recent, msg, err)
		}
		var pe protocol.Error
		if env.Type == protocol.TypeSystemError {
			if err := env.Unmarshal(&pe); err != nil || !knownCodes[pe.Code] || pe.Message == "" {
				t.Fatalf("after %v: system.error %s (%v); want a known code other than internal, and a message", p.recent, env.Payload, err)
			}
		}
		return env, pe
	}
}
