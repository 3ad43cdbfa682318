package protocol

import (
	"encoding/binary"
	"fmt"
)

// Kinds of binary terminal frame on the WebSocket, the first byte of a
// [TermFrame]. Terminal bytes travel in WebSocket binary messages, never in
// JSON: they need not be UTF-8, and base64 would cost a third more.
const (
	TermOutput byte = 1 // sharer → server → watchers: Offset, then output bytes
	TermInput  byte = 2 // watcher → server → sharer: keystrokes
)

// TermFrame is one binary WebSocket message of a shared terminal:
//
//	kind u8 | n u8 | share_id (n bytes) | [offset u64, TermOutput only] | data
//
// Offset counts the share's output bytes before Data, so a watcher can tell
// a gap (a late join, a resync) from a continuation. Integers are big-endian.
type TermFrame struct {
	Kind    byte
	ShareID string
	Offset  uint64
	Data    []byte
}

// AppendTermFrame appends f's encoding to dst.
func AppendTermFrame(dst []byte, f TermFrame) []byte {
	dst = append(dst, f.Kind, byte(len(f.ShareID)))
	dst = append(dst, f.ShareID...)
	if f.Kind == TermOutput {
		dst = binary.BigEndian.AppendUint64(dst, f.Offset)
	}
	return append(dst, f.Data...)
}

// DecodeTermFrame parses one binary WebSocket message. Data aliases b. Its
// errors wrap [ErrMalformed].
func DecodeTermFrame(b []byte) (TermFrame, error) {
	var f TermFrame
	if len(b) > MaxFrame {
		return f, fmt.Errorf("%w: %d-byte terminal frame, the limit is %d", ErrMalformed, len(b), MaxFrame)
	}
	if len(b) < 2 {
		return f, fmt.Errorf("%w: terminal frame of %d bytes", ErrMalformed, len(b))
	}
	f.Kind = b[0]
	n := int(b[1])
	if f.Kind != TermOutput && f.Kind != TermInput {
		return f, fmt.Errorf("%w: terminal frame kind %d", ErrMalformed, f.Kind)
	}
	if len(b) < 2+n {
		return f, fmt.Errorf("%w: terminal frame cut inside its share_id", ErrMalformed)
	}
	f.ShareID, b = string(b[2:2+n]), b[2+n:]
	if err := shareID(f.ShareID); err != nil {
		return TermFrame{}, err
	}
	if f.Kind == TermOutput {
		if len(b) < 8 {
			return TermFrame{}, fmt.Errorf("%w: terminal output frame without its offset", ErrMalformed)
		}
		f.Offset, b = binary.BigEndian.Uint64(b), b[8:]
	}
	f.Data = b
	return f, nil
}
