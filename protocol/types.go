package protocol

// Type names an event, "area.noun.verb" in lowercase, e.g. "chat.message.send".
// The set is closed: [Decode] refuses any Type for which [Type.Known] is false.
type Type string

// The event types of the WebSocket protocol (GET /ws). The comment on each
// says which way it travels and which payload type it carries.
const (
	TypeSystemHello   Type = "system.hello"   // client → server, [Hello]
	TypeSystemWelcome Type = "system.welcome" // server → client, [Welcome]
	TypeSystemError   Type = "system.error"   // server → client, [Error]

	TypeRoomJoin         Type = "room.join"          // client → server, [RoomRef]
	TypeRoomLeave        Type = "room.leave"         // client → server, [RoomRef]
	TypeRoomJoined       Type = "room.joined"        // server → client, [RoomJoined]
	TypeRoomLeft         Type = "room.left"          // server → client, [RoomLeft]
	TypeRoomMemberJoined Type = "room.member.joined" // server → room, [MemberEvent]
	TypeRoomMemberLeft   Type = "room.member.left"   // server → room, [MemberEvent]
	TypeRoomSync         Type = "room.sync"          // client → server, [RoomSync]: send me what I missed
	TypeRoomSynced       Type = "room.synced"        // server → client, [RoomSynced]: the answer to room.sync

	TypeChatSend    Type = "chat.message.send"    // client → server, [ChatSend]
	TypeChatCreated Type = "chat.message.created" // server → room, [ChatCreated]
	TypeChatTyping  Type = "chat.typing"          // both ways, [Typing]

	TypePresenceUpdate Type = "presence.update" // server → client, [Presence]

	TypeP2PSessionRequest Type = "p2p.session.request" // client → server, [P2PSessionRequest]
	TypeP2PSessionCreated Type = "p2p.session.created" // server → both devices, [P2PSession]

	TypeCallInvite Type = "call.invite" // relayed between two users, [Call]
	TypeCallAccept Type = "call.accept" // relayed, [Call]
	TypeCallReject Type = "call.reject" // relayed, [Call] with Reason
	TypeCallOffer  Type = "call.offer"  // relayed, [Call] with SDP
	TypeCallAnswer Type = "call.answer" // relayed, [Call] with SDP
	TypeCallICE    Type = "call.ice"    // relayed, [Call] with Candidate
	TypeCallHangup Type = "call.hangup" // relayed, [Call]

	TypeTerminalOpen    Type = "terminal.open"    // sharer → server → viewers, [TerminalOpen]
	TypeTerminalOutput  Type = "terminal.output"  // sharer → server → viewers, a binary [TermFrame], never JSON
	TypeTerminalInput   Type = "terminal.input"   // viewer → server → sharer, a binary [TermFrame], never JSON
	TypeTerminalResize  Type = "terminal.resize"  // sharer → server → viewers, [TerminalResize]
	TypeTerminalExit    Type = "terminal.exit"    // sharer → server → viewers, [TerminalExit]
	TypeTerminalWatch   Type = "terminal.watch"   // viewer → server, [TerminalRef]
	TypeTerminalUnwatch Type = "terminal.unwatch" // viewer → server, [TerminalRef]
	TypeTerminalViewers Type = "terminal.viewers" // both ways, [TerminalViewers]

	TypeTransferReport Type = "transfer.report" // agent → server, [TransferReport]
	TypeTransferStart  Type = "transfer.start"  // browser → server → the sending agent, [TransferStart]
	TypeDeviceRevoked  Type = "device.revoked"  // server → the revoked device's owner, [DeviceRevoked]
)

// Known reports whether t is one of the Type constants of this package.
func (t Type) Known() bool {
	if t.ClientSent() {
		return true
	}
	switch t {
	case TypeSystemWelcome, TypeSystemError,
		TypeRoomJoined, TypeRoomLeft, TypeRoomMemberJoined, TypeRoomMemberLeft, TypeRoomSynced,
		TypeChatCreated, TypePresenceUpdate, TypeP2PSessionCreated, TypeDeviceRevoked:
		return true
	}
	return false
}

// ClientSent reports whether a client may send t to the server. A server
// answers any other type from a client with system.error; every JSON
// terminal.* type counts as client-sent because the sharing agent is a
// client too. terminal.output and terminal.input are never JSON (see
// [TermFrame]), so neither is Known.
func (t Type) ClientSent() bool {
	switch t {
	case TypeSystemHello,
		TypeRoomJoin, TypeRoomLeave, TypeRoomSync,
		TypeChatSend, TypeChatTyping,
		TypeP2PSessionRequest,
		TypeCallInvite, TypeCallAccept, TypeCallReject, TypeCallOffer, TypeCallAnswer, TypeCallICE, TypeCallHangup,
		TypeTerminalOpen, TypeTerminalResize, TypeTerminalExit,
		TypeTerminalWatch, TypeTerminalUnwatch, TypeTerminalViewers,
		TypeTransferReport, TypeTransferStart:
		return true
	}
	return false
}
