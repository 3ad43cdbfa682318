package transfer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Limits and constants of the wire format (see the package documentation).
const (
	// Version is the manifest's version field; a receiver refuses any other.
	Version = 2
	// MaxControl is the largest control message body, in bytes.
	MaxControl = 64 << 10
	// DefaultChunkSize is the chunk size [Send] uses when Options.ChunkSize is 0.
	DefaultChunkSize = 1 << 20
	// MinChunkSize and MaxChunkSize bound the chunk size a manifest may ask for.
	MinChunkSize = 4 << 10
	MaxChunkSize = 16 << 20 // a receiver holds three buffers of the chunk size
	// MaxEntries is the most manifest entries one transfer may carry.
	MaxEntries = 1 << 20
)

// Binary frame tags: the first word of a frame in the data phase. Each is
// above MaxControl, so it cannot be mistaken for a control message length.
const (
	tagFile  uint32 = 0x8000_0001 // file start: index u32, offset u64
	tagChunk uint32 = 0x8000_0002 // chunk: index u32, offset u64, length u32, blake3 [32]byte
	tagEnd   uint32 = 0x8000_0003 // file end: index u32, flags u32, blake3 [32]byte of the whole file

	fileFrameLen  = 4 + 4 + 8
	chunkFrameLen = 4 + 4 + 8 + 4 + 32
	endFrameLen   = 4 + 4 + 4 + 32

	// endChanged, in an end frame's flags, says the sender saw the file
	// change while it read it: the data is torn and must not land.
	endChanged uint32 = 1

	batchBudget = MaxControl - 4<<10 // room for a batch message's own fields
)

// Message types, the "type" discriminator of control messages.
const (
	typeManifest = "manifest" // sender: part of the manifest
	typePlan     = "plan"     // receiver: part of the plan
	typeAck      = "ack"      // receiver: one file's verdict
	typeDone     = "done"     // sender: all data sent
	typeSummary  = "summary"  // receiver: the end of the transfer
	typeAbort    = "abort"    // either side: the transfer stops now
)

// Entry kinds.
const (
	kindFile = "file"
	kindDir  = "dir"
)

// Abort codes, and the sentinels they map to on the other side.
const (
	codeNoSpace  = "no_space"
	codeMismatch = "mismatch"
	codeProtocol = "protocol"
	codeUnsafe   = "unsafe_name"
	codeError    = "error"
)

type manifestMsg struct {
	Type      string  `json:"type"`
	Version   int     `json:"version"`
	ChunkSize int     `json:"chunk_size"`
	Entries   []entry `json:"entries"`
	More      bool    `json:"more,omitempty"` // another manifest message follows
}

type entry struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
	Size int64  `json:"size,omitempty"`
	Mode uint32 `json:"mode"`
	// BLAKE3 is the whole file's, hex, once known. Since version 2 it is
	// not in the manifest: it travels after the data, in the end frame, so
	// the sender needs no pass over the file before the first byte.
	BLAKE3 string `json:"-"`
}

type planMsg struct {
	Type  string      `json:"type"`
	Tops  []landing   `json:"tops,omitempty"`
	Files []planEntry `json:"files,omitempty"` // only entries that resume or are refused
	More  bool        `json:"more,omitempty"`
}

// landing maps a top-level name of the manifest to the name it lands under.
type landing struct {
	Name string `json:"name"`
	As   string `json:"as"`
}

type planEntry struct {
	Index   int    `json:"index"`
	Offset  int64  `json:"offset,omitempty"`
	Prefix  string `json:"prefix,omitempty"` // blake3 hex of the first Offset bytes
	Refused string `json:"refused,omitempty"`
}

type ackMsg struct {
	Type   string `json:"type"`
	Index  int    `json:"index"`
	Status string `json:"status"`
	Name   string `json:"name"`
	Reason string `json:"reason,omitempty"`
}

type doneMsg struct {
	Type  string `json:"type"`
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
}

type summaryMsg struct {
	Type     string    `json:"type"`
	OK       int       `json:"ok"`
	Mismatch int       `json:"mismatch"`
	Refused  int       `json:"refused"`
	Bytes    int64     `json:"bytes"`
	Renamed  []landing `json:"renamed,omitempty"` // top-level names that landed elsewhere than planned
}

type abortMsg struct {
	Type   string `json:"type"`
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// WriteMsg writes v as one control message: a 4-byte big-endian length, then
// that many bytes of JSON. v should be a struct with a "type" field. An
// encoding over [MaxControl] bytes is refused with an error wrapping
// [ErrProtocol] and nothing is written. WriteMsg makes one Write call.
func WriteMsg(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode control message: %w", err)
	}
	if len(body) > MaxControl {
		return fmt.Errorf("%w: %d-byte control message, the limit is %d", ErrProtocol, len(body), MaxControl)
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write control message: %w", err)
	}
	return nil
}

// ReadMsg reads one control message into v (a pointer, or *[json.RawMessage]
// to keep the body). The body must be a JSON object with a non-empty string
// "type"; a length over [MaxControl] is refused before its body is read.
// Errors about the bytes received wrap [ErrProtocol]; I/O errors are returned
// wrapped as they are (io.EOF when the stream ends before a message begins).
func ReadMsg(r io.Reader, v any) error {
	var word [4]byte
	if _, err := io.ReadFull(r, word[:]); err != nil {
		return fmt.Errorf("read control message: %w", err)
	}
	body, err := readBody(r, binary.BigEndian.Uint32(word[:]))
	if err != nil {
		return err
	}
	return decodeMsg(body, v)
}

// readBody reads the body of a control message whose length word was n.
func readBody(r io.Reader, n uint32) ([]byte, error) {
	if n > MaxControl {
		return nil, fmt.Errorf("%w: control message of %d bytes, the limit is %d", ErrProtocol, n, MaxControl)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read control message: %w", noEOF(err))
	}
	return body, nil
}

// decodeMsg checks the type discriminator of body, then decodes it into v.
func decodeMsg(body []byte, v any) error {
	typ, err := msgType(body)
	if err != nil {
		return err
	}
	if want := wantType(v); want != "" && want != typ {
		return fmt.Errorf("%w: got a %q message, want %q", ErrProtocol, typ, want)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %q message: %w", ErrProtocol, typ, err)
	}
	return nil
}

// msgType returns the "type" field of a control message body.
func msgType(body []byte) (string, error) {
	var h struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return "", fmt.Errorf("%w: control message: %w", ErrProtocol, err)
	}
	if h.Type == nil || *h.Type == "" {
		return "", fmt.Errorf("%w: control message without a type", ErrProtocol)
	}
	return *h.Type, nil
}

// wantType is the type a decoding target demands, "" for any.
func wantType(v any) string {
	switch v.(type) {
	case *manifestMsg:
		return typeManifest
	case *planMsg:
		return typePlan
	case *ackMsg:
		return typeAck
	case *doneMsg:
		return typeDone
	case *summaryMsg:
		return typeSummary
	case *abortMsg:
		return typeAbort
	}
	return ""
}

// noEOF turns a clean EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// chunkHeader is the binary header of a data chunk. Its sum is the BLAKE3
// of the file's bytes 0…offset+length, the whole-file hasher's digest after
// the chunk, not the chunk's own hash: the receiver feeds the chunk to its
// whole-file hasher and compares digests before the chunk is written. That
// is one hashing pass per side instead of two (a hash per chunk and one
// over the file), and a stronger check: a match proves the chunk and,
// with it, everything before it. zeebo/blake3 exposes no chaining values,
// so a whole-file hash cannot be assembled from separate chunk hashes; a
// digest of the running state costs only the tree's few parent nodes.
type chunkHeader struct {
	index  uint32
	offset int64
	length uint32
	sum    [32]byte
}

func (h *chunkHeader) put(b *[chunkFrameLen]byte) {
	binary.BigEndian.PutUint32(b[0:], tagChunk)
	binary.BigEndian.PutUint32(b[4:], h.index)
	binary.BigEndian.PutUint64(b[8:], uint64(h.offset))
	binary.BigEndian.PutUint32(b[16:], h.length)
	copy(b[20:], h.sum[:])
}

// parse decodes the 48 bytes that follow the tag of a chunk frame.
func (h *chunkHeader) parse(b []byte) {
	h.index = binary.BigEndian.Uint32(b[0:])
	h.offset = int64(binary.BigEndian.Uint64(b[4:]))
	h.length = binary.BigEndian.Uint32(b[12:])
	copy(h.sum[:], b[16:48])
}

// endFrame is a file's end frame: its whole-file BLAKE3 after its data.
type endFrame struct {
	index uint32
	flags uint32
	sum   [32]byte
}

func (e *endFrame) put(b *[endFrameLen]byte) {
	binary.BigEndian.PutUint32(b[0:], tagEnd)
	binary.BigEndian.PutUint32(b[4:], e.index)
	binary.BigEndian.PutUint32(b[8:], e.flags)
	copy(b[12:], e.sum[:])
}

// parse decodes the 40 bytes that follow the tag of an end frame.
func (e *endFrame) parse(b []byte) {
	e.index = binary.BigEndian.Uint32(b[0:])
	e.flags = binary.BigEndian.Uint32(b[4:])
	copy(e.sum[:], b[8:40])
}

func putFileFrame(b *[fileFrameLen]byte, index uint32, offset int64) {
	binary.BigEndian.PutUint32(b[0:], tagFile)
	binary.BigEndian.PutUint32(b[4:], index)
	binary.BigEndian.PutUint64(b[8:], uint64(offset))
}

// writeBatched sends items as control messages of at most [MaxControl]
// bytes: mk builds a message from a batch and whether more batches follow.
// It always sends at least one message.
func writeBatched[T any](w io.Writer, items []T, mk func(batch []T, more bool) any) error {
	start, size := 0, 0
	for i, it := range items {
		b, err := json.Marshal(it)
		if err != nil {
			return fmt.Errorf("encode batch item: %w", err)
		}
		if size+len(b)+1 > batchBudget && i > start {
			if err := WriteMsg(w, mk(items[start:i], true)); err != nil {
				return err
			}
			start, size = i, 0
		}
		size += len(b) + 1
	}
	return WriteMsg(w, mk(items[start:], false))
}
