package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/turn/v4"

	"mesh/protocol"
)

// fakeServer is what the doctor talks to: /healthz, GET /api/rtc/config
// listing servers, and a WebSocket that welcomes a hello and answers a
// relay frame with not_found, as mesh's server does for an unknown session.
func fakeServer(t *testing.T, servers []protocol.ICEServer) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("GET /api/rtc/config", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer mdt_test" {
			http.Error(w, `{"error":{"code":"unauthorized","message":"no"}}`, http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ice_servers": servers}) // the client sees a short answer
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		send := func(typ protocol.Type, payload any) {
			p, _ := json.Marshal(payload)
			b, _ := protocol.Encode(protocol.Envelope{Type: typ, ID: "s1", Timestamp: time.Now().UTC(), Payload: p})
			_ = ws.WriteMessage(websocket.TextMessage, b) // the test sees what did not arrive
		}
		for {
			mt, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if mt == websocket.BinaryMessage && len(b) > 0 && b[0] == protocol.PeerPackets {
				send(protocol.TypeSystemError, protocol.Error{Code: protocol.CodeNotFound, Message: "no live p2p session"})
			} else {
				send(protocol.TypeSystemWelcome, protocol.Welcome{DeviceID: "laptop"})
			}
		}
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s.URL
}

// turnServer runs pion's TURN server on 127.0.0.1 (it answers STUN too)
// and returns its address.
func turnServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	key := turn.GenerateAuthKey("u", "mesh", "p")
	s, err := turn.NewServer(turn.ServerConfig{Realm: "mesh",
		AuthHandler: func(user, _ string, _ net.Addr) ([]byte, bool) { return key, user == "u" },
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() }) // the test is over
	return pc.LocalAddr().String()
}

func runDoctor(t *testing.T, server string) (string, error) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Server, cfg.DeviceID, cfg.DeviceToken, cfg.Username = server, "laptop", "mdt_test", "alice"
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Doctor(ctx, cfg, t.TempDir(), "", &out, slog.New(slog.DiscardHandler))
	return out.String(), err
}

// checkLines fails t unless out has, in order, one line per want that
// starts with it, and no other.
func checkLines(t *testing.T, out string, want []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("doctor printed %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want one starting %q", i+1, lines[i], w)
		}
	}
}

func TestDoctorFindings(t *testing.T) {
	t.Parallel()
	ta := turnServer(t)
	srv := fakeServer(t, []protocol.ICEServer{{URLs: []string{"stun:" + ta}},
		{URLs: []string{"turn:" + ta + "?transport=udp", "turn:" + ta + "?transport=tcp"}, Username: "u", Credential: "p"}})
	out, err := runDoctor(t, srv)
	if err != nil {
		t.Fatalf("Doctor = %v, want nil\n%s", err, out)
	}
	checkLines(t, out, []string{
		"server: reachable at " + srv,
		"websocket: connected",
		"stun: " + ta + " answers over UDP",
		"public address: 127.0.0.1:",
		"nat: none (127.0.0.1 is this machine's own address)",
		"nat mapping: endpoint-independent",
		"relay: answers",
	})
}

func TestDoctorNoUDP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		servers func(t *testing.T) []protocol.ICEServer
		stun    string
		mapping string
	}{
		{"no STUN listed", func(*testing.T) []protocol.ICEServer { return nil }, "stun: none", "nat mapping: not tested: no STUN server"},
		{"STUN silent", func(t *testing.T) []protocol.ICEServer {
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0") // reads nothing, answers nothing
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = pc.Close() }) // the test is over
			return []protocol.ICEServer{{URLs: []string{"stun:" + pc.LocalAddr().String()}}}
		}, "stun: 127.0.0.1:", "nat mapping: not tested: no UDP answer from the server"},
		{"STUN without TURN", func(t *testing.T) []protocol.ICEServer {
			return []protocol.ICEServer{{URLs: []string{"stun:" + turnServer(t)}}}
		}, "stun: 127.0.0.1:", "nat mapping: not tested: the server offers one STUN address and no TURN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := runDoctor(t, fakeServer(t, tc.servers(t)))
			if err != nil {
				t.Fatalf("Doctor = %v, want nil\n%s", err, out)
			}
			lines := strings.Split(out, "\n")
			if len(lines) < 6 || !strings.HasPrefix(lines[2], tc.stun) || !strings.HasPrefix(lines[5], tc.mapping) {
				t.Errorf("doctor printed:\n%s\nwant line 3 starting %q, line 6 starting %q", out, tc.stun, tc.mapping)
			}
		})
	}
}

func TestDoctorServerDown(t *testing.T) {
	t.Parallel()
	s := httptest.NewServer(http.NotFoundHandler())
	url := s.URL
	s.Close()
	out, err := runDoctor(t, url)
	if !errors.Is(err, ErrServerUnreachable) {
		t.Errorf("Doctor = %v, want ErrServerUnreachable", err)
	}
	checkLines(t, out, []string{"server: unreachable at " + url})
}
