package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// recordingProxy forwards TCP to a server and keeps, unmasked, the
// payloads of the WebSocket frames clients send through it: what the
// server received from them.
type recordingProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex // guards got
	got    bytes.Buffer
}

func startRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{ln: ln, target: target}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *recordingProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *recordingProxy) serve(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() { _, _ = io.Copy(c, s) }() // the server's side needs no record
	r := bufio.NewReader(io.TeeReader(c, s))
	upgrade := false
	for { // the request headers: a WebSocket upgrade has frames after them
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		upgrade = upgrade || strings.HasPrefix(strings.ToLower(line), "upgrade: websocket")
		if line == "\r\n" {
			break
		}
	}
	if !upgrade {
		_, _ = io.Copy(io.Discard, r)
		return
	}
	for {
		payload, err := readClientFrame(r)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.got.Write(payload)
		p.mu.Unlock()
	}
}

// readClientFrame reads one masked client frame (RFC 6455 §5.2) and
// returns its payload unmasked.
func readClientFrame(r *bufio.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	var mask [4]byte
	if h[1]&0x80 != 0 {
		if _, err := io.ReadFull(r, mask[:]); err != nil {
			return nil, err
		}
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, err
	}
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	return payload, nil
}

func (p *recordingProxy) received() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.got.Bytes())
}

// TestTerminalOutputNotSentWithoutWatcher: what a shared terminal prints
// while no browser watches never reaches the server (read off the wire
// between the sharer and the server); the first browser watcher still
// sees the screen, sent by the sharer when it arrives.
func TestTerminalOutputNotSentWithoutWatcher(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{env: []string{"MESH_AUTH_BCRYPT_COST=4", "MESH_AUTH_REGISTRATION=open"}})
	tok := apiToken(t, srv.url, "alice")
	proxy := startRecordingProxy(t, srv.addr())
	sharer := newMachine(t, "laptop")
	sharer.login(t, proxy.url(), "alice")

	// The secret is in a file, so that the command line (which the server
	// does get) does not hold it.
	dir := t.TempDir()
	secret := "the-launch-code-is-" + fmt.Sprint(time.Now().UnixNano())
	script := filepath.Join(dir, "show.sh")
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte("cat "+filepath.Join(dir, "secret.txt")+"\nexec sleep 60\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	sh := sharer.start(t, "agent", "share-terminal", "--", "sh", script)
	id := sh.shareID(t)
	sh.waitOutput(t, secret)           // on the sharer's own terminal
	time.Sleep(300 * time.Millisecond) // give a leak the time to cross; nothing should
	if got := proxy.received(); bytes.Contains(got, []byte(secret)) {
		t.Fatalf("the server received the terminal's output while nobody watched")
	} else if !bytes.Contains(got, []byte(`"terminal.open"`)) {
		t.Fatalf("the proxy saw no terminal.open from the sharer: the check above proves nothing (%d bytes)", len(got))
	}

	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(srv.url, "http", "ws", 1)+"/ws?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	watch, err := protocol.Encode(protocol.Envelope{Type: protocol.TypeTerminalWatch, ID: "w1", Timestamp: time.Now(),
		Payload: []byte(`{"share_id":"` + id + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, watch); err != nil {
		t.Fatal(err)
	}
	var screen []byte
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second)) // a missing screen fails the read
	for !bytes.Contains(screen, []byte(secret)) {
		mt, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("the late watcher never saw the screen (%v); it got %q", err, screen)
		}
		if f, err := protocol.DecodeTermFrame(b); mt == websocket.BinaryMessage && err == nil && f.Kind == protocol.TermOutput {
			screen = append(screen, f.Data...)
		}
	}
}
