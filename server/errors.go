package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"mesh/store"
)

// apiError is an answer for the client: status, a snake_case code and a
// message that says what to do. Handlers return it; httpError writes it.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// genericCodes names the statuses that reach the handler without an apiError.
var genericCodes = map[int][2]string{
	http.StatusBadRequest:            {"bad_request", "the request is malformed; check the API documentation"},
	http.StatusUnauthorized:          {"unauthorized", "log in first and send the token as 'Authorization: Bearer TOKEN'"},
	http.StatusForbidden:             {"forbidden", "you are not allowed to do this"},
	http.StatusNotFound:              {"not_found", "no such endpoint; see the API table in the README"},
	http.StatusMethodNotAllowed:      {"method_not_allowed", "this endpoint does not take that method; see the API table in the README"},
	http.StatusRequestEntityTooLarge: {"body_too_large", "request body is over 64 KiB; send less"},
	http.StatusTooManyRequests:       {"rate_limited", "too many requests; wait and try again"},
}

// httpError is echo's HTTPErrorHandler: every error leaves as errorBody, and
// a 5xx says only "internal error" while the details go to the log.
func (s *Server) httpError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ae := &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error; the server log has details"}
	var he *echo.HTTPError
	var mine *apiError
	switch {
	case errors.As(err, &mine):
		ae = mine
	case errors.As(err, &he):
		if g, ok := genericCodes[he.Code]; ok {
			ae = &apiError{Status: he.Code, Code: g[0], Message: g[1]}
		} else if he.Code < 500 {
			ae = &apiError{Status: he.Code, Code: "bad_request", Message: fmt.Sprint(he.Message)}
		}
		if he.Code == http.StatusNotFound || he.Code == http.StatusMethodNotAllowed {
			ae.Message = fmt.Sprintf("%s %s: %s", c.Request().Method, c.Request().URL.Path, ae.Message)
		}
	case errors.Is(err, store.ErrNotFound):
		ae = errorf(http.StatusNotFound, "not_found", "not found")
	}
	if ae.Status >= 500 {
		s.log.ErrorContext(c.Request().Context(), "request failed",
			"method", c.Request().Method, "path", c.Path(), "err", err)
	}
	var body errorBody
	body.Error.Code, body.Error.Message = ae.Code, ae.Message
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(ae.Status) // client may be gone
		return
	}
	_ = c.JSON(ae.Status, body) // client may be gone
}
