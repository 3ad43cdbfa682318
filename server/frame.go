package server

import (
	"encoding/binary"
	"io"
	"sync"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// frame is one complete server-to-client WebSocket frame (RFC 6455 §5.2;
// a server never masks). An event is framed once and the same bytes are
// written to every recipient, many frames per writev.
type frame []byte

// textFrame frames payload as one final text message.
func textFrame(payload []byte) frame {
	return makeFrame(websocket.TextMessage, payload)
}

// binaryFrame frames payload as one final binary message (terminal bytes).
func binaryFrame(payload []byte) frame {
	return makeFrame(websocket.BinaryMessage, payload)
}

// pingFrame is the keep-alive every session gets each pingPeriod.
var pingFrame = makeFrame(websocket.PingMessage, nil)

// closeFrame frames a close with code and reason (reason cut to fit the
// 125-byte limit of control frames).
func closeFrame(code int, reason string) frame {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	return makeFrame(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason))
}

func makeFrame(op int, payload []byte) frame {
	hdr := makeHeader(op, len(payload))
	return append(append(make(frame, 0, len(hdr)+len(payload)), hdr...), payload...)
}

// makeHeader is the header of a final, unmasked frame of n bytes.
func makeHeader(op, n int) []byte {
	var hdr []byte
	switch {
	case n < 126:
		hdr = []byte{0x80 | byte(op), byte(n)}
	case n <= 0xFFFF:
		hdr = []byte{0x80 | byte(op), 126, 0, 0}
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
	default:
		hdr = make([]byte, 10)
		hdr[0], hdr[1] = 0x80|byte(op), 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(n))
	}
	return hdr
}

// relayFrameCap is the capacity of the pooled buffers relay frames are
// framed in, and how flush tells them from other frames to recycle them:
// a relay frame has one recipient, so it is free once written.
const relayFrameCap = protocol.MaxFrame + 16

// relayFrames recycles relay frames: a relay moves thousands a second.
var relayFrames = sync.Pool{New: func() any { b := make(frame, 0, relayFrameCap); return &b }}

// relayFrame frames payload as a binary message in a pooled buffer;
// see [recycle].
func relayFrame(payload []byte) frame {
	b := relayFrames.Get().(*frame)
	f := append((*b)[:0], makeHeader(websocket.BinaryMessage, len(payload))...)
	return append(f, payload...)
}

// recycle returns a relay frame's buffer once nothing refers to it.
func recycle(f frame) {
	if cap(f) == relayFrameCap {
		f = f[:0]
		relayFrames.Put(&f)
	}
}

// readFrame reads one message, up to MaxFrame+1 bytes, into the session's
// reused buffer (a relay moves thousands of frames a second, and io.ReadAll
// would allocate and grow a buffer for each). The bytes are valid until
// the next call: the loop handles each message before reading the next,
// and handlers copy what they keep.
func (cn *conn) readFrame(r io.Reader) ([]byte, error) {
	if cn.rbuf == nil {
		cn.rbuf = make([]byte, 0, 4096)
	}
	b := cn.rbuf[:0]
	for {
		if len(b) == cap(b) {
			if len(b) > protocol.MaxFrame {
				return b, nil // over the limit: the caller says so
			}
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):min(cap(b), protocol.MaxFrame+1)])
		b = b[:len(b)+n]
		if err == io.EOF {
			cn.rbuf = b[:0]
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if len(b) > protocol.MaxFrame {
			return b, nil
		}
	}
}
