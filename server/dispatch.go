package server

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"mesh/protocol"
	"mesh/store"
)

// dispatch runs one client request; a refusal becomes system.error with the
// request's id as ref_id, anything else is logged and reported as internal.
func (s *Server) dispatch(cn *conn, env protocol.Envelope) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	switch {
	case cn.device.ID != "" && !agentRequest(env.Type):
		err = refuse(kindLoginRequired, codeUserLoginRequired,
			"a device token may only do an agent's work, not %s; log in as the user for it", env.Type)
	default:
		err = s.handle(ctx, cn, env)
	}
	var r *refusal
	var ce *protocol.CharError
	switch {
	case err == nil:
	case errors.As(err, &r):
		cn.replyRefusal(env.ID, r)
	case errors.As(err, &ce):
		cn.reply(env.ID, protocol.CodeInvalidText, err.Error())
	case errors.Is(err, protocol.ErrMalformed):
		cn.reply(env.ID, protocol.CodeInvalid, err.Error())
	default:
		s.log.Error("websocket request failed", "type", env.Type, "user", cn.user.Username, "err", err)
		cn.reply(env.ID, protocol.CodeInternal, "internal error; the server log has details")
	}
}

// replyRefusal sends r to this session as system.error; its kind gives the
// code (wsCode), as it gives the status on the HTTP side.
func (cn *conn) replyRefusal(refID string, r *refusal) {
	cn.reply(refID, wsCode(r.kind), r.msg)
}

// handle runs one request by its type.
func (s *Server) handle(ctx context.Context, cn *conn, env protocol.Envelope) error {
	switch env.Type {
	case protocol.TypeSystemHello:
		return s.onHello(cn, env)
	case protocol.TypeRoomJoin:
		return s.onRoomJoin(ctx, cn, env)
	case protocol.TypeRoomLeave:
		return s.onRoomLeave(ctx, cn, env)
	case protocol.TypeRoomSync:
		return s.onRoomSync(ctx, cn, env)
	case protocol.TypeChatSend:
		return s.onChatSend(ctx, cn, env)
	case protocol.TypeChatTyping:
		return s.onTyping(ctx, cn, env)
	case protocol.TypeCallInvite, protocol.TypeCallAccept, protocol.TypeCallReject, protocol.TypeCallOffer,
		protocol.TypeCallAnswer, protocol.TypeCallICE, protocol.TypeCallHangup:
		return s.onCall(ctx, cn, env)
	case protocol.TypeP2PSessionRequest:
		return s.onSessionRequest(ctx, cn, env)
	case protocol.TypeTransferReport:
		return s.onTransferReport(ctx, cn, env)
	case protocol.TypeTransferStart:
		return s.onTransferStart(ctx, cn, env)
	case protocol.TypeTerminalOpen:
		return s.onTerminalOpen(cn, env)
	case protocol.TypeTerminalWatch:
		return s.onTerminalWatch(cn, env)
	case protocol.TypeTerminalUnwatch:
		return s.onTerminalUnwatch(cn, env)
	case protocol.TypeTerminalResize:
		return s.onTerminalResize(cn, env)
	case protocol.TypeTerminalExit:
		return s.onTerminalExit(cn, env)
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

func (s *Server) onHello(cn *conn, env protocol.Envelope) error {
	var h protocol.Hello
	if err := env.Unmarshal(&h); err != nil {
		return err
	}
	if err := h.Validate(); err != nil {
		return err
	}
	if cn.device.ID != "" && h.DeviceID != "" && store.DeviceKey(h.DeviceID) != store.DeviceKey(cn.device.ID) {
		return refuse(kindInvalid, codeInvalidRequest, "this token belongs to device %q, not %q", cn.device.ID, h.DeviceID)
	}
	cn.mu.Lock()
	if cn.device.ID == "" {
		cn.deviceID = h.DeviceID
	}
	cn.quicPort, cn.fingerprint, cn.candidates = h.QUICPort, h.Fingerprint, h.Candidates
	deviceID := cn.deviceID
	cn.mu.Unlock()
	if cn.device.ID != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.store.TouchDevice(ctx, cn.device.ID, h.Fingerprint); err != nil {
			return err
		}
	}
	cn.sendTo(protocol.TypeSystemWelcome, protocol.Welcome{
		User:          protocol.UserRef{ID: cn.user.ID, Username: cn.user.Username},
		DeviceID:      deviceID,
		ServerVersion: protocol.Version,
		RefID:         env.ID,
	})
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
