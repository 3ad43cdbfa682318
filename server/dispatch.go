package server

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"mesh/protocol"
	"mesh/store"
)

// dispatch runs one client request; a refusal becomes system.error with the
// request's id as ref_id, anything else is logged and reported as internal.
func (s *Server) dispatch(c *conn, env protocol.Envelope) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	switch {
	case c.device.ID != "" && !agentRequest(env.Type):
		err = refuse(kindLoginRequired, codeUserLoginRequired,
			"a device token may only do an agent's work, not %s; log in as the user for it", env.Type)
	default:
		err = s.handle(ctx, c, env)
	}
	var r *refusal
	var ce *protocol.CharError
	switch {
	case err == nil:
	case errors.As(err, &r):
		c.replyRefusal(env.ID, r)
	case errors.As(err, &ce):
		c.reply(env.ID, protocol.CodeInvalidText, err.Error())
	case errors.Is(err, protocol.ErrMalformed):
		c.reply(env.ID, protocol.CodeInvalid, err.Error())
	default:
		s.log.Error("websocket request failed", "type", env.Type, "user", c.user.Username, "err", err)
		c.reply(env.ID, protocol.CodeInternal, "internal error; the server log has details")
	}
}

// replyRefusal sends r to this session as system.error; its kind gives the
// code (wsCode), as it gives the status on the HTTP side.
func (c *conn) replyRefusal(refID string, r *refusal) {
	c.reply(refID, wsCode(r.kind), r.msg)
}

// handle runs one request by its type.
func (s *Server) handle(ctx context.Context, c *conn, env protocol.Envelope) error {
	switch env.Type {
	case protocol.TypeSystemHello:
		return s.onHello(c, env)
	case protocol.TypeRoomJoin:
		return s.onRoomJoin(ctx, c, env)
	case protocol.TypeRoomLeave:
		return s.onRoomLeave(ctx, c, env)
	case protocol.TypeRoomSync:
		return s.onRoomSync(ctx, c, env)
	case protocol.TypeChatSend:
		return s.onChatSend(ctx, c, env)
	case protocol.TypeChatTyping:
		return s.onTyping(ctx, c, env)
	case protocol.TypeCallInvite, protocol.TypeCallAccept, protocol.TypeCallReject, protocol.TypeCallOffer,
		protocol.TypeCallAnswer, protocol.TypeCallICE, protocol.TypeCallHangup:
		return s.onCall(ctx, c, env)
	case protocol.TypeP2PSessionRequest:
		return s.onSessionRequest(ctx, c, env)
	case protocol.TypeTransferReport:
		return s.onTransferReport(ctx, c, env)
	case protocol.TypeTransferStart:
		return s.onTransferStart(ctx, c, env)
	case protocol.TypeTerminalOpen:
		return s.onTerminalOpen(c, env)
	case protocol.TypeTerminalWatch:
		return s.onTerminalWatch(c, env)
	case protocol.TypeTerminalUnwatch:
		return s.onTerminalUnwatch(c, env)
	case protocol.TypeTerminalResize:
		return s.onTerminalResize(c, env)
	case protocol.TypeTerminalExit:
		return s.onTerminalExit(c, env)
	case protocol.TypeTerminalViewers:
		return refuse(kindInvalid, codeInvalidRequest, "%s is sent by the server, not by clients", env.Type)
	default:
		if env.Type.ClientSent() {
			return refuse(kindUnsupported, codeUnsupported, "%s is not available on this server yet", env.Type)
		}
		return refuse(kindInvalid, codeInvalidRequest, "%s is sent by the server, not by clients", env.Type)
	}
}

// agentRequest says whether a device token's session may send t: what an
// agent does (its hello, peer sessions, transfer reports, terminal
// shares). Chat, rooms and calls need a user's login.
func agentRequest(t protocol.Type) bool {
	return strings.HasPrefix(string(t), "terminal.") || slices.Contains([]protocol.Type{
		protocol.TypeSystemHello, protocol.TypeP2PSessionRequest, protocol.TypeTransferReport}, t)
}

func (s *Server) onHello(c *conn, env protocol.Envelope) error {
	var h protocol.Hello
	if err := env.Unmarshal(&h); err != nil {
		return err
	}
	if err := h.Validate(); err != nil {
		return err
	}
	if c.device.ID != "" && h.DeviceID != "" && store.DeviceKey(h.DeviceID) != store.DeviceKey(c.device.ID) {
		return refuse(kindInvalid, codeInvalidRequest, "this token belongs to device %q, not %q", c.device.ID, h.DeviceID)
	}
	c.mu.Lock()
	if c.device.ID == "" {
		c.deviceID = h.DeviceID
	}
	c.quicPort, c.fingerprint = h.QUICPort, h.Fingerprint
	deviceID := c.deviceID
	c.mu.Unlock()
	if c.device.ID != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.store.TouchDevice(ctx, c.device.ID, h.Fingerprint); err != nil {
			return err
		}
	}
	c.sendTo(protocol.TypeSystemWelcome, protocol.Welcome{
		User:          protocol.UserRef{ID: c.user.ID, Username: c.user.Username},
		DeviceID:      deviceID,
		ServerVersion: Version,
		RefID:         env.ID,
	})
	return nil
}

// roomOf loads a room the user may act in, refusing non-members with forbidden.
func (s *Server) roomOf(ctx context.Context, c *conn, roomID int64) (store.Room, error) {
	room, err := s.store.Room(ctx, roomID)
	if errors.Is(err, store.ErrNotFound) {
		return room, refuse(kindNotFound, codeNotFound, noRoom, roomID)
	} else if err != nil {
		return room, err
	}
	if ok, err := s.hub.isMember(ctx, roomID, c.user.ID); err != nil {
		return room, err
	} else if !ok && room.Visibility != store.VisibilityPublic {
		return room, refuse(kindNotFound, codeNotFound, noRoom, roomID) // as if missing: see pathRoom
	} else if !ok {
		return room, refuse(kindForbidden, codeForbidden, "you are not a member of room %d; join it first", roomID)
	}
	return room, nil
}

func (s *Server) onRoomJoin(ctx context.Context, c *conn, env protocol.Envelope) error {
	var req protocol.RoomRef
	if err := decodeValid(env, &req); err != nil {
		return err
	}
	room, err := s.store.Room(ctx, req.RoomID)
	if errors.Is(err, store.ErrNotFound) {
		return refuse(kindNotFound, codeNotFound, noRoom, req.RoomID)
	} else if err != nil {
		return err
	}
	member, err := s.hub.isMember(ctx, room.ID, c.user.ID)
	if err != nil {
		return err
	}
	if !member {
		if room.Visibility != store.VisibilityPublic {
			return refuse(kindNotFound, codeNotFound, noRoom, room.ID) // as if missing: see pathRoom
		}
		if err := s.addMember(ctx, room.ID, c.user); err != nil {
			return err
		}
	}
	members, err := s.memberList(ctx, room.ID)
	if err != nil {
		return err
	}
	c.sendTo(protocol.TypeRoomJoined, protocol.RoomJoined{Room: wireRoom(room), Members: members, RefID: env.ID})
	return nil
}

// addMember adds u to a room and tells the room (u's sessions included).
func (s *Server) addMember(ctx context.Context, roomID int64, u store.User) error {
	added, err := s.store.AddMember(ctx, roomID, u.ID)
	if err != nil || !added {
		return err
	}
	s.hub.memberChanged(roomID, u.ID, true)
	ev, err := s.hub.event(protocol.TypeRoomMemberJoined, u.Username, protocol.MemberEvent{RoomID: roomID, Username: u.Username})
	if err != nil {
		return err
	}
	return s.hub.publishRoom(ctx, roomID, ev, nil)
}

func (s *Server) memberList(ctx context.Context, roomID int64) ([]protocol.Member, error) {
	us, err := s.store.Members(ctx, roomID)
	if err != nil {
		return nil, err
	}
	ms := make([]protocol.Member, len(us))
	for i, u := range us {
		ms[i] = protocol.Member{Username: u.Username, Online: s.hub.online(u.ID)}
	}
	return ms, nil
}

func (s *Server) onRoomLeave(ctx context.Context, c *conn, env protocol.Envelope) error {
	var req protocol.RoomRef
	if err := decodeValid(env, &req); err != nil {
		return err
	}
	room, err := s.roomOf(ctx, c, req.RoomID)
	if err != nil {
		return err
	}
	if room.Kind == store.KindDirect {
		return refuse(kindInvalid, codeInvalidRequest, "a direct conversation cannot be left")
	}
	removed, err := s.store.RemoveMember(ctx, room.ID, c.user.ID)
	if err != nil {
		return err
	}
	if removed {
		s.hub.memberChanged(room.ID, c.user.ID, false)
		ev, err := s.hub.event(protocol.TypeRoomMemberLeft, c.user.Username, protocol.MemberEvent{RoomID: room.ID, Username: c.user.Username})
		if err != nil {
			return err
		}
		if err := s.hub.publishRoom(ctx, room.ID, ev, nil); err != nil {
			return err
		}
	}
	left, err := s.hub.event(protocol.TypeRoomLeft, c.user.Username, protocol.RoomLeft{RoomID: room.ID})
	if err != nil {
		return err
	}
	s.hub.publishPeople(c.user.ID, left, c)
	c.sendTo(protocol.TypeRoomLeft, protocol.RoomLeft{RoomID: room.ID, RefID: env.ID})
	return nil
}

// syncPage is how many missed messages one room.sync answer carries at
// most; syncBytes bounds their encoded size, leaving room in MaxFrame for
// the envelope (one message is at most ~24 KiB: 4,000 runes, escaped).
const (
	syncPage  = 100
	syncBytes = protocol.MaxFrame - 4<<10
)

func (s *Server) onRoomSync(ctx context.Context, c *conn, env protocol.Envelope) error {
	var req protocol.RoomSync
	if err := decodeValid(env, &req); err != nil {
		return err
	}
	if _, err := s.roomOf(ctx, c, req.RoomID); err != nil {
		return err
	}
	msgs, more, err := s.store.MessagesAfter(ctx, req.RoomID, req.Since, syncPage)
	if err != nil {
		return err
	}
	out := make([]protocol.Message, 0, len(msgs))
	size := 0
	for _, m := range msgs {
		wm := wireMessage(m)
		b, err := json.Marshal(wm)
		if err != nil {
			return err
		}
		// A page stays under the frame cap that clients apply as the
		// server does: long messages make shorter pages, never a bigger frame.
		if size += len(b) + 1; size > syncBytes && len(out) > 0 {
			more = true
			break
		}
		out = append(out, wm)
	}
	c.sendTo(protocol.TypeRoomSynced, protocol.RoomSynced{RoomID: req.RoomID, Messages: out, HasMore: more, RefID: env.ID})
	return nil
}

func (s *Server) onTyping(ctx context.Context, c *conn, env protocol.Envelope) error {
	var req protocol.Typing
	if err := env.Unmarshal(&req); err != nil {
		return err
	}
	if req.RoomID <= 0 {
		return refuse(kindInvalid, codeInvalidRequest, "room_id is required")
	}
	if _, err := s.roomOf(ctx, c, req.RoomID); err != nil {
		return err
	}
	ev, err := s.hub.event(protocol.TypeChatTyping, c.user.Username, protocol.Typing{RoomID: req.RoomID, Username: c.user.Username})
	if err != nil {
		return err
	}
	return s.hub.publishRoom(ctx, req.RoomID, ev, c)
}

// onCall relays call signalling to the callee's sessions (and the caller's
// other sessions, so a second tab stops ringing), between users who share a room.
func (s *Server) onCall(ctx context.Context, c *conn, env protocol.Envelope) error {
	var call protocol.Call
	if err := decodeValid(env, &call); err != nil {
		return err
	}
	to, err := s.store.UserByName(ctx, call.ToUser)
	if errors.Is(err, store.ErrNotFound) {
		return refuse(kindNotFound, codeUserNotFound, "no user %q", call.ToUser)
	} else if err != nil {
		return err
	}
	if to.ID == c.user.ID {
		return refuse(kindInvalid, codeInvalidRequest, "you cannot call yourself")
	}
	if ok, err := s.hub.shareRoom(ctx, c.user.ID, to.ID); err != nil {
		return err
	} else if !ok {
		return refuse(kindForbidden, codeForbidden, "you can call only people you share a room with; send %s a direct message first", to.Username)
	}
	if env.Type == protocol.TypeCallInvite && !s.hub.present(to.ID) {
		s.pushCall(ctx, c.user.Username, to, call)
		return refuse(kindConflict, codeUserOffline, "%s is offline; they will get a notification if they set one up", to.Username)
	}
	ev, err := s.hub.event(env.Type, c.user.Username, call)
	if err != nil {
		return err
	}
	s.hub.publishPeople(to.ID, ev, nil)
	s.hub.publishPeople(c.user.ID, ev, c)
	return nil
}

// validator is a payload with its own rules.
type validator interface{ Validate() error }

func decodeValid(env protocol.Envelope, v validator) error {
	if err := env.Unmarshal(v); err != nil {
		return err
	}
	return v.Validate()
}
