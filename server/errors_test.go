package server

import (
	"net/http"
	"testing"

	"mesh/protocol"
)

// TestRefusalKinds pins what each kind of refusal becomes on either
// transport: clients of both rely on these, and the handlers name only kinds.
func TestRefusalKinds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		k      kind
		status int
		ws     string
	}{
		{kindInvalid, http.StatusBadRequest, protocol.CodeInvalid},
		{kindUnauthorized, http.StatusUnauthorized, protocol.CodeInvalid},
		{kindForbidden, http.StatusForbidden, protocol.CodeForbidden},
		{kindLoginRequired, http.StatusForbidden, protocol.CodeUserLoginRequired},
		{kindNotFound, http.StatusNotFound, protocol.CodeNotFound},
		{kindConflict, http.StatusConflict, protocol.CodeUnavailable},
		{kindGone, http.StatusGone, protocol.CodeInvalid},
		{kindTooLarge, http.StatusRequestEntityTooLarge, protocol.CodeInvalid},
		{kindRateLimited, http.StatusTooManyRequests, protocol.CodeRateLimited},
		{kindUpstream, http.StatusBadGateway, protocol.CodeInvalid},
		{kindUnavailable, http.StatusServiceUnavailable, protocol.CodeUnavailable},
		{kindUnsupported, http.StatusNotImplemented, protocol.CodeUnsupported},
	} {
		if got := httpStatus(tc.k); got != tc.status {
			t.Errorf("httpStatus(%d) = %d, want %d", tc.k, got, tc.status)
		}
		if got := wsCode(tc.k); got != tc.ws {
			t.Errorf("wsCode(%d) = %q, want %q", tc.k, got, tc.ws)
		}
	}
	r := refuse(kindNotFound, codeDeviceNotFound, "no device %q", "x")
	if r.Error() != `no device "x"` || r.code != "device_not_found" {
		t.Errorf("refuse = %q %q, want the message and the code as given", r.code, r.Error())
	}
}
