package server_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// TestDeviceIDsIgnoreCase checks a device id names one device in any case,
// as a username names one user: nobody else can take it in another case,
// and every request naming it (enrolment, hello, sessions, transfers,
// revocation) reaches the device as enrolled.
func TestDeviceIDsIgnoreCase(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok, btok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1")
	laptopTok := ts.enroll(t, atok, "alice-laptop", fp('1'))
	a := ts.do(t, http.MethodPost, "/api/devices", mustJSON(t, map[string]string{"device_id": "ALICE-LAPTOP"}), btok)
	if a.Status != http.StatusConflict || a.errCode() != "device_taken" {
		t.Fatalf("bob enrols ALICE-LAPTOP while alice has alice-laptop = %d %s, want 409 device_taken", a.Status, a.Body)
	}

	laptop := ts.dial(t, laptopTok)
	id := laptop.send(protocol.TypeSystemHello, protocol.Hello{DeviceID: "Alice-Laptop", QUICPort: 5001, Fingerprint: fp('1')})
	var w protocol.Welcome
	if env := laptop.waitFor(protocol.TypeSystemWelcome); env.Unmarshal(&w) != nil || w.RefID != id || w.DeviceID != "alice-laptop" {
		t.Fatalf("hello as Alice-Laptop with alice-laptop's token: welcome %s, want device_id alice-laptop", env.Payload)
	}
	serverTok := ts.enroll(t, atok, "server", fp('2'))
	server := ts.agent(t, serverTok, 5002, fp('2'))

	// A session to SERVER is a session to server, under the enrolled spelling.
	a = ts.do(t, http.MethodPost, "/api/p2p/sessions", []byte(`{"kind":"file","target_device_id":"SERVER"}`), laptopTok)
	var sess protocol.P2PSession
	if a.Status != http.StatusCreated || json.Unmarshal(a.Body, &sess) != nil || sess.TargetDeviceID != "server" {
		t.Fatalf("session to SERVER = %d %s, want 201 with target_device_id server", a.Status, a.Body)
	}
	server.waitFor(protocol.TypeP2PSessionCreated)
	a = ts.do(t, http.MethodPost, "/api/p2p/sessions", []byte(`{"kind":"file","target_device_id":"server","initiator_device_id":"ALICE-LAPTOP"}`), laptopTok)
	if a.Status != http.StatusCreated {
		t.Fatalf("alice-laptop's token asks for a session from ALICE-LAPTOP = %d %s, want 201", a.Status, a.Body)
	}

	ts.share(t, serverTok, 6002, fp('2'), protocol.TerminalOpen{ShareID: "t1", Cols: 80, Rows: 24})
	a = ts.do(t, http.MethodPost, "/api/p2p/sessions", []byte(`{"kind":"terminal","share_id":"t1","target_device_id":"Server"}`), laptopTok)
	if a.Status != http.StatusCreated {
		t.Fatalf("session to terminal t1 on Server = %d %s, want 201 (it runs on server)", a.Status, a.Body)
	}

	// The web app's transfer.start reaches the sending agent with the ids as its config spells them.
	browser := ts.dial(t, atok)
	browser.send(protocol.TypeTransferStart, protocol.TransferStart{FromDevice: "ALICE-LAPTOP", ToDevice: "Server", Paths: []string{"/srv/x"}})
	var start protocol.TransferStart
	if env := laptop.waitFor(protocol.TypeTransferStart); env.Unmarshal(&start) != nil || start.FromDevice != "alice-laptop" || start.ToDevice != "server" {
		t.Fatalf("agent got transfer.start %s, want from alice-laptop to server", env.Payload)
	}

	// Enrolling again in another case is the same device: the old session ends.
	laptopTok = ts.enroll(t, atok, "Alice-Laptop", fp('1'))
	if err := laptop.waitClosed(); err == nil {
		t.Fatal("session of the old token still open after enrolling Alice-Laptop")
	}
	if l := ts.devices(t, atok); len(l.Devices) != 2 || l.Devices[0].DeviceID != "Alice-Laptop" {
		t.Fatalf("devices after enrolling Alice-Laptop = %+v, want Alice-Laptop and server", l)
	}
	laptop = ts.agent(t, laptopTok, 5001, fp('1'))
	if l := ts.devices(t, atok); !l.Devices[0].Online {
		t.Fatalf("devices with Alice-Laptop's agent connected = %+v, want it online", l)
	}

	if a := ts.do(t, http.MethodDelete, "/api/devices/ALICE-LAPTOP", nil, atok); a.Status != http.StatusNoContent {
		t.Fatalf("alice revokes ALICE-LAPTOP = %d %s, want 204", a.Status, a.Body)
	}
	var ce *websocket.CloseError
	if err := laptop.waitClosed(); !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("revoked device's session ended with %v, want 1008", err)
	}
	var rev protocol.DeviceRevoked
	if env := browser.waitFor(protocol.TypeDeviceRevoked); env.Unmarshal(&rev) != nil || rev.DeviceID != "Alice-Laptop" {
		t.Fatalf("device.revoked %s, want device_id Alice-Laptop as listed", env.Payload)
	}
	ts.enroll(t, btok, "ALICE-LAPTOP", "")
}
