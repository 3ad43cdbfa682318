package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"mesh/protocol"
	"mesh/store"
)

// kind is what sort of refusal a request met. It decides the HTTP status
// (httpError) and the WebSocket code (dispatch); nothing else does.
type kind int

const (
	kindInvalid       kind = iota // the request breaks a rule
	kindUnauthorized              // no valid credentials
	kindForbidden                 // the caller may not do this
	kindLoginRequired             // a device token asked for a user's work
	kindNotFound                  // no such thing, or not the caller's to see
	kindConflict                  // the state of things does not allow it now
	kindGone                      // it existed and has expired
	kindTooLarge                  // the body is over the cap
	kindRateLimited               // too much, too fast
	kindUpstream                  // a service the server relies on failed
	kindUnavailable               // the server is stopping
	kindUnsupported               // a known request this server does not handle
)

// refusal is a domain refusal: a kind, a snake_case code the HTTP API
// shows, and a message that says what to do. Handlers of both transports
// return it; each transport's edge maps the kind once.
type refusal struct {
	kind kind
	code string
	msg  string
}

func (r *refusal) Error() string { return r.msg }

func refuse(k kind, code, format string, args ...any) *refusal {
	return &refusal{kind: k, code: code, msg: fmt.Sprintf(format, args...)}
}

// The codes of the HTTP API's error bodies. A WebSocket client sees the
// coarser protocol code of the refusal's kind instead (wsCode).
const (
	codeBadRequest         = "bad_request"
	codeBodyTooLarge       = "body_too_large"
	codeDeviceNotFound     = "device_not_found"
	codeDeviceOffline      = "device_offline"
	codeDeviceTaken        = "device_taken"
	codeDirectRoom         = "direct_room"
	codeForbidden          = "forbidden"
	codeInternal           = "internal"
	codeInvalidCredentials = "invalid_credentials"
	codeInvalidBefore      = "invalid_before"
	codeInvalidDeviceID    = "invalid_device_id"
	codeInvalidField       = "invalid_field"
	codeInvalidFingerprint = "invalid_fingerprint"
	codeInvalidGotify      = "invalid_gotify"
	codeInvalidJSON        = "invalid_json"
	codeInvalidKind        = "invalid_kind"
	codeInvalidLimit       = "invalid_limit"
	codeInvalidName        = "invalid_name"
	codeInvalidPassword    = "invalid_password"
	codeInvalidRequest     = "invalid_request"
	codeInvalidRoomID      = "invalid_room_id"
	codeInvalidToken       = "invalid_token"
	codeInvalidUsername    = "invalid_username"
	codeInvalidVisibility  = "invalid_visibility"
	codeInviteInvalid      = "invite_invalid"
	codeInviteRequired     = "invite_required"
	codeMethodNotAllowed   = "method_not_allowed"
	codeMissingField       = "missing_field"
	codeNoFingerprint      = "no_fingerprint"
	codeNoInitiator        = "no_initiator"
	codeNoTarget           = "no_target"
	codeNotFound           = "not_found"
	codeOriginForbidden    = "origin_forbidden"
	codePrivateTarget      = "private_target"
	codePushFailed         = "push_failed"
	codeRateLimited        = "rate_limited"
	codeRegistrationClosed = "registration_closed"
	codeRoomNameTaken      = "room_name_taken"
	codeSessionExpired     = "session_expired"
	codeSessionNotFound    = "session_not_found"
	codeShuttingDown       = "shutting_down"
	codeTooManyDevices     = "too_many_devices"
	codeTooManySessions    = "too_many_sessions"
	codeUnauthorized       = "unauthorized"
	codeUnsupported        = "unsupported"
	codeUserLoginRequired  = "user_login_required"
	codeUserNotFound       = "user_not_found"
	codeUserOffline        = "user_offline"
	codeUsernameTaken      = "username_taken"
)

// httpStatus is the status a refusal of kind k leaves the HTTP API with.
func httpStatus(k kind) int {
	switch k {
	case kindUnauthorized:
		return http.StatusUnauthorized
	case kindForbidden, kindLoginRequired:
		return http.StatusForbidden
	case kindNotFound:
		return http.StatusNotFound
	case kindConflict:
		return http.StatusConflict
	case kindGone:
		return http.StatusGone
	case kindTooLarge:
		return http.StatusRequestEntityTooLarge
	case kindRateLimited:
		return http.StatusTooManyRequests
	case kindUpstream:
		return http.StatusBadGateway
	case kindUnavailable:
		return http.StatusServiceUnavailable
	case kindUnsupported:
		return http.StatusNotImplemented
	}
	return http.StatusBadRequest
}

// wsCode is the system.error code a refusal of kind k reaches a WebSocket
// client with. A conflict there is the other party not being ready.
func wsCode(k kind) string {
	switch k {
	case kindForbidden:
		return protocol.CodeForbidden
	case kindLoginRequired:
		return protocol.CodeUserLoginRequired
	case kindNotFound:
		return protocol.CodeNotFound
	case kindConflict, kindUnavailable:
		return protocol.CodeUnavailable
	case kindRateLimited:
		return protocol.CodeRateLimited
	case kindUnsupported:
		return protocol.CodeUnsupported
	}
	return protocol.CodeInvalid
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// genericCodes names the statuses that reach the handler without a refusal.
var genericCodes = map[int][2]string{
	http.StatusBadRequest:            {codeBadRequest, "the request is malformed; check the API documentation"},
	http.StatusUnauthorized:          {codeUnauthorized, "log in first and send the token as 'Authorization: Bearer TOKEN'"},
	http.StatusForbidden:             {codeForbidden, "you are not allowed to do this"},
	http.StatusNotFound:              {codeNotFound, "no such endpoint; see the API table in the README"},
	http.StatusMethodNotAllowed:      {codeMethodNotAllowed, "this endpoint does not take that method; see the API table in the README"},
	http.StatusRequestEntityTooLarge: {codeBodyTooLarge, "request body is over 64 KiB; send less"},
	http.StatusTooManyRequests:       {codeRateLimited, "too many requests; wait and try again"},
}

// httpError is echo's HTTPErrorHandler: every error leaves as errorBody, and
// a 5xx says only "internal error" while the details go to the log.
func (s *Server) httpError(err error, ec echo.Context) {
	if ec.Response().Committed {
		return
	}
	status, code, msg := http.StatusInternalServerError, codeInternal, "internal error; the server log has details"
	var he *echo.HTTPError
	var r *refusal
	switch {
	case errors.As(err, &r):
		status, code, msg = httpStatus(r.kind), r.code, r.msg
	case errors.As(err, &he):
		if g, ok := genericCodes[he.Code]; ok {
			status, code, msg = he.Code, g[0], g[1]
		} else if he.Code < 500 {
			status, code, msg = he.Code, codeBadRequest, fmt.Sprint(he.Message)
		}
		if he.Code == http.StatusNotFound || he.Code == http.StatusMethodNotAllowed {
			msg = fmt.Sprintf("%s %s: %s", ec.Request().Method, ec.Request().URL.Path, msg)
		}
	case errors.Is(err, store.ErrNotFound):
		status, code, msg = http.StatusNotFound, codeNotFound, "not found"
	}
	if status >= 500 {
		s.log.ErrorContext(ec.Request().Context(), "request failed",
			"method", ec.Request().Method, "path", ec.Path(), "err", err)
	}
	var body errorBody
	body.Error.Code, body.Error.Message = code, msg
	if ec.Request().Method == http.MethodHead {
		_ = ec.NoContent(status) // client may be gone
		return
	}
	_ = ec.JSON(status, body) // client may be gone
}
