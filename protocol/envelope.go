// Package protocol owns the wire format of mesh's WebSocket: the JSON
// [Envelope] every frame is, the closed set of event [Type]s, one Go type per
// payload with its validation rules, the frame limit and the system.error
// codes. It decodes and encodes bytes only: it does no I/O, keeps no state and
// logs nothing. It does not own HTTP bodies (package server) nor the QUIC
// peer-to-peer messages (packages transfer and terminal).
package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"
)

// MaxFrame is the cap, in bytes, on one WebSocket frame a peer accepts.
// [Decode] refuses larger input with [ErrTooLarge]. [Encode] does not
// enforce it; the server keeps its events under it (room.synced pages are
// cut by size), so clients may apply the same cap.
const MaxFrame = 64 << 10

// Envelope is one WebSocket frame:
// {"type","id","timestamp","from","to","payload"}.
//
// ID is chosen by the sender; replies carry it back as ref_id in their
// payload. From is the sender's username, always set by the server (a
// client's claim is overwritten). To is an optional addressee. Payload is a
// JSON object or empty; read it with [Envelope.Unmarshal].
type Envelope struct {
	Type      Type            `json:"type"`
	ID        string          `json:"id,omitempty"`
	Timestamp time.Time       `json:"timestamp"` // RFC3339 in UTC on the wire; zero when a client left it out
	From      string          `json:"from,omitempty"`
	To        string          `json:"to,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
}

// wire is an [Envelope] as it is encoded: the timestamp already formatted.
type wire struct {
	Type      Type            `json:"type"`
	ID        string          `json:"id,omitempty"`
	Timestamp string          `json:"timestamp"`
	From      string          `json:"from,omitempty"`
	To        string          `json:"to,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
}

// New returns an envelope of type t stamped with the current time in UTC,
// with payload marshalled to JSON (nil means no payload). Its errors wrap
// [ErrUnknownType] for a type that is not known and [ErrMalformed] for a
// payload that does not marshal to a JSON object.
func New(t Type, payload any) (Envelope, error) {
	e := Envelope{Type: t, Timestamp: time.Now().UTC()}
	if !t.Known() {
		return Envelope{}, fmt.Errorf("new envelope: %w: %q", ErrUnknownType, t)
	}
	if payload == nil {
		return e, nil
	}
	b, err := marshal(payload)
	if err != nil {
		return Envelope{}, fmt.Errorf("new %s: %w: payload: %w", t, ErrMalformed, err)
	}
	if e.Payload, err = objectOrNil(b); err != nil {
		return Envelope{}, fmt.Errorf("new %s: %w", t, err)
	}
	return e, nil
}

// Encode returns the wire form of e: compact JSON, keys in the order of the
// struct, the timestamp in UTC as RFC3339 with nanoseconds, HTML characters
// left unescaped. Encoding what [Decode] returned and decoding that again
// gives an equal envelope and the same bytes. Its errors wrap
// [ErrUnknownType] for an unknown type and [ErrMalformed] for a missing type,
// a payload that is not a JSON object, or a timestamp whose UTC year is
// outside 0000–9999.
func Encode(e Envelope) ([]byte, error) {
	if e.Type == "" {
		return nil, fmt.Errorf("encode: %w: the envelope has no type", ErrMalformed)
	} else if !e.Type.Known() {
		return nil, fmt.Errorf("encode: %w: %q", ErrUnknownType, e.Type)
	}
	ts := e.Timestamp.UTC()
	if y := ts.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("encode %s: %w: timestamp year %d is outside 0000-9999", e.Type, ErrMalformed, y)
	}
	payload, err := objectOrNil(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", e.Type, err)
	}
	b, err := marshal(wire{Type: e.Type, ID: e.ID, Timestamp: ts.Format(time.RFC3339Nano),
		From: e.From, To: e.To, Payload: payload})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w: %w", e.Type, ErrMalformed, err)
	}
	return b, nil
}

// Unmarshal decodes e's payload into v, a pointer to one of this package's
// payload types. An empty payload decodes as {}. Unknown fields are ignored;
// a field of the wrong JSON type is an error wrapping [ErrMalformed] that
// names the field. Unmarshal does not call Validate.
func (e Envelope) Unmarshal(v any) error {
	p := []byte(e.Payload)
	if len(bytes.Trim(p, jsonSpace)) == 0 {
		p = []byte("{}")
	}
	err := json.Unmarshal(p, v)
	var (
		te *json.UnmarshalTypeError
		ie *json.InvalidUnmarshalError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		return fmt.Errorf("unmarshal %s payload: %w", e.Type, err) // a programmer error, not bad input
	case errors.As(err, &te) && te.Field != "":
		return fmt.Errorf("%w: %s payload: %q must be %s, not %s", ErrMalformed, e.Type, te.Field, kindOf(te.Type), valueKind(te.Value))
	case errors.As(err, &te):
		return fmt.Errorf("%w: %s payload must be %s, not %s", ErrMalformed, e.Type, kindOf(te.Type), valueKind(te.Value))
	}
	return fmt.Errorf("%w: %s payload: %w", ErrMalformed, e.Type, err)
}

// jsonSpace is the whitespace JSON allows between tokens.
const jsonSpace = " \t\r\n"

// marshal is json.Marshal without HTML escaping and without the trailing
// newline, so that "<" in a chat message stays "<" on the wire.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// objectOrNil returns p compacted if it is a JSON object, nil if it is empty
// or null, and an error wrapping [ErrMalformed] otherwise.
func objectOrNil(p []byte) (json.RawMessage, error) {
	t := bytes.Trim(p, jsonSpace)
	switch {
	case len(t) == 0 || string(t) == "null":
		return nil, nil
	case !json.Valid(t):
		return nil, fmt.Errorf("%w: payload is not valid JSON", ErrMalformed)
	case t[0] != '{':
		return nil, fmt.Errorf("%w: payload must be a JSON object, not %s", ErrMalformed, describe(t))
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, t); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrMalformed, err)
	}
	return buf.Bytes(), nil
}

// describe names the JSON kind of the valid JSON value b, for messages.
func describe(b []byte) string {
	b = bytes.TrimLeft(b, jsonSpace)
	if len(b) == 0 {
		return "nothing"
	}
	switch c := b[0]; {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == '-' || c >= '0' && c <= '9':
		return "a number"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	}
	return "something else"
}

// valueKind phrases the Value of a [json.UnmarshalTypeError] ("string",
// "number 1.5", …) for messages.
func valueKind(v string) string {
	switch v {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "array":
		return "an array"
	case "object":
		return "an object"
	}
	return v
}

// kindOf names the JSON kind a Go type decodes from, for messages.
func kindOf(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "an array"
	case reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}
