package server_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"mesh/protocol"
)

// binaryWithin returns the next binary message, or nil after d.
func (c *wsClient) binaryWithin(d time.Duration) []byte {
	select {
	case b := <-c.bin:
		return b
	case <-time.After(d):
		return nil
	}
}

func relayFrame(id string, packets ...string) []byte {
	b := protocol.AppendRelayHeader(nil, id)
	for _, p := range packets {
		b = protocol.AppendRelayPacket(b, []byte(p))
	}
	return b
}

// TestRelayForwardsBetweenTheSessionsDevices: a relay frame from one
// device of a session reaches the other unchanged, both ways; a third
// device, a user's login session, an unknown session are refused and
// forward nothing.
func TestRelayForwardsBetweenTheSessionsDevices(t *testing.T) {
	t.Parallel()
	ts := turnServer(t, nil)
	atok, btok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1")
	laptopTok := ts.enroll(t, atok, "laptop", fp('1'))
	laptop := ts.agent(t, laptopTok, 5001, fp('1'))
	nas := ts.agent(t, ts.enroll(t, atok, "nas", fp('2')), 5002, fp('2'))
	bobs := ts.agent(t, ts.enroll(t, btok, "bobs-pc", fp('3')), 5003, fp('3'))
	a := ts.do(t, "POST", "/api/p2p/sessions", []byte(`{"kind":"file","target_device_id":"nas"}`), laptopTok)
	var sess protocol.P2PSession
	if a.Status != 201 || json.Unmarshal(a.Body, &sess) != nil {
		t.Fatalf("POST /api/p2p/sessions = %d %s", a.Status, a.Body)
	}

	out := relayFrame(sess.SessionID, "quic initial", "second datagram")
	laptop.sendBinary(out)
	if got := nas.binaryWithin(waitLong); !bytes.Equal(got, out) {
		t.Fatalf("the target got %q, want the laptop's frame unchanged", got)
	}
	back := relayFrame(sess.SessionID, "quic handshake")
	nas.sendBinary(back)
	if got := laptop.binaryWithin(waitLong); !bytes.Equal(got, back) {
		t.Fatalf("the initiator got %q, want the target's frame", got)
	}

	bobs.sendBinary(relayFrame(sess.SessionID, "intruder"))
	if e := bobs.waitFor(protocol.TypeSystemError); !bytes.Contains(e.Payload, []byte(protocol.CodeForbidden)) {
		t.Errorf("a third device's relay frame answered %s, want forbidden", e.Payload)
	}
	web := ts.dial(t, atok)
	web.sendBinary(relayFrame(sess.SessionID, "from a browser"))
	if e := web.waitFor(protocol.TypeSystemError); !bytes.Contains(e.Payload, []byte(protocol.CodeForbidden)) {
		t.Errorf("a login session's relay frame answered %s, want forbidden", e.Payload)
	}
	laptop.sendBinary(relayFrame("0123456789abcdef", "nobody"))
	if e := laptop.waitFor(protocol.TypeSystemError); !bytes.Contains(e.Payload, []byte(protocol.CodeNotFound)) {
		t.Errorf("a frame for an unknown session answered %s, want not_found", e.Payload)
	}
	laptop.sendBinary([]byte{protocol.PeerPackets, 200})
	if e := laptop.waitFor(protocol.TypeSystemError); !bytes.Contains(e.Payload, []byte(protocol.CodeInvalid)) {
		t.Errorf("a malformed relay frame answered %s, want invalid", e.Payload)
	}
	if got := nas.binaryWithin(300 * time.Millisecond); got != nil {
		t.Errorf("the target got %q from a refused frame", got)
	}
}

// TestRelayRefusesExpiredSession: a relay pair can start only while its
// session is valid.
func TestRelayRefusesExpiredSession(t *testing.T) {
	t.Parallel()
	ts := turnServer(t, nil)
	atok := ts.register(t, "alice", "secret1")
	laptopTok := ts.enroll(t, atok, "laptop", fp('1'))
	laptop := ts.agent(t, laptopTok, 5001, fp('1'))
	nas := ts.agent(t, ts.enroll(t, atok, "nas", fp('2')), 5002, fp('2'))
	a := ts.do(t, "POST", "/api/p2p/sessions", []byte(`{"kind":"file","target_device_id":"nas","ttl":60}`), laptopTok)
	var sess protocol.P2PSession
	if a.Status != 201 || json.Unmarshal(a.Body, &sess) != nil {
		t.Fatalf("POST /api/p2p/sessions = %d %s", a.Status, a.Body)
	}
	ts.Clock.Advance(61 * time.Second)
	laptop.sendBinary(relayFrame(sess.SessionID, "late"))
	if e := laptop.waitFor(protocol.TypeSystemError); !bytes.Contains(e.Payload, []byte(protocol.CodeNotFound)) {
		t.Errorf("a frame for an expired session answered %s, want not_found", e.Payload)
	}
	if got := nas.binaryWithin(300 * time.Millisecond); got != nil {
		t.Errorf("the target got %q for an expired session", got)
	}
}
