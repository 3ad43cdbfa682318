package server

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"mesh/protocol"
	"mesh/store"
)

// pushJob is a stored message and the members who were absent when it
// was published: presence is decided then, not when the feed gets to it.
type pushJob struct {
	m      store.Message
	absent []int64
}

// pushMessage hands a stored chat message to the push feed without
// waiting: chat delivery never waits on notifications. Only direct rooms
// (two members) and messages with an @ can push; a full feed drops the
// message's pushes (logged).
func (s *Server) pushMessage(ctx context.Context, m store.Message) {
	members, err := s.hub.members(ctx, m.RoomID) // cached: publishing just used it
	if err != nil || (len(members) > 2 && !strings.Contains(m.Text, "@")) {
		return
	}
	var absent []int64
	for uid := range members {
		if uid != m.UserID && !s.hub.present(uid) {
			absent = append(absent, uid)
		}
	}
	if len(absent) == 0 {
		return
	}
	select {
	case s.pushIn <- pushJob{m, absent}:
	default:
		s.log.Warn("push feed full; message not pushed", "message_id", m.ID)
	}
}

// runPushFeed turns chat messages into queued pushes for members who were
// absent: every direct message, and messages that mention them.
func (s *Server) runPushFeed(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.pushIn:
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			s.pushForMessage(qctx, j)
			cancel()
		}
	}
}

func (s *Server) pushForMessage(ctx context.Context, j pushJob) {
	m := j.m
	room, err := s.store.Room(ctx, m.RoomID)
	if err != nil {
		s.log.Warn("push: room", "room_id", m.RoomID, "err", err)
		return
	}
	direct := room.Kind == store.KindDirect
	for _, uid := range j.absent {
		pu := store.Push{IdemKey: fmt.Sprintf("msg:%d:%d", m.ID, uid), UserID: uid, RoomID: m.RoomID,
			Message: clip(m.Text, 300), ClickURL: s.clickURL(fmt.Sprintf("#/chat/%d", m.RoomID))}
		if direct {
			pu.Kind, pu.Title = pushKindDM, m.Username
		} else {
			u, err := s.store.UserByID(ctx, uid)
			if err != nil || !mentions(m.Text, u.Username) {
				continue
			}
			pu.Kind, pu.Title = pushKindMention, m.Username+" in #"+room.Name
		}
		s.push.enqueue(ctx, pu)
	}
}

// pushCall tells a callee who is not present that someone called.
func (s *Server) pushCall(ctx context.Context, from string, to store.User, call protocol.Call) {
	what := "a video call"
	if call.Media == protocol.MediaAudio {
		what = "an audio call"
	}
	s.push.enqueue(ctx, store.Push{IdemKey: "call:" + call.CallID + ":" + to.Username, UserID: to.ID, Kind: pushKindCall,
		Title: "Missed call from " + from, Message: from + " tried " + what + " with you; open mesh to call back",
		ClickURL: s.clickURL("#/chat")})
}

// pushFile tells a user who is not present that a file arrived on one of
// their devices.
func (s *Server) pushFile(ctx context.Context, u store.User, r protocol.TransferReport) {
	if r.Outcome != protocol.OutcomeOK || s.hub.present(u.ID) {
		return
	}
	s.push.enqueue(ctx, store.Push{IdemKey: "file:" + r.SessionID, UserID: u.ID, Kind: pushKindFile,
		Title:    "File received on " + r.ToDevice,
		Message:  fmt.Sprintf("%s (%s) from %s", r.Name, humanBytes(r.Size), r.FromDevice),
		ClickURL: s.clickURL("#/transfers")})
}

// clickURL is where a push's click leads in the web app, when the server
// knows its public address.
func (s *Server) clickURL(route string) string {
	if s.cfg.HTTP.PublicURL == "" {
		return ""
	}
	return strings.TrimRight(s.cfg.HTTP.PublicURL, "/") + "/" + route
}

// mentions reports whether text has @name as a word (case-insensitive).
func mentions(text, name string) bool {
	lt, ln := strings.ToLower(text), "@"+strings.ToLower(name)
	for i := 0; ; {
		j := strings.Index(lt[i:], ln)
		if j < 0 {
			return false
		}
		end := i + j + len(ln)
		if end == len(lt) || !isNameByte(lt[end]) {
			return true
		}
		i = end
	}
}

func isNameByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_' || b == '.' || b == '-'
}

// clip cuts s to at most n runes, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
