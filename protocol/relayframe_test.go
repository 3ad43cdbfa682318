package protocol_test

import (
	"bytes"
	"errors"
	"testing"

	"mesh/protocol"
)

func TestRelayFrameRoundTrip(t *testing.T) {
	t.Parallel()
	b := protocol.AppendRelayHeader(nil, "0123abcdef")
	b = protocol.AppendRelayPacket(b, []byte("first"))
	b = protocol.AppendRelayPacket(b, bytes.Repeat([]byte{0xc3}, protocol.MaxRelayPacket))
	f, err := protocol.DecodeRelayFrame(b)
	if err != nil || f.SessionID != "0123abcdef" || len(f.Packets) != 2 || string(f.Packets[0]) != "first" || len(f.Packets[1]) != protocol.MaxRelayPacket {
		t.Fatalf("DecodeRelayFrame = %+v, %v", f, err)
	}
}

func TestRelayFrameRejects(t *testing.T) {
	t.Parallel()
	good := protocol.AppendRelayPacket(protocol.AppendRelayHeader(nil, "s1"), []byte("x"))
	for name, b := range map[string][]byte{
		"empty":           nil,
		"terminal kind":   append([]byte{protocol.TermOutput}, good[1:]...),
		"no id":           {protocol.PeerPackets, 0, 0, 1, 'x'},
		"cut id":          {protocol.PeerPackets, 9, 's'},
		"id with a slash": protocol.AppendRelayPacket(protocol.AppendRelayHeader(nil, "a/b"), []byte("x")),
		"no datagram":     protocol.AppendRelayHeader(nil, "s1"),
		"cut length":      append(protocol.AppendRelayHeader(nil, "s1"), 0),
		"cut datagram":    good[:len(good)-1],
		"empty datagram":  protocol.AppendRelayPacket(protocol.AppendRelayHeader(nil, "s1"), nil),
		"huge datagram":   protocol.AppendRelayPacket(protocol.AppendRelayHeader(nil, "s1"), make([]byte, protocol.MaxRelayPacket+1)),
		"over 64 KiB":     append(good, make([]byte, protocol.MaxFrame)...),
	} {
		if f, err := protocol.DecodeRelayFrame(b); !errors.Is(err, protocol.ErrMalformed) {
			t.Errorf("%s: DecodeRelayFrame = %+v, %v; want ErrMalformed", name, f, err)
		}
	}
}

// FuzzDecodeRelayFrame: relay frames arrive from agents, and the server
// routes them by RelaySessionID.
func FuzzDecodeRelayFrame(f *testing.F) {
	f.Add(protocol.AppendRelayPacket(protocol.AppendRelayHeader(nil, "s1"), []byte("x")))
	f.Add([]byte{3, 1, 'a', 0, 2, 'h', 'i', 0, 1, '!'})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := protocol.DecodeRelayFrame(b)
		id, idErr := protocol.RelaySessionID(b)
		if err == nil && (idErr != nil || id != fr.SessionID) {
			t.Fatalf("DecodeRelayFrame accepted what RelaySessionID refused: %v", idErr)
		}
		if err != nil {
			return
		}
		re := protocol.AppendRelayHeader(nil, fr.SessionID)
		for _, p := range fr.Packets {
			re = protocol.AppendRelayPacket(re, p)
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", re, b)
		}
	})
}
