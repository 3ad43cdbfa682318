package server

import (
	"context"
	"encoding/json"
	"errors"

	"mesh/protocol"
	"mesh/store"
)

// chatBatch caps how many sends share one transaction (group commit): at
// low load a batch is one message, so latency stays one commit; under load
// the commit cost is shared.
const chatBatch = 128

type sendReq struct {
	cn    *conn
	refID string
	msg   store.NewMessage
}

func (s *Server) onChatSend(ctx context.Context, cn *conn, env protocol.Envelope) error {
	var req protocol.ChatSend
	if err := decodeValid(env, &req); err != nil {
		return err
	}
	roomID := req.RoomID
	if req.ToUser != "" {
		to, err := s.store.UserByName(ctx, req.ToUser)
		if errors.Is(err, store.ErrNotFound) {
			return refuse(kindNotFound, codeUserNotFound, "no user %q", req.ToUser)
		} else if err != nil {
			return err
		}
		if to.ID == cn.user.ID {
			return refuse(kindInvalid, codeInvalidRequest, "a direct message needs another user")
		}
		room, _, err := s.store.DirectRoom(ctx, cn.user.ID, to.ID)
		if err != nil {
			return err
		}
		roomID = room.ID
	}
	select {
	case s.chatIn <- sendReq{cn: cn, refID: env.ID, msg: store.NewMessage{RoomID: roomID, UserID: cn.user.ID, Text: req.Text, ClientMsgID: req.ClientMsgID}}:
		return nil
	case <-s.chatQuit:
		return refuse(kindUnavailable, codeShuttingDown, "server is shutting down; send again after reconnecting")
	}
}

// runChat persists chat messages in arrival order and only then publishes
// them, so an acknowledged message is always in the history, and every
// member sees a room's messages in sequence order. It returns after quit is
// closed and what was already queued is stored.
func (s *Server) runChat() {
	batch := make([]sendReq, 0, chatBatch)
	for {
		select {
		case r := <-s.chatIn:
			batch = append(batch[:0], r)
		case <-s.chatQuit:
			for {
				select {
				case r := <-s.chatIn:
					s.commitChat([]sendReq{r})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < chatBatch {
			select {
			case r := <-s.chatIn:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commitChat(batch)
	}
}

func (s *Server) commitChat(batch []sendReq) {
	ctx := context.Background() // the commit must finish even while shutting down
	msgs := make([]store.NewMessage, len(batch))
	for i, r := range batch {
		msgs[i] = r.msg
	}
	res, err := s.store.AppendMessages(ctx, msgs)
	if err != nil {
		s.log.Error("store chat messages", "count", len(batch), "err", err)
		for _, r := range batch {
			r.cn.reply(r.refID, protocol.CodeInternal, "message not stored; send it again")
		}
		return
	}
	for i, r := range batch {
		switch {
		case errors.Is(res[i].Err, store.ErrNotMember):
			r.cn.reply(r.refID, protocol.CodeForbidden, "you are not a member of this room; join it first")
			continue
		case res[i].Err != nil:
			s.log.Error("store chat message", "err", res[i].Err)
			r.cn.reply(r.refID, protocol.CodeInternal, "message not stored; send it again")
			continue
		}
		m := wireMessage(res[i].Message)
		if !res[i].Dup { // a retried send was delivered the first time
			ev, err := s.hub.event(protocol.TypeChatCreated, m.From, protocol.ChatCreated{Message: m})
			if err == nil {
				err = s.hub.publishRoom(ctx, m.RoomID, ev, r.cn)
			}
			if err != nil {
				s.log.Error("publish chat message", "room_id", m.RoomID, "err", err)
			}
			s.pushMessage(ctx, res[i].Message)
		}
		r.cn.sendTo(protocol.TypeChatCreated, protocol.ChatCreated{Message: m, RefID: r.refID})
	}
}

func wireMessage(m store.Message) protocol.Message {
	return protocol.Message{ID: m.ID, RoomID: m.RoomID, Seq: m.Seq, From: m.Username, Text: m.Text,
		CreatedAt: m.CreatedAt, ClientMsgID: m.ClientMsgID}
}

func wireRoom(r store.Room) protocol.Room {
	return protocol.Room{ID: r.ID, Name: r.Name, Visibility: r.Visibility, Kind: r.Kind, CreatedAt: r.CreatedAt, LastSeq: r.LastSeq}
}

// syncPage is how many missed messages one room.sync answer carries at
// most; syncBytes bounds their encoded size, leaving room in MaxFrame for
// the envelope (one message is at most ~24 KiB: 4,000 runes, escaped).
const (
	syncPage  = 100
	syncBytes = protocol.MaxFrame - 4<<10
)

func (s *Server) onRoomSync(ctx context.Context, cn *conn, env protocol.Envelope) error {
	var req protocol.RoomSync
	if err := decodeValid(env, &req); err != nil {
		return err
	}
	if _, err := s.roomOf(ctx, cn, req.RoomID); err != nil {
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
	cn.sendTo(protocol.TypeRoomSynced, protocol.RoomSynced{RoomID: req.RoomID, Messages: out, HasMore: more, RefID: env.ID})
	return nil
}

func (s *Server) onTyping(ctx context.Context, cn *conn, env protocol.Envelope) error {
	var req protocol.Typing
	if err := env.Unmarshal(&req); err != nil {
		return err
	}
	if req.RoomID <= 0 {
		return refuse(kindInvalid, codeInvalidRequest, "room_id is required")
	}
	if _, err := s.roomOf(ctx, cn, req.RoomID); err != nil {
		return err
	}
	ev, err := s.hub.event(protocol.TypeChatTyping, cn.user.Username, protocol.Typing{RoomID: req.RoomID, Username: cn.user.Username})
	if err != nil {
		return err
	}
	return s.hub.publishRoom(ctx, req.RoomID, ev, cn)
}
