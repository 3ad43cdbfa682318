package protocol

import "errors"

// The three classes of refused input. Every error from [Decode], [Encode],
// [New], [Envelope.Unmarshal] and the payloads' Validate methods wraps exactly
// one of them (Unmarshal's programmer errors, such as a nil target, wrap none);
// match them with [errors.Is].
var (
	// ErrMalformed means the input is not a JSON object, has a field of the
	// wrong type or format, or carries a payload that breaks its rules.
	ErrMalformed = errors.New("malformed frame")
	// ErrUnknownType means a well-formed envelope's type is not a [Type] constant.
	ErrUnknownType = errors.New("unknown type")
	// ErrTooLarge means a frame is over [MaxFrame] bytes.
	ErrTooLarge = errors.New("frame too large")
)

// Codes for the code field of a system.error ([Error]). Each is snake_case
// and stable: clients switch on them.
const (
	CodeMalformed     = "malformed"       // the frame is not a valid envelope
	CodeUnknownType   = "unknown_type"    // the type is not one of mesh's
	CodeFrameTooLarge = "frame_too_large" // over MaxFrame; the server closes with 1009
	CodeInvalid       = "invalid"         // a well-formed request that breaks a rule
	CodeInvalidText   = "invalid_text"    // text holds a refused character (a [CharError])
	CodeForbidden     = "forbidden"       // the user may not do this
	// CodeUserLoginRequired: a device token's session asked for what only
	// a user's login may do (chat, rooms, calls).
	CodeUserLoginRequired = "user_login_required"
	CodeNotFound          = "not_found"    // the room, user or share does not exist
	CodeRateLimited       = "rate_limited" // too many frames; the server closes the connection
	CodeUnavailable       = "unavailable"  // the other party is offline, or the server is stopping
	CodeUnsupported       = "unsupported"  // a known type this server does not handle
	CodeInternal          = "internal"     // the server failed; its log has details
)

// ErrorCode maps an error from this package to the system.error code a client
// should see: [CodeFrameTooLarge], [CodeUnknownType] or [CodeMalformed] for
// the sentinels, "" for nil and [CodeInternal] for anything else.
func ErrorCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrTooLarge):
		return CodeFrameTooLarge
	case errors.Is(err, ErrUnknownType):
		return CodeUnknownType
	case errors.Is(err, ErrMalformed):
		return CodeMalformed
	}
	return CodeInternal
}
