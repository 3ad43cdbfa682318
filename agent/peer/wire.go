package peer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Types of the control messages on the first stream of a peer connection.
const (
	TypeHello = "P2P_HELLO" // initiator → target, body [Hello]
	TypeOK    = "P2P_OK"    // target → initiator, no body: the stream now speaks the kind's protocol
	TypeDeny  = "P2P_DENY"  // target → initiator, body [Deny]; the target closes the connection
)

// MaxControl is the largest control message in bytes, the 4-byte length
// prefix not counted.
const MaxControl = 64 << 10

// maxType bounds the "type" field so a peer cannot make us log megabytes.
const maxType = 64

// ErrProtocol means a peer sent something that is not a well-formed control
// message: too large, empty, not JSON or without a type.
var ErrProtocol = errors.New("peer protocol violation")

// Hello is the body of P2P_HELLO: the initiator names the session and proves
// it holds the token. Token is a secret and is never logged.
type Hello struct {
	SessionID string `json:"session_id"`
	Token     string `json:"token"`
	DeviceID  string `json:"device_id"`
	Kind      string `json:"kind"`
}

// LogValue keeps the token out of logs.
func (h Hello) LogValue() slog.Value {
	return slog.GroupValue(slog.String("session_id", h.SessionID),
		slog.String("device_id", h.DeviceID), slog.String("kind", h.Kind))
}

// Deny is the body of P2P_DENY.
type Deny struct {
	Reason string `json:"reason"`
}

// Reason is why a P2P_HELLO was denied: short and meant for a human. The
// Reason constants are a [SessionCache]'s; an [Endpoint] also denies with
// reasons that name the user or device, and a peer's P2P_DENY may say
// anything.
type Reason string

// DenyError is a refusal, by this device's [SessionCache] or [Endpoint], or
// by the peer's P2P_DENY.
type DenyError struct{ Reason Reason }

func (e *DenyError) Error() string { return "denied: " + string(e.Reason) }

// control is the JSON of one control message: {"type":"P2P_DENY","body":{…}}.
type control struct {
	Type string          `json:"type"`
	Body json.RawMessage `json:"body,omitempty"`
}

// WriteControl writes one control message of type typ with body v (nil, or
// anything that encodes as null, for none) as a 4-byte big-endian length and JSON, in a single Write. A message
// over [MaxControl] is not written; its error wraps [ErrProtocol].
func WriteControl(w io.Writer, typ string, v any) error {
	c := control{Type: typ}
	if v != nil {
		var body bytes.Buffer
		if err := noHTMLEncoder(&body).Encode(v); err != nil {
			return fmt.Errorf("encode %s: %w", typ, err)
		}
		if b := bytes.TrimSuffix(body.Bytes(), []byte("\n")); string(b) != "null" { // a nil pointer or RawMessage: no body
			c.Body = b
		}
	}
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0, 0})
	if err := noHTMLEncoder(&buf).Encode(c); err != nil {
		return fmt.Errorf("encode %s: %w", typ, err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	n := len(b) - 4
	if typ == "" || len(typ) > maxType || n > MaxControl {
		return fmt.Errorf("%w: %d-byte %q message", ErrProtocol, n, typ)
	}
	binary.BigEndian.PutUint32(b, uint32(n))
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", typ, err)
	}
	return nil
}

// noHTMLEncoder writes JSON as is: HTML escaping would make a body read
// back differ from the one written ("&" against "\u0026"), found by fuzzing.
func noHTMLEncoder(w io.Writer) *json.Encoder {
	e := json.NewEncoder(w)
	e.SetEscapeHTML(false)
	return e
}

// ReadControl reads one control message written by [WriteControl] and returns
// its type and raw body (nil if it had none). It returns io.EOF if r ends
// before the message starts, io.ErrUnexpectedEOF if it ends inside it, and an
// error wrapping [ErrProtocol] for a bad length (checked before anything is
// allocated), invalid JSON or a missing type. Unknown types are the caller's
// to refuse.
func ReadControl(r io.Reader) (typ string, body json.RawMessage, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > MaxControl {
		return "", nil, fmt.Errorf("%w: %d-byte control message (limit %d)", ErrProtocol, n, MaxControl)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", nil, err
	}
	var c control
	if err := json.Unmarshal(b, &c); err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if c.Type == "" || len(c.Type) > maxType {
		return "", nil, fmt.Errorf("%w: message type missing or over %d bytes", ErrProtocol, maxType)
	}
	if string(c.Body) == "null" {
		c.Body = nil
	}
	return c.Type, c.Body, nil
}

// readBody reads one control message and decodes its body into v if its type
// is want. While waiting for P2P_OK, a P2P_DENY becomes a [*DenyError]; any
// other unexpected type is an ErrProtocol.
func readBody(r io.Reader, want string, v any) error {
	typ, body, err := ReadControl(r)
	switch {
	case err != nil:
		return err
	case typ == TypeDeny && want == TypeOK:
		var d Deny
		if err := json.Unmarshal(body, &d); err != nil || d.Reason == "" {
			d.Reason = "no reason given"
		}
		return &DenyError{Reason: Reason(d.Reason)}
	case typ != want:
		return fmt.Errorf("%w: got %.64q, want %s", ErrProtocol, typ, want)
	case v == nil:
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %s body: %w", ErrProtocol, typ, err)
	}
	return nil
}
