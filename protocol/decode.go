package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Decode parses one frame. It is lenient where real clients are sloppy and
// strict where a mistake would go unnoticed:
//
//   - id, timestamp, from and to are optional (null counts as absent); a
//     present timestamp must be an RFC3339 string and comes back in UTC;
//   - without a "payload" key, every top-level key that is not an envelope
//     field is gathered into the payload, so the wscat check
//     {"type":"system.hello","device_id":"test-device"} carries
//     {"device_id":"test-device"}; a present payload must be an object or null;
//   - keys are matched exactly (case-sensitive); for a repeated key the last wins.
//
// Its errors wrap exactly one of [ErrTooLarge] (over [MaxFrame]),
// [ErrUnknownType] (the message quotes the type) or [ErrMalformed] (anything
// else: not one JSON object, data after it, a missing type, a field of the
// wrong type). On error the Envelope is zero except for ID, which is set
// whenever the frame had a readable id, so the caller can answer with ref_id.
func Decode(b []byte) (Envelope, error) {
	if len(b) > MaxFrame {
		return Envelope{}, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(b), MaxFrame)
	}
	fields, err := object(b)
	if err != nil {
		return Envelope{}, err
	}
	var e Envelope
	if e.ID, err = stringField(fields, "id"); err != nil {
		return Envelope{}, err
	}
	typ, err := stringField(fields, "type")
	switch {
	case err != nil:
		return Envelope{ID: e.ID}, err
	case typ == "":
		return Envelope{ID: e.ID}, fmt.Errorf(`%w: no "type"; every frame needs one, e.g. {"type":"system.hello"}`, ErrMalformed)
	case !Type(typ).Known():
		return Envelope{ID: e.ID}, fmt.Errorf("%w: %q is not a mesh event type", ErrUnknownType, typ)
	}
	e.Type = Type(typ)
	if e.From, err = stringField(fields, "from"); err == nil {
		e.To, err = stringField(fields, "to")
	}
	if err == nil {
		e.Timestamp, err = timestamp(fields)
	}
	if err == nil {
		e.Payload, err = payload(fields)
	}
	if err != nil {
		return Envelope{ID: e.ID}, err
	}
	return e, nil
}

// object splits b, which must be exactly one JSON object, into its members.
func object(b []byte) (map[string]json.RawMessage, error) {
	trimmed := bytes.TrimLeft(b, jsonSpace)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf(`%w: empty frame; send one JSON object like {"type":"system.hello"}`, ErrMalformed)
	} else if trimmed[0] != '{' && json.Valid(trimmed) {
		return nil, fmt.Errorf(`%w: a frame is one JSON object like {"type":"system.hello"}, not %s`, ErrMalformed, describe(trimmed))
	} else if trimmed[0] != '{' {
		var v any
		return nil, syntaxError(json.Unmarshal(b, &v)) // not nil: b is not valid JSON
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil {
		return nil, syntaxError(err)
	}
	if off := dec.InputOffset(); len(bytes.Trim(b[off:], jsonSpace)) > 0 {
		return nil, fmt.Errorf("%w: data after the JSON object at byte %d; send one object per frame", ErrMalformed, off)
	}
	return fields, nil
}

// syntaxError turns a JSON parse error into an [ErrMalformed] with its position.
func syntaxError(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("%w: invalid JSON at byte %d: %v", ErrMalformed, se.Offset, se)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: the JSON object is cut short; send a complete object", ErrMalformed)
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}

// stringField returns the string at key; absent or null is "".
func stringField(fields map[string]json.RawMessage, key string) (string, error) {
	raw, ok := fields[key]
	if !ok || isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: %q must be a string, not %s", ErrMalformed, key, describe(raw))
	}
	return s, nil
}

// timestamp returns the RFC3339 time at "timestamp" in UTC; absent or null
// is the zero time.
func timestamp(fields map[string]json.RawMessage) (time.Time, error) {
	if raw, ok := fields["timestamp"]; !ok || isNull(raw) {
		return time.Time{}, nil
	}
	s, err := stringField(fields, "timestamp")
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf(`%w: timestamp %q is not RFC3339; use e.g. "2026-01-04T23:00:00Z" or leave it out`, ErrMalformed, s)
	}
	if t = t.UTC(); t.Year() < 0 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("%w: timestamp %q is outside the years 0000-9999 in UTC", ErrMalformed, s)
	}
	return t, nil
}

// payload returns the "payload" object, or gathers the top-level keys that
// are not envelope fields into one when there is no "payload" key.
func payload(fields map[string]json.RawMessage) (json.RawMessage, error) {
	if raw, ok := fields["payload"]; ok {
		return objectOrNil(raw)
	}
	extra := make(map[string]json.RawMessage)
	for k, v := range fields {
		switch k {
		case "type", "id", "timestamp", "from", "to":
		default:
			extra[k] = v
		}
	}
	if len(extra) == 0 {
		return nil, nil
	}
	b, err := marshal(extra) // keys sorted, values compacted: deterministic
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrMalformed, err)
	}
	return b, nil
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.Trim(raw, jsonSpace)) == "null"
}
