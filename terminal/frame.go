package terminal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// Frame types, the first byte of every frame (see the package documentation).
const (
	FrameOutput byte = 1 // host → viewer: Offset, Data
	FrameInput  byte = 2 // viewer → host: Data
	FrameResize byte = 3 // host → viewer: Cols, Rows
	FrameExit   byte = 4 // host → viewer: Code, Reason; the last frame
	FrameHello  byte = 5 // host → viewer: Data holds the JSON of a [Hello]; the first frame
)

// MaxPayload is the largest payload, in bytes, of one frame.
const MaxPayload = 64 << 10

const headerLen = 5 // type u8, length u32

// ErrProtocol is wrapped by every error [Reader.Next] returns for malformed
// input, and by the errors of [Host.Serve] and [Join] when the peer breaks
// the wire contract.
var ErrProtocol = errors.New("terminal protocol error")

// Frame is one frame of either direction. Which fields count depends on
// Type: Offset and Data for [FrameOutput], Data for [FrameInput] and
// [FrameHello], Cols and Rows for [FrameResize], Code and Reason for
// [FrameExit].
type Frame struct {
	Type   byte
	Offset uint64 // output bytes of the share before Data
	Data   []byte
	Cols   int // 0–65535
	Rows   int // 0–65535
	Code   int // fits in an int32
	Reason string
}

// Hello is the JSON of the first frame a host sends a viewer.
type Hello struct {
	Cols    int    `json:"cols"`
	Rows    int    `json:"rows"`
	Input   bool   `json:"input"` // this viewer's keystrokes reach the shell
	Command string `json:"command,omitempty"`
	Offset  uint64 `json:"offset"` // where the replay of recent output starts
}

// Frame returns h as a [FrameHello] frame.
func (h Hello) Frame() Frame {
	b, err := json.Marshal(h)
	if err != nil {
		panic(err) // unreachable: Hello has only ints, bools and strings
	}
	return Frame{Type: FrameHello, Data: b}
}

// Hello decodes the JSON a [FrameHello] frame carries. Its errors wrap
// [ErrProtocol]: Data must be a JSON object, with cols and rows in 0–65535.
// Unknown keys are ignored, so a newer host may add some.
func (f Frame) Hello() (Hello, error) {
	var h Hello
	if f.Type != FrameHello {
		return h, fmt.Errorf("%w: frame type %d is not a hello", ErrProtocol, f.Type)
	}
	if !bytes.HasPrefix(bytes.TrimLeft(f.Data, " \t\r\n"), []byte("{")) {
		return h, fmt.Errorf("%w: hello is not a JSON object", ErrProtocol)
	}
	if err := json.Unmarshal(f.Data, &h); err != nil {
		return Hello{}, fmt.Errorf("%w: hello: %w", ErrProtocol, err)
	}
	if !fitsU16(h.Cols) || !fitsU16(h.Rows) {
		return Hello{}, fmt.Errorf("%w: hello size %dx%d", ErrProtocol, h.Cols, h.Rows)
	}
	return h, nil
}

// WriteFrame writes f to w in one Write call, so frames written by
// goroutines that share w (each with its own call) never interleave when w
// is a net.Conn or a *quic.Stream. It refuses a frame that [Reader.Next]
// would reject: an unknown type, a payload over [MaxPayload], a size or
// code out of range, a Hello that does not decode.
func WriteFrame(w io.Writer, f Frame) error {
	b, err := appendFrame(make([]byte, 0, headerLen+8+len(f.Data)+len(f.Reason)), f)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// appendFrame appends f's encoding to dst.
func appendFrame(dst []byte, f Frame) ([]byte, error) {
	start := len(dst)
	dst = append(dst, f.Type, 0, 0, 0, 0)
	switch f.Type {
	case FrameHello:
		if _, err := f.Hello(); err != nil {
			return dst[:start], fmt.Errorf("encode frame: %w", err)
		}
		dst = append(dst, f.Data...)
	case FrameOutput:
		dst = binary.BigEndian.AppendUint64(dst, f.Offset)
		dst = append(dst, f.Data...)
	case FrameInput:
		dst = append(dst, f.Data...)
	case FrameResize:
		if !fitsU16(f.Cols) || !fitsU16(f.Rows) {
			return dst[:start], fmt.Errorf("encode frame: size %dx%d out of range", f.Cols, f.Rows)
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(f.Cols))
		dst = binary.BigEndian.AppendUint16(dst, uint16(f.Rows))
	case FrameExit:
		if f.Code < math.MinInt32 || f.Code > math.MaxInt32 {
			return dst[:start], fmt.Errorf("encode frame: exit code %d out of range", f.Code)
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(int32(f.Code)))
		dst = append(dst, f.Reason...)
	default:
		return dst[:start], fmt.Errorf("encode frame: unknown type %d", f.Type)
	}
	n := len(dst) - start - headerLen
	if n > MaxPayload {
		return dst[:start], fmt.Errorf("encode frame: %d-byte payload, the limit is %d", n, MaxPayload)
	}
	binary.BigEndian.PutUint32(dst[start+1:], uint32(n))
	return dst, nil
}

func fitsU16(n int) bool { return n >= 0 && n <= math.MaxUint16 }

// Reader reads frames from a stream. It is not safe for concurrent use.
type Reader struct {
	r   *bufio.Reader // a whole small frame usually costs one read of the stream
	hdr [headerLen]byte
	buf []byte // the last payload; grows up to MaxPayload
}

// NewReader returns a Reader of the frames in r. It may read ahead of the
// frame it returns, so r should not be read by anyone else afterwards.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 32<<10)}
}

// Next returns the next frame. Its Data aliases a buffer of r that is valid
// until the next call; Data is nil when empty. At a clean end of the stream
// between frames it returns io.EOF; a stream that ends inside a frame gives
// an error wrapping io.ErrUnexpectedEOF; malformed input (an unknown type, a
// length over [MaxPayload], a payload too short for its type, a Hello that
// does not decode) gives an error wrapping [ErrProtocol]. Any other error
// is the stream's.
func (r *Reader) Next() (Frame, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return Frame{}, err
	}
	typ, n := r.hdr[0], binary.BigEndian.Uint32(r.hdr[1:])
	if typ < FrameOutput || typ > FrameHello {
		return Frame{}, fmt.Errorf("%w: unknown frame type %d", ErrProtocol, typ)
	}
	if n > MaxPayload {
		return Frame{}, fmt.Errorf("%w: %d-byte payload, the limit is %d", ErrProtocol, n, MaxPayload)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	p := r.buf[:n]
	if _, err := io.ReadFull(r.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("read frame type %d: %w", typ, err)
	}
	return parsePayload(typ, p)
}

// parsePayload decodes the payload p of a frame of type typ.
func parsePayload(typ byte, p []byte) (Frame, error) {
	f := Frame{Type: typ}
	switch typ {
	case FrameOutput:
		if len(p) < 8 {
			return Frame{}, fmt.Errorf("%w: output frame of %d bytes has no offset", ErrProtocol, len(p))
		}
		f.Offset, f.Data = binary.BigEndian.Uint64(p), nonEmpty(p[8:])
	case FrameInput:
		f.Data = nonEmpty(p)
	case FrameResize:
		if len(p) != 4 {
			return Frame{}, fmt.Errorf("%w: resize frame of %d bytes, want 4", ErrProtocol, len(p))
		}
		f.Cols, f.Rows = int(binary.BigEndian.Uint16(p)), int(binary.BigEndian.Uint16(p[2:]))
	case FrameExit:
		if len(p) < 4 {
			return Frame{}, fmt.Errorf("%w: exit frame of %d bytes has no code", ErrProtocol, len(p))
		}
		f.Code, f.Reason = int(int32(binary.BigEndian.Uint32(p))), string(p[4:])
	case FrameHello:
		f.Data = nonEmpty(p)
		if _, err := f.Hello(); err != nil {
			return Frame{}, err
		}
	}
	return f, nil
}

func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
