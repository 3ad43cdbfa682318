package protocol_test

import (
	"strings"
	"testing"

	"mesh/protocol"
)

type validator interface{ Validate() error }

func TestValidate(t *testing.T) {
	t.Parallel()
	fp := "sha256:" + strings.Repeat("ab", 32)
	hash := strings.Repeat("0f", 32)
	for _, tc := range []struct {
		name    string
		in      validator
		wantMsg string // "" means valid; else a substring naming the field
	}{
		{"hello empty (browser)", protocol.Hello{}, ""},
		{"hello full", protocol.Hello{DeviceID: "d", QUICPort: 65535, Fingerprint: fp, Version: "1"}, ""},
		{"hello port negative", protocol.Hello{QUICPort: -1}, "quic_port must be 0-65535"},
		{"hello port too big", protocol.Hello{QUICPort: 65536}, "quic_port"},
		{"hello fingerprint no prefix", protocol.Hello{Fingerprint: strings.Repeat("ab", 32)}, "fingerprint"},
		{"hello fingerprint short", protocol.Hello{Fingerprint: "sha256:abcd"}, "fingerprint"},
		{"hello fingerprint upper", protocol.Hello{Fingerprint: "sha256:" + strings.Repeat("AB", 32)}, "fingerprint"},
		{"hello fingerprint not hex", protocol.Hello{Fingerprint: "sha256:" + strings.Repeat("zz", 32)}, "fingerprint"},

		{"room ref", protocol.RoomRef{RoomID: 1}, ""},
		{"room ref zero", protocol.RoomRef{}, "room_id must be a positive id"},
		{"room ref negative", protocol.RoomRef{RoomID: -3}, "room_id"},
		{"typing", protocol.Typing{RoomID: 2}, ""},
		{"typing zero", protocol.Typing{}, "room_id"},
		{"sync", protocol.RoomSync{RoomID: 2}, ""},
		{"sync negative since", protocol.RoomSync{RoomID: 2, Since: -1}, "since"},
		{"sync no room", protocol.RoomSync{Since: 4}, "room_id"},

		{"chat to room", protocol.ChatSend{RoomID: 1, Text: "hi", ClientMsgID: "c"}, ""},
		{"chat to user", protocol.ChatSend{ToUser: "bob", Text: "hi"}, ""},
		{"chat both", protocol.ChatSend{RoomID: 1, ToUser: "bob", Text: "hi"}, "room_id and to_user are exclusive"},
		{"chat neither", protocol.ChatSend{Text: "hi"}, "room_id or to_user is required"},
		{"chat blank user", protocol.ChatSend{ToUser: " ", Text: "hi"}, "room_id or to_user is required"},
		{"chat negative room", protocol.ChatSend{RoomID: -1, Text: "hi"}, "room_id must be positive"},
		{"chat empty text", protocol.ChatSend{RoomID: 1}, "text is empty"},
		{"chat blank text", protocol.ChatSend{RoomID: 1, Text: " \n\t"}, "text is empty"},
		{"chat 4000 runes", protocol.ChatSend{RoomID: 1, Text: strings.Repeat("é", protocol.MaxTextRunes)}, ""},
		{"chat 4001 runes", protocol.ChatSend{RoomID: 1, Text: strings.Repeat("é", protocol.MaxTextRunes+1)}, "text is 4001 characters"},
		{"chat client id 64", protocol.ChatSend{RoomID: 1, Text: "x", ClientMsgID: strings.Repeat("c", 64)}, ""},
		{"chat client id 65", protocol.ChatSend{RoomID: 1, Text: "x", ClientMsgID: strings.Repeat("c", 65)}, "client_msg_id is 65 bytes"},

		{"call", protocol.Call{CallID: "c", ToUser: "bob", Media: protocol.MediaAudio}, ""},
		{"call id 64", protocol.Call{CallID: strings.Repeat("c", 64), ToUser: "bob"}, ""},
		{"call no id", protocol.Call{ToUser: "bob"}, "call_id must be 1-64 bytes"},
		{"call id 65", protocol.Call{CallID: strings.Repeat("c", 65), ToUser: "bob"}, "call_id"},
		{"call no callee", protocol.Call{CallID: "c"}, "to_user is required"},
		{"call bad media", protocol.Call{CallID: "c", ToUser: "bob", Media: "fax"}, "media"},

		{"p2p", protocol.P2PSessionRequest{Kind: protocol.SessionFile, TargetDeviceID: "d"}, ""},
		{"p2p ttl 60", protocol.P2PSessionRequest{Kind: protocol.SessionFile, TargetDeviceID: "d", TTL: 60}, ""},
		{"p2p ttl 180", protocol.P2PSessionRequest{Kind: protocol.SessionFile, TargetDeviceID: "d", TTL: 180}, ""},
		{"p2p ttl 59", protocol.P2PSessionRequest{Kind: protocol.SessionFile, TargetDeviceID: "d", TTL: 59}, "ttl 59 is out of range: want 60 to 180 seconds"},
		{"p2p ttl 181", protocol.P2PSessionRequest{Kind: protocol.SessionFile, TargetDeviceID: "d", TTL: 181}, "ttl"},
		{"p2p ttl negative", protocol.P2PSessionRequest{Kind: protocol.SessionFile, TargetDeviceID: "d", TTL: -1}, "ttl"},
		{"p2p bad kind", protocol.P2PSessionRequest{Kind: "video", TargetDeviceID: "d"}, "kind"},
		{"p2p no target", protocol.P2PSessionRequest{Kind: protocol.SessionFile}, "target_device_id"},

		{"terminal open", protocol.TerminalOpen{ShareID: "s", Cols: 80, Rows: 24}, ""},
		{"terminal open no size", protocol.TerminalOpen{ShareID: "s"}, "cols and rows"},
		{"terminal open no id", protocol.TerminalOpen{Cols: 80, Rows: 24}, "share_id"},
		{"terminal resize huge", protocol.TerminalResize{ShareID: "s", Cols: 80, Rows: 1001}, "cols and rows must be 1-1000"},
		{"terminal resize", protocol.TerminalResize{ShareID: "s", Cols: 1, Rows: 1000}, ""},
		{"terminal ref long id", protocol.TerminalRef{ShareID: strings.Repeat("s", 65)}, "share_id"},
		{"terminal ref odd id", protocol.TerminalRef{ShareID: "a/b"}, "letters, digits"},
		{"terminal session", protocol.P2PSessionRequest{Kind: "terminal", ShareID: "sh-1"}, ""},
		{"start", protocol.TransferStart{FromDevice: "a", ToDevice: "b", Paths: []string{"/x"}}, ""},
		{"start same device", protocol.TransferStart{FromDevice: "a", ToDevice: "a", Paths: []string{"/x"}}, "must differ"},
		{"start same device, other case", protocol.TransferStart{FromDevice: "laptop", ToDevice: "LapTop", Paths: []string{"/x"}}, "must differ"},
		{"start relative", protocol.TransferStart{FromDevice: "a", ToDevice: "b", Paths: []string{"x"}}, "absolute"},
		{"start none", protocol.TransferStart{FromDevice: "a", ToDevice: "b"}, "1-64 paths"},
		{"terminal session no share", protocol.P2PSessionRequest{Kind: "terminal", TargetDeviceID: "d"}, "share_id"},
		{"file session with share", protocol.P2PSessionRequest{Kind: "file", TargetDeviceID: "d", ShareID: "x"}, "only for terminal"},
		{"terminal exit", protocol.TerminalExit{ShareID: "s", Code: 1}, ""},
		{"terminal watch", protocol.TerminalRef{ShareID: "s"}, ""},
		{"terminal watch no id", protocol.TerminalRef{}, "share_id"},
		{"terminal viewers no id", protocol.TerminalViewers{}, "share_id"},

		{"report", protocol.TransferReport{SessionID: "s", Outcome: protocol.OutcomeOK, BLAKE3: hash}, ""},
		{"report failed", protocol.TransferReport{SessionID: "s", Outcome: protocol.OutcomeFailed, Reason: "reset"}, ""},
		{"report no session", protocol.TransferReport{Outcome: protocol.OutcomeOK}, "session_id"},
		{"report bad outcome", protocol.TransferReport{SessionID: "s", Outcome: "success"}, "outcome"},
		{"report negative size", protocol.TransferReport{SessionID: "s", Outcome: protocol.OutcomeOK, Size: -1}, "size"},
		{"report negative duration", protocol.TransferReport{SessionID: "s", Outcome: protocol.OutcomeOK, DurationMS: -1}, "duration_ms"},
		{"report bad hash", protocol.TransferReport{SessionID: "s", Outcome: protocol.OutcomeOK, BLAKE3: "abc"}, "blake3"},
		{"report relayed", protocol.TransferReport{SessionID: "s", Outcome: protocol.OutcomeOK, Path: protocol.PathRelay}, ""},
		{"report through NAT", protocol.TransferReport{SessionID: "s", Outcome: protocol.OutcomeOK, Path: protocol.PathNAT}, ""},
		{"report direct", protocol.TransferReport{SessionID: "s", Outcome: protocol.OutcomeOK, Path: protocol.PathDirect}, ""},
		{"report bad path", protocol.TransferReport{SessionID: "s", Outcome: protocol.OutcomeOK, Path: "lan"}, "path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.in.Validate()
			if tc.wantMsg == "" {
				if err != nil {
					t.Errorf("%#v.Validate() = %v, want nil", tc.in, err)
				}
				return
			}
			checkErr(t, err, protocol.ErrMalformed, tc.wantMsg)
		})
	}
}

func TestValidFingerprint(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"sha256:" + strings.Repeat("0a", 32):       true,
		"sha256:" + strings.Repeat("0A", 32):       false,
		"sha256:" + strings.Repeat("0a", 31):       false,
		"sha1:" + strings.Repeat("0a", 32):         false,
		"sha256:" + strings.Repeat("0a", 32) + "0": false,
		"": false,
	} {
		if got := protocol.ValidFingerprint(s); got != want {
			t.Errorf("ValidFingerprint(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestClientPayloadsValidate checks every client-sent type's payload has a
// Validate method, so the server can check any of them the same way.
func TestClientPayloadsValidate(t *testing.T) {
	t.Parallel()
	for _, s := range samples() {
		if _, ok := s.payload.(validator); s.typ.ClientSent() && !ok {
			t.Errorf("%s payload %T has no Validate method", s.typ, s.payload)
		}
	}
}
