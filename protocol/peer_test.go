package protocol_test

import (
	"errors"
	"strings"
	"testing"

	"mesh/protocol"
)

// TestSessionRequestWording: a refused session request says what was wrong
// in the words of the request (it is also the HTTP body's error), not
// "malformed frame", and still wraps ErrMalformed for the WebSocket's code.
func TestSessionRequestWording(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   protocol.P2PSessionRequest
		want string
	}{
		{protocol.P2PSessionRequest{Kind: "file", TargetDeviceID: "d", TTL: 30},
			"ttl 30 is out of range: want 60 to 180 seconds (default 120)"},
		{protocol.P2PSessionRequest{Kind: "file", TargetDeviceID: "d", TTL: 181},
			"ttl 181 is out of range: want 60 to 180 seconds (default 120)"},
		{protocol.P2PSessionRequest{Kind: "video", TargetDeviceID: "d"},
			`kind "video" is not a session kind: want "file" or "terminal"`},
		{protocol.P2PSessionRequest{TargetDeviceID: "d"},
			`kind is required: "file" or "terminal"`},
		{protocol.P2PSessionRequest{Kind: "file"},
			"target_device_id is required for a file session: name the device to send to"},
		{protocol.P2PSessionRequest{Kind: "file", TargetDeviceID: "d", ShareID: "x"},
			"share_id is only for terminal sessions: leave it out of a file session"},
		{protocol.P2PSessionRequest{Kind: "terminal"},
			"share_id is required for a terminal session: name the share to join"},
		{protocol.P2PSessionRequest{Kind: "terminal", ShareID: "a/b"},
			`share_id "a/b" may hold only letters, digits, '-' and '_'`},
		{protocol.P2PSessionRequest{Kind: "terminal", ShareID: strings.Repeat("s", 65)},
			"share_id is 65 bytes: the limit is 64"},
	} {
		err := tc.in.Validate()
		if err == nil || err.Error() != tc.want {
			t.Errorf("%+v.Validate() = %v, want %q", tc.in, err, tc.want)
		}
		if !errors.Is(err, protocol.ErrMalformed) {
			t.Errorf("%+v.Validate() = %v, want it to wrap ErrMalformed", tc.in, err)
		}
	}
}
