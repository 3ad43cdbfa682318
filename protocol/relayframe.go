package protocol

import (
	"encoding/binary"
	"fmt"
)

// PeerPackets is the kind byte of a relay frame: QUIC datagrams between
// the two agents of a session, carried over their WebSockets by the server
// when no direct path works. The server reads only the session id; the
// datagrams are QUIC ciphertext, pinned end to end.
const PeerPackets byte = 3

// MaxRelayPacket is the largest datagram a relay frame carries (QUIC's
// packets stay under 1500 bytes on the networks mesh runs on).
const MaxRelayPacket = 1500

// RelayFrame is one binary WebSocket message of the relay:
//
//	kind u8 (3) | n u8 | session_id (n bytes) | { len u16 | datagram }...
//
// Integers are big-endian; a frame carries one or more datagrams.
type RelayFrame struct {
	SessionID string
	Packets   [][]byte
}

// AppendRelayHeader appends the header of a relay frame for session id to
// dst; [AppendRelayPacket] then adds datagrams.
func AppendRelayHeader(dst []byte, id string) []byte {
	dst = append(dst, PeerPackets, byte(len(id)))
	return append(dst, id...)
}

// AppendRelayPacket appends one datagram to a frame begun with
// [AppendRelayHeader].
func AppendRelayPacket(dst, p []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(p)))
	return append(dst, p...)
}

// RelaySessionID reads only the session id of a relay frame, which is all
// the server needs to route it. Its errors wrap [ErrMalformed].
func RelaySessionID(b []byte) (string, error) {
	if len(b) > MaxFrame {
		return "", fmt.Errorf("%w: %d-byte relay frame, the limit is %d", ErrMalformed, len(b), MaxFrame)
	}
	if len(b) < 2 || b[0] != PeerPackets {
		return "", fmt.Errorf("%w: not a relay frame", ErrMalformed)
	}
	n := int(b[1])
	if n == 0 || len(b) < 2+n {
		return "", fmt.Errorf("%w: relay frame cut inside its session_id", ErrMalformed)
	}
	id := string(b[2 : 2+n])
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return "", fmt.Errorf("%w: relay frame session_id has byte %#x", ErrMalformed, c)
		}
	}
	return id, nil
}

// DecodeRelayFrame parses a relay frame; the packets alias b. Its errors
// wrap [ErrMalformed].
func DecodeRelayFrame(b []byte) (RelayFrame, error) {
	id, err := RelaySessionID(b)
	if err != nil {
		return RelayFrame{}, err
	}
	f := RelayFrame{SessionID: id}
	for b = b[2+len(id):]; len(b) > 0; {
		if len(b) < 2 {
			return RelayFrame{}, fmt.Errorf("%w: relay frame cut inside a datagram length", ErrMalformed)
		}
		n := int(binary.BigEndian.Uint16(b))
		if n == 0 || n > MaxRelayPacket || len(b) < 2+n {
			return RelayFrame{}, fmt.Errorf("%w: relay datagram of %d bytes (%d left)", ErrMalformed, n, len(b)-2)
		}
		f.Packets, b = append(f.Packets, b[2:2+n]), b[2+n:]
	}
	if len(f.Packets) == 0 {
		return RelayFrame{}, fmt.Errorf("%w: relay frame without datagrams", ErrMalformed)
	}
	return f, nil
}
