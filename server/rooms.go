package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"golang.org/x/text/unicode/norm"

	"mesh/protocol"
	"mesh/store"
)

type roomAnswer struct {
	ID         int64     `json:"id"`
	Name       string    `json:"name"`
	Visibility string    `json:"visibility"`
	Kind       string    `json:"kind"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeq    int64     `json:"last_seq"`
	Member     bool      `json:"member"`
	Peer       string    `json:"peer,omitempty"` // the other user of a direct room
}

func toRoomAnswer(r store.Room, member bool, peer string) roomAnswer {
	return roomAnswer{ID: r.ID, Name: r.Name, Visibility: r.Visibility, Kind: r.Kind,
		CreatedAt: r.CreatedAt, LastSeq: r.LastSeq, Member: member, Peer: peer}
}

func (s *Server) listRooms(c echo.Context) error {
	views, err := s.store.VisibleRooms(c.Request().Context(), currentUser(c).ID)
	if err != nil {
		return err
	}
	out := make([]roomAnswer, len(views))
	for i, v := range views {
		out[i] = toRoomAnswer(v.Room, v.Member, v.Peer)
	}
	return c.JSON(http.StatusOK, map[string]any{"rooms": out})
}

func (s *Server) createRoom(c echo.Context) error {
	var req struct {
		Name       string `json:"name"`
		Visibility string `json:"visibility"`
	}
	if err := bind(c, &req); err != nil {
		return err
	}
	name, err := checkName("room name", "name", req.Name, maxRoomName)
	if err != nil {
		return err
	}
	switch req.Visibility {
	case "":
		req.Visibility = store.VisibilityPublic
	case store.VisibilityPublic, store.VisibilityPrivate:
	default:
		return refuse(kindInvalid, codeInvalidVisibility, "visibility must be \"public\" or \"private\"")
	}
	u := currentUser(c)
	r, err := s.store.CreateRoom(c.Request().Context(), name, req.Visibility, u.ID)
	if errors.Is(err, store.ErrConflict) {
		return refuse(kindConflict, codeRoomNameTaken, "a room named %q exists; join it or pick another name", name)
	} else if err != nil {
		return err
	}
	s.log.Info("room created", "room_id", r.ID, "name", r.Name, "visibility", r.Visibility, "by", u.Username)
	return c.JSON(http.StatusCreated, toRoomAnswer(r, true, ""))
}

// pathRoom loads the room named in the path; members only unless public is true.
// noRoom answers for a room that is missing and for a private room of
// which the caller is not a member alike.
const noRoom = "no room %d among yours or the public ones"

func (s *Server) pathRoom(c echo.Context, publicOK bool) (store.Room, bool, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return store.Room{}, false, refuse(kindInvalid, codeInvalidRoomID, "room id must be a positive number")
	}
	ctx := c.Request().Context()
	r, err := s.store.Room(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return r, false, refuse(kindNotFound, codeNotFound, noRoom, id)
	} else if err != nil {
		return r, false, err
	}
	member, err := s.hub.isMember(ctx, id, currentUser(c).ID)
	if err != nil {
		return r, false, err
	}
	switch {
	case member:
	case r.Visibility != store.VisibilityPublic:
		// The very answer a missing room gets, so that room ids cannot be
		// probed for private rooms.
		return r, false, refuse(kindNotFound, codeNotFound, noRoom, id)
	case !publicOK:
		return r, false, refuse(kindForbidden, codeForbidden, "you are not a member of room %d; join it first", id)
	}
	return r, member, nil
}

func (s *Server) getRoom(c echo.Context) error {
	r, member, err := s.pathRoom(c, true)
	if err != nil {
		return err
	}
	members, err := s.memberList(c.Request().Context(), r.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"room": toRoomAnswer(r, member, ""), "members": members})
}

func (s *Server) addRoomMember(c echo.Context) error {
	r, _, err := s.pathRoom(c, false)
	if err != nil {
		return err
	}
	var req struct {
		Username string `json:"username"`
	}
	if err := bind(c, &req); err != nil {
		return err
	} else if req.Username == "" {
		return missing("username")
	}
	if r.Kind == store.KindDirect {
		return refuse(kindInvalid, codeDirectRoom, "a direct conversation has exactly two members; create a private room instead")
	}
	ctx := c.Request().Context()
	u, err := s.store.UserByName(ctx, req.Username)
	if errors.Is(err, store.ErrNotFound) {
		return refuse(kindNotFound, codeUserNotFound, "no user %q", req.Username)
	} else if err != nil {
		return err
	}
	if err := s.addMember(ctx, r.ID, u); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, protocol.MemberEvent{RoomID: r.ID, Username: u.Username})
}

func (s *Server) roomMessages(c echo.Context) error {
	r, _, err := s.pathRoom(c, false)
	if err != nil {
		return err
	}
	before, err := queryInt(c, "before", codeInvalidBefore, 0)
	if err != nil {
		return err
	}
	limit, err := queryInt(c, "limit", codeInvalidLimit, 50)
	if err != nil {
		return err
	}
	if limit < 1 || limit > 200 {
		return refuse(kindInvalid, codeInvalidLimit, "limit must be 1..200")
	}
	msgs, more, err := s.store.MessagesBefore(c.Request().Context(), r.ID, before, int(limit))
	if err != nil {
		return err
	}
	out := make([]protocol.Message, len(msgs))
	for i, m := range msgs {
		out[i] = wireMessage(m)
	}
	return c.JSON(http.StatusOK, map[string]any{"messages": out, "has_more": more})
}

func (s *Server) directRoom(c echo.Context) error {
	var req struct {
		Username string `json:"username"`
	}
	if err := bind(c, &req); err != nil {
		return err
	} else if req.Username == "" {
		return missing("username")
	}
	ctx := c.Request().Context()
	me := currentUser(c)
	u, err := s.store.UserByName(ctx, req.Username)
	if errors.Is(err, store.ErrNotFound) {
		return refuse(kindNotFound, codeUserNotFound, "no user %q", req.Username)
	} else if err != nil {
		return err
	}
	if u.ID == me.ID {
		return refuse(kindInvalid, codeInvalidUsername, "a direct conversation needs another user")
	}
	r, created, err := s.store.DirectRoom(ctx, me.ID, u.ID)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, toRoomAnswer(r, true, u.Username))
}

func queryInt(c echo.Context, name, code string, def int64) (int64, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, refuse(kindInvalid, code, "%s must be a non-negative whole number", name)
	}
	return n, nil
}

// roomOf loads a room the user may act in, refusing non-members with forbidden.
func (s *Server) roomOf(ctx context.Context, cn *conn, roomID int64) (store.Room, error) {
	room, err := s.store.Room(ctx, roomID)
	if errors.Is(err, store.ErrNotFound) {
		return room, refuse(kindNotFound, codeNotFound, noRoom, roomID)
	} else if err != nil {
		return room, err
	}
	if ok, err := s.hub.isMember(ctx, roomID, cn.user.ID); err != nil {
		return room, err
	} else if !ok && room.Visibility != store.VisibilityPublic {
		return room, refuse(kindNotFound, codeNotFound, noRoom, roomID) // as if missing: see pathRoom
	} else if !ok {
		return room, refuse(kindForbidden, codeForbidden, "you are not a member of room %d; join it first", roomID)
	}
	return room, nil
}

func (s *Server) onRoomJoin(ctx context.Context, cn *conn, env protocol.Envelope) error {
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
	member, err := s.hub.isMember(ctx, room.ID, cn.user.ID)
	if err != nil {
		return err
	}
	if !member {
		if room.Visibility != store.VisibilityPublic {
			return refuse(kindNotFound, codeNotFound, noRoom, room.ID) // as if missing: see pathRoom
		}
		if err := s.addMember(ctx, room.ID, cn.user); err != nil {
			return err
		}
	}
	members, err := s.memberList(ctx, room.ID)
	if err != nil {
		return err
	}
	cn.sendTo(protocol.TypeRoomJoined, protocol.RoomJoined{Room: wireRoom(room), Members: members, RefID: env.ID})
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

func (s *Server) onRoomLeave(ctx context.Context, cn *conn, env protocol.Envelope) error {
	var req protocol.RoomRef
	if err := decodeValid(env, &req); err != nil {
		return err
	}
	room, err := s.roomOf(ctx, cn, req.RoomID)
	if err != nil {
		return err
	}
	if room.Kind == store.KindDirect {
		return refuse(kindInvalid, codeInvalidRequest, "a direct conversation cannot be left")
	}
	removed, err := s.store.RemoveMember(ctx, room.ID, cn.user.ID)
	if err != nil {
		return err
	}
	if removed {
		s.hub.memberChanged(room.ID, cn.user.ID, false)
		ev, err := s.hub.event(protocol.TypeRoomMemberLeft, cn.user.Username, protocol.MemberEvent{RoomID: room.ID, Username: cn.user.Username})
		if err != nil {
			return err
		}
		if err := s.hub.publishRoom(ctx, room.ID, ev, nil); err != nil {
			return err
		}
	}
	left, err := s.hub.event(protocol.TypeRoomLeft, cn.user.Username, protocol.RoomLeft{RoomID: room.ID})
	if err != nil {
		return err
	}
	s.hub.publishPeople(cn.user.ID, left, cn)
	cn.sendTo(protocol.TypeRoomLeft, protocol.RoomLeft{RoomID: room.ID, RefID: env.ID})
	return nil
}

// maxRoomName is the longest room name, in characters after NFC.
const maxRoomName = 64

// checkName applies the rules of names people pick and others see (room
// names; usernames and device ids have their own ASCII-only rules) and
// returns the name trimmed and in NFC, the form to store and compare, so
// two spellings of one text ("é" and "e" + U+0301) are one name. what
// says whose name it is in errors: "room name". A name may not hold
// control characters (not even tab or newline), invisible formatting
// characters (Unicode Cf: bidi controls, zero-width characters, the
// marks U+200E/U+200F), line or paragraph separators, or the fillers
// that draw nothing: each lets one name pass for another.
func checkName(what, field, name string, maxRunes int) (string, error) {
	name = norm.NFC.String(strings.TrimSpace(name))
	if name == "" {
		return "", missing(field)
	}
	pos := 0
	for _, r := range name {
		pos++
		if invisibleInName(r) {
			return "", refuse(kindInvalid, codeInvalidName,
				"%s contains %s at character %d; remove it: names may not contain control, invisible or direction-changing characters",
				what, protocol.RuneLabel(r), pos)
		}
	}
	if n := utf8.RuneCountInString(name); n > maxRunes {
		return "", refuse(kindInvalid, codeInvalidName, "%s must be at most %d characters, got %d", what, maxRunes, n)
	}
	return name, nil
}

func invisibleInName(r rune) bool {
	switch r {
	case 0x115f, 0x1160, 0x3164, 0xffa0, // Hangul fillers: letters that draw nothing
		0x034f: // combining grapheme joiner
		return true
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
}
