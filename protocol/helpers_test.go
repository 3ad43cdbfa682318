package protocol_test

import (
	"encoding/json"
	"testing"
	"time"

	"mesh/protocol"
)

// allTypes lists every Type constant and whether clients may send it.
func allTypes() map[protocol.Type]bool {
	return map[protocol.Type]bool{
		protocol.TypeSystemHello: true, protocol.TypeSystemWelcome: false, protocol.TypeSystemError: false,
		protocol.TypeRoomJoin: true, protocol.TypeRoomLeave: true, protocol.TypeRoomJoined: false,
		protocol.TypeRoomLeft: false, protocol.TypeRoomMemberJoined: false, protocol.TypeRoomMemberLeft: false,
		protocol.TypeRoomSync: true, protocol.TypeRoomSynced: false,
		protocol.TypeChatSend: true, protocol.TypeChatCreated: false, protocol.TypeChatTyping: true,
		protocol.TypePresenceUpdate:    false,
		protocol.TypeP2PSessionRequest: true, protocol.TypeP2PSessionCreated: false,
		protocol.TypeCallInvite: true, protocol.TypeCallAccept: true, protocol.TypeCallReject: true,
		protocol.TypeCallOffer: true, protocol.TypeCallAnswer: true, protocol.TypeCallICE: true, protocol.TypeCallHangup: true,
		protocol.TypeTerminalOpen:   true,
		protocol.TypeTerminalResize: true, protocol.TypeTerminalExit: true, protocol.TypeTerminalWatch: true,
		protocol.TypeTerminalUnwatch: true, protocol.TypeTerminalViewers: true,
		protocol.TypeTransferReport: true, protocol.TypeTransferStart: true, protocol.TypeDeviceRevoked: false,
	}
}

// serverOnlyInput are the types only a server ever receives; every other
// type is an event some client sees, and has a line in the golden file.
func serverOnlyInput(t protocol.Type) bool {
	switch t {
	case protocol.TypeSystemHello, protocol.TypeRoomJoin, protocol.TypeRoomLeave, protocol.TypeRoomSync,
		protocol.TypeChatSend, protocol.TypeP2PSessionRequest, protocol.TypeTransferReport,
		protocol.TypeTerminalWatch, protocol.TypeTerminalUnwatch:
		return true
	}
	return false
}

type sample struct {
	typ     protocol.Type
	payload any // a struct value of the type's payload
}

// fixed is the timestamp of every golden frame.
var fixed = time.Date(2026, 1, 4, 23, 0, 0, 123456789, time.UTC)

// samples returns one filled-in payload for every type, in the order of the
// golden file.
func samples() []sample {
	msg := protocol.Message{ID: 42, RoomID: 7, Seq: 3, From: "alice", Text: "hi <b>bob</b> & co",
		CreatedAt: fixed.Add(-time.Second), ClientMsgID: "c-1"}
	room := protocol.Room{ID: 7, Name: "general", Visibility: "public", Kind: protocol.RoomKindRoom,
		CreatedAt: time.Date(2025, 12, 1, 8, 0, 0, 0, time.UTC), LastSeq: 3}
	fp := "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	return []sample{
		{protocol.TypeSystemHello, protocol.Hello{DeviceID: "laptop", QUICPort: 5000, Fingerprint: fp, Version: "1.0.0"}},
		{protocol.TypeSystemWelcome, protocol.Welcome{User: protocol.UserRef{ID: 1, Username: "alice"},
			DeviceID: "laptop", ServerVersion: "1.0.0", RefID: "h-1"}},
		{protocol.TypeSystemError, protocol.Error{Code: protocol.CodeForbidden,
			Message: "you are not a member of room 7; join it first", RefID: "r-9"}},
		{protocol.TypeRoomJoin, protocol.RoomRef{RoomID: 7}},
		{protocol.TypeRoomLeave, protocol.RoomRef{RoomID: 7}},
		{protocol.TypeRoomJoined, protocol.RoomJoined{Room: room,
			Members: []protocol.Member{{Username: "alice", Online: true}, {Username: "bob"}}, RefID: "j-1"}},
		{protocol.TypeRoomLeft, protocol.RoomLeft{RoomID: 7, RefID: "l-1"}},
		{protocol.TypeRoomMemberJoined, protocol.MemberEvent{RoomID: 7, Username: "bob"}},
		{protocol.TypeRoomMemberLeft, protocol.MemberEvent{RoomID: 7, Username: "bob"}},
		{protocol.TypeRoomSync, protocol.RoomSync{RoomID: 7, Since: 2}},
		{protocol.TypeRoomSynced, protocol.RoomSynced{RoomID: 7, Messages: []protocol.Message{msg}, HasMore: true, RefID: "s-1"}},
		{protocol.TypeChatSend, protocol.ChatSend{RoomID: 7, Text: "hi <b>bob</b> & co", ClientMsgID: "c-1"}},
		{protocol.TypeChatCreated, protocol.ChatCreated{Message: msg, RefID: "m-1"}},
		{protocol.TypeChatTyping, protocol.Typing{RoomID: 7, Username: "alice"}},
		{protocol.TypePresenceUpdate, protocol.Presence{User: "bob", Online: true}},
		{protocol.TypeP2PSessionRequest, protocol.P2PSessionRequest{Kind: protocol.SessionFile,
			TargetDeviceID: "desktop", InitiatorDeviceID: "laptop", TTL: 120}},
		{protocol.TypeP2PSessionCreated, protocol.P2PSession{SessionID: "s-123", SessionToken: "tok",
			ExpiresAt: fixed.Add(2 * time.Minute), Kind: protocol.SessionFile,
			InitiatorDeviceID: "laptop", TargetDeviceID: "desktop", Endpoints: protocol.Endpoints{
				Initiator: protocol.Endpoint{IP: "192.0.2.1", Port: 5000, Fingerprint: fp},
				Target:    protocol.Endpoint{IP: "192.0.2.2", Port: 5001, Fingerprint: fp}}}},
		{protocol.TypeCallInvite, protocol.Call{CallID: "call-1", ToUser: "bob", Media: protocol.MediaVideo}},
		{protocol.TypeCallAccept, protocol.Call{CallID: "call-1", ToUser: "alice"}},
		{protocol.TypeCallReject, protocol.Call{CallID: "call-1", ToUser: "alice", Reason: "busy"}},
		{protocol.TypeCallOffer, protocol.Call{CallID: "call-1", ToUser: "bob", SDP: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}},
		{protocol.TypeCallAnswer, protocol.Call{CallID: "call-1", ToUser: "alice", SDP: "v=0\r\n"}},
		{protocol.TypeCallICE, protocol.Call{CallID: "call-1", ToUser: "bob",
			Candidate: json.RawMessage(`{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host","sdpMid":"0","sdpMLineIndex":0}`)}},
		{protocol.TypeCallHangup, protocol.Call{CallID: "call-1", ToUser: "bob", Reason: "hung up"}},
		{protocol.TypeTerminalOpen, protocol.TerminalOpen{ShareID: "sh-1", Command: "bash", Cols: 80, Rows: 24,
			AllowInput: true, Allow: []string{"bob"}}},
		{protocol.TypeTerminalResize, protocol.TerminalResize{ShareID: "sh-1", Cols: 120, Rows: 40}},
		{protocol.TypeTerminalExit, protocol.TerminalExit{ShareID: "sh-1", Code: 3}},
		{protocol.TypeTerminalWatch, protocol.TerminalRef{ShareID: "sh-1"}},
		{protocol.TypeTerminalUnwatch, protocol.TerminalRef{ShareID: "sh-1"}},
		{protocol.TypeTerminalViewers, protocol.TerminalViewers{ShareID: "sh-1", Viewers: []string{"alice", "bob"}}},
		{protocol.TypeTransferReport, protocol.TransferReport{SessionID: "s-123", FromDevice: "laptop", ToDevice: "desktop",
			Name: "photo.jpg", Size: 1 << 20, BLAKE3: fp[len("sha256:"):], DurationMS: 1500,
			Outcome: protocol.OutcomeOK, Direct: true}},
		{protocol.TypeTransferStart, protocol.TransferStart{FromDevice: "laptop", ToDevice: "desktop", Paths: []string{"/home/alice/photo.jpg"}}},
		{protocol.TypeDeviceRevoked, protocol.DeviceRevoked{DeviceID: "old-phone"}},
	}
}

func mustEncode(t testing.TB, e protocol.Envelope) []byte {
	t.Helper()
	b, err := protocol.Encode(e)
	if err != nil {
		t.Fatalf("Encode(%+v): %v", e, err)
	}
	return b
}

func mustDecode(t testing.TB, b []byte) protocol.Envelope {
	t.Helper()
	e, err := protocol.Decode(b)
	if err != nil {
		t.Fatalf("Decode(%q): %v", b, err)
	}
	return e
}
