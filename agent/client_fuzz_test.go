package agent

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"mesh/protocol"
)

// FuzzDecodeAnswer feeds the agent's decoder of server answers arbitrary
// statuses and bodies, as a broken proxy or a hostile server could send.
// A non-2xx is always an *APIError with a code and a short, printable,
// one-line message; a 401 to a device token always says the device was
// revoked; a 2xx either decodes or fails without an APIError.
func FuzzDecodeAnswer(f *testing.F) {
	f.Add(200, []byte(`{"session_id":"s1","session_token":"t"}`), false)
	f.Add(201, []byte(`not json`), false)
	f.Add(401, []byte(`{"error":{"code":"invalid_token","message":"token refused"}}`), true)
	f.Add(401, []byte(`{"error":{"code":"","message":"x"}}`), false)
	f.Add(502, []byte("<html>"+strings.Repeat("Bad Gateway ", 500)+"</html>"), false)
	f.Add(404, []byte("\x1b[31mred\x00\xff\xfe\n\r\t"), false)
	f.Add(409, []byte(`{"error":{"code":"device_offline","message":"`+strings.Repeat("é", 300)+`"}}`), false)
	f.Fuzz(func(t *testing.T, status int, body []byte, device bool) {
		var out protocol.P2PSession
		err := decodeAnswer(status, body, device, &out)
		var ae *APIError
		isAPI := errors.As(err, &ae)
		if status/100 == 2 {
			if isAPI {
				t.Fatalf("decodeAnswer(%d, %q) = APIError %v for a 2xx", status, body, err)
			}
			if err != nil && len(err.Error()) > 2*maxErrorText+200 {
				t.Fatalf("decodeAnswer(%d, %q): a %d-byte error", status, body, len(err.Error()))
			}
			return
		}
		if !isAPI {
			t.Fatalf("decodeAnswer(%d, %q) = %v, want an *APIError", status, body, err)
		}
		if ae.Status != status || ae.Code == "" {
			t.Fatalf("decodeAnswer(%d, %q) = %+v: want the status and a code", status, body, ae)
		}
		for _, s := range []string{ae.Code, ae.Message} {
			if len(s) > maxErrorText || !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
				t.Fatalf("decodeAnswer(%d, %q): %q is not one short printable line", status, body, s)
			}
		}
		if revoked := errors.Is(err, ErrRevoked); revoked != (status == 401 && device) {
			t.Fatalf("decodeAnswer(%d, device %t) revoked = %t", status, device, revoked)
		}
	})
}
