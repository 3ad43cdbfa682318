package server

import (
	"context"
	"errors"

	"mesh/protocol"
	"mesh/store"
)

// onCall relays call signalling to the callee's sessions (and the caller's
// other sessions, so a second tab stops ringing), between users who share a room.
func (s *Server) onCall(ctx context.Context, cn *conn, env protocol.Envelope) error {
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
	if to.ID == cn.user.ID {
		return refuse(kindInvalid, codeInvalidRequest, "you cannot call yourself")
	}
	if ok, err := s.hub.shareRoom(ctx, cn.user.ID, to.ID); err != nil {
		return err
	} else if !ok {
		return refuse(kindForbidden, codeForbidden, "you can call only people you share a room with; send %s a direct message first", to.Username)
	}
	if env.Type == protocol.TypeCallInvite && !s.hub.present(to.ID) {
		s.pushCall(ctx, cn.user.Username, to, call)
		return refuse(kindConflict, codeUserOffline, "%s is offline; they will get a notification if they set one up", to.Username)
	}
	ev, err := s.hub.event(env.Type, cn.user.Username, call)
	if err != nil {
		return err
	}
	s.hub.publishPeople(to.ID, ev, nil)
	s.hub.publishPeople(cn.user.ID, ev, cn)
	return nil
}
