package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"
)

// maxBody caps every request body: the API promises 413 past 64 KiB.
const maxBody = 64 << 10

// bind decodes the body as one JSON object whatever the Content-Type, and
// turns every way it can be wrong into a 400 or 413 that names the problem.
func bind(c echo.Context, v any) error {
	body := http.MaxBytesReader(c.Response(), c.Request().Body, maxBody)
	dec := json.NewDecoder(body)
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data")
		}
	}
	if err == nil {
		return nil
	}
	var maxErr *http.MaxBytesError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &maxErr):
		return refuse(kindTooLarge, codeBodyTooLarge, "request body is over %d KiB; send less", maxBody>>10)
	case errors.Is(err, io.EOF):
		return refuse(kindInvalid, codeInvalidJSON, "request body is empty; send a JSON object")
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return refuse(kindInvalid, codeInvalidJSON, "request body is not valid JSON (%v); send a JSON object", err)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return refuse(kindInvalid, codeInvalidJSON, "request body must be a JSON object, not %s", typ.Value)
		}
		return refuse(kindInvalid, codeInvalidField, "field %q must be a %s, not %s", typ.Field, typ.Type, typ.Value)
	}
	return refuse(kindInvalid, codeInvalidJSON, "request body is not a single JSON object: %v", err)
}

func missing(field string) error {
	return refuse(kindInvalid, codeMissingField, "field %q is required", field)
}
