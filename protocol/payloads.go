package protocol

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on client-sent payloads, enforced by their Validate methods.
const (
	MaxTextRunes   = 4000 // a chat message's text, in runes
	MaxClientMsgID = 64   // a chat message's client_msg_id, in bytes
)

// Version is mesh's release, one for the whole binary, so server and agent
// cannot disagree: the server reports it in [Welcome].ServerVersion and
// `mesh --version`, an agent sends it as [Hello].Version.
const Version = "0.1.0"

// Hello is the payload of system.hello: who the client is. A browser sends
// it empty; an agent sends its device and the QUIC port and certificate
// fingerprint peers should use to reach it.
type Hello struct {
	DeviceID    string `json:"device_id,omitempty"`
	QUICPort    int    `json:"quic_port,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"` // "sha256:" + 64 lowercase hex digits
	Version     string `json:"version,omitempty"`     // the client's software version
	// Candidates are where the agent's QUIC socket may be reached; an
	// agent sends system.hello again when they change.
	Candidates []Candidate `json:"candidates,omitempty"`
}

// Validate checks quic_port is 0–65535, fingerprint, if present, is
// "sha256:" and 64 lowercase hex digits, and the candidates. Its errors
// wrap [ErrMalformed].
func (h Hello) Validate() error {
	if h.QUICPort < 0 || h.QUICPort > 65535 {
		return invalid("quic_port", "must be 0-65535, got %d", h.QUICPort)
	}
	if h.Fingerprint != "" && !ValidFingerprint(h.Fingerprint) {
		return invalid("fingerprint", `must be "sha256:" and 64 lowercase hex digits, got %q`, h.Fingerprint)
	}
	return ValidateCandidates(h.Candidates)
}

// ValidFingerprint reports whether s is a certificate fingerprint as mesh
// writes them: "sha256:" and 64 lowercase hex digits.
func ValidFingerprint(s string) bool {
	hex, ok := strings.CutPrefix(s, "sha256:")
	return ok && isLowerHex(hex, 64)
}

// UserRef names a user: {"id","username"}.
type UserRef struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
}

// Welcome is the payload of system.welcome, the answer to system.hello.
type Welcome struct {
	User          UserRef `json:"user"`
	DeviceID      string  `json:"device_id"` // "" for a browser
	ServerVersion string  `json:"server_version"`
	RefID         string  `json:"ref_id,omitempty"` // the hello's id
}

// Error is the payload of system.error. Code is one of the Code constants;
// Message is for a human and says what to do; RefID is the id of the frame
// that failed, if it had one. The connection stays open unless Code is
// [CodeFrameTooLarge] or [CodeRateLimited].
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	RefID   string `json:"ref_id,omitempty"`
}

// RoomRef is the payload of room.join and room.leave.
type RoomRef struct {
	RoomID int64 `json:"room_id"`
}

// Validate checks room_id is positive. Its errors wrap [ErrMalformed].
func (r RoomRef) Validate() error { return positive("room_id", r.RoomID) }

// Room kinds, the values of [Room].Kind.
const (
	RoomKindRoom   = "room"   // a named room, public or private
	RoomKindDirect = "direct" // the private two-member room of a direct conversation
)

// Room describes a room in room.joined. LastSeq is the sequence number of its
// newest message (0 when empty), the since of a later [RoomSync].
type Room struct {
	ID         int64     `json:"id"`
	Name       string    `json:"name"`
	Visibility string    `json:"visibility"` // "public" or "private"
	Kind       string    `json:"kind"`       // RoomKindRoom or RoomKindDirect
	CreatedAt  time.Time `json:"created_at"`
	LastSeq    int64     `json:"last_seq"`
}

// Member is one member of a room and whether any of their sessions is online.
type Member struct {
	Username string `json:"username"`
	Online   bool   `json:"online"`
}

// RoomJoined is the payload of room.joined, the answer to room.join.
type RoomJoined struct {
	Room    Room     `json:"room"`
	Members []Member `json:"members"`
	RefID   string   `json:"ref_id,omitempty"`
}

// RoomLeft is the payload of room.left, sent to the leaver's sessions.
type RoomLeft struct {
	RoomID int64  `json:"room_id"`
	RefID  string `json:"ref_id,omitempty"`
}

// MemberEvent is the payload of room.member.joined and room.member.left,
// sent to the room's members.
type MemberEvent struct {
	RoomID   int64  `json:"room_id"`
	Username string `json:"username"`
}

// RoomSync is the payload of room.sync: send me the room's messages after
// sequence number Since (0 for all), oldest first.
type RoomSync struct {
	RoomID int64 `json:"room_id"`
	Since  int64 `json:"since"`
}

// Validate checks room_id is positive and since is not negative. Its errors
// wrap [ErrMalformed].
func (r RoomSync) Validate() error {
	if r.Since < 0 {
		return invalid("since", "must be a sequence number, 0 or more, got %d", r.Since)
	}
	return positive("room_id", r.RoomID)
}

// RoomSynced is the payload of room.synced, the answer to room.sync:
// messages oldest first; HasMore says to sync again from the last seq.
type RoomSynced struct {
	RoomID   int64     `json:"room_id"`
	Messages []Message `json:"messages"`
	HasMore  bool      `json:"has_more"`
	RefID    string    `json:"ref_id,omitempty"`
}

// ChatSend is the payload of chat.message.send: Text to room RoomID, or as a
// direct message to ToUser. ClientMsgID, chosen by the client, comes back in
// the stored [Message] so it can match its optimistic copy.
type ChatSend struct {
	RoomID      int64  `json:"room_id,omitempty"`
	ToUser      string `json:"to_user,omitempty"`
	Text        string `json:"text"`
	ClientMsgID string `json:"client_msg_id"`
}

// Validate checks exactly one of room_id and to_user is set, text has 1 to
// [MaxTextRunes] runes, is not blank and holds no control character but
// newline and tab and no bidi control ([IsBidiControl]; a [*CharError]), and
// client_msg_id is at most [MaxClientMsgID] bytes. Its errors wrap
// [ErrMalformed].
func (c ChatSend) Validate() error {
	switch {
	case c.RoomID < 0:
		return invalid("room_id", "must be positive, got %d", c.RoomID)
	case c.RoomID != 0 && c.ToUser != "":
		return invalid("room_id", "and to_user are exclusive; send to a room or to a user, not both")
	case c.RoomID == 0 && strings.TrimSpace(c.ToUser) == "":
		return invalid("room_id", "or to_user is required")
	case strings.TrimSpace(c.Text) == "":
		return invalid("text", "is empty")
	case utf8.RuneCountInString(c.Text) > MaxTextRunes:
		return invalid("text", "is %d characters; the limit is %d", utf8.RuneCountInString(c.Text), MaxTextRunes)
	case len(c.ClientMsgID) > MaxClientMsgID:
		return invalid("client_msg_id", "is %d bytes; the limit is %d", len(c.ClientMsgID), MaxClientMsgID)
	}
	return checkText("text", c.Text)
}

// Message is a stored chat message. Seq numbers a room's messages 1, 2, 3…
type Message struct {
	ID          int64     `json:"id"`
	RoomID      int64     `json:"room_id"`
	Seq         int64     `json:"seq"`
	From        string    `json:"from"` // the sender's username
	Text        string    `json:"text"`
	CreatedAt   time.Time `json:"created_at"`
	ClientMsgID string    `json:"client_msg_id"`
}

// ChatCreated is the payload of chat.message.created, sent to every session
// of every member; the sender's session gets RefID set to its send's id.
type ChatCreated struct {
	Message Message `json:"message"`
	RefID   string  `json:"ref_id,omitempty"`
}

// Typing is the payload of chat.typing. A client sends only RoomID; the
// server adds Username when it relays it to the room.
type Typing struct {
	RoomID   int64  `json:"room_id"`
	Username string `json:"username,omitempty"`
}

// Validate checks room_id is positive. Its errors wrap [ErrMalformed].
func (t Typing) Validate() error { return positive("room_id", t.RoomID) }

// Presence is the payload of presence.update: User came online (first
// session) or went offline (last session closed).
type Presence struct {
	User   string `json:"user"`
	Online bool   `json:"online"`
}

// invalid returns an [ErrMalformed] naming field: "malformed frame: text is empty".
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s", ErrMalformed, field, fmt.Sprintf(format, args...))
}

func positive(field string, n int64) error {
	if n <= 0 {
		return invalid(field, "must be a positive id, got %d", n)
	}
	return nil
}

// isLowerHex reports whether s is exactly n lowercase hex digits.
func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
