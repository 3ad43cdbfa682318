package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ErrNotMember is returned when a user acts in a room they are not a member of.
var ErrNotMember = errors.New("not a member of the room")

// Room visibilities and kinds. Anyone may see and join a public room; a
// private one grows only by a member adding someone. A direct room is the
// private two-member room of a direct conversation.
const (
	VisibilityPublic  = "public"
	VisibilityPrivate = "private"
	KindRoom          = "room"
	KindDirect        = "direct"
)

// Room is a chat room at rest. CreatedBy is 0 when the creator's account is
// gone. LastSeq is the seq of the room's newest message (0 when it has none).
type Room struct {
	ID         int64
	Name       string
	Visibility string // VisibilityPublic or VisibilityPrivate
	Kind       string // KindRoom or KindDirect
	CreatedBy  int64
	CreatedAt  time.Time
	LastSeq    int64
}

// RoomView is a room as one user sees it in a listing.
type RoomView struct {
	Room
	Member bool   // the user is a member
	Peer   string // for a direct room, the other member's username
}

const roomCols = `id, name, visibility, kind, created_by, created_at, last_seq`

func scanRoom(row interface{ Scan(...any) error }, extra ...any) (Room, error) {
	var r Room
	var by sql.NullInt64
	var created int64
	dest := append([]any{&r.ID, &r.Name, &r.Visibility, &r.Kind, &by, &created, &r.LastSeq}, extra...)
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Room{}, ErrNotFound
		}
		return Room{}, err
	}
	r.CreatedBy, r.CreatedAt = by.Int64, fromMicros(created)
	return r, nil
}

// rowQuerier is what *sql.DB and *sql.Tx share, so lookups run in or out of a transaction.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// CreateRoom creates a room of kind [KindRoom] whose only member is its
// creator, in one transaction. The name is stored as given and compared
// case-insensitively: [ErrConflict] if another room has it. [ErrNotFound]
// if there is no user creatorID.
func (s *Store) CreateRoom(ctx context.Context, name, visibility string, creatorID int64) (Room, error) {
	if visibility != VisibilityPublic && visibility != VisibilityPrivate {
		return Room{}, fmt.Errorf("create room %q: visibility %q is neither %q nor %q", name, visibility, VisibilityPublic, VisibilityPrivate)
	}
	r := Room{Name: name, Visibility: visibility, Kind: KindRoom, CreatedBy: creatorID, CreatedAt: fromMicros(micros(s.now()))}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := userExists(ctx, tx, creatorID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO rooms (name, name_key, visibility, kind, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			r.Name, strings.ToLower(r.Name), r.Visibility, r.Kind, creatorID, micros(r.CreatedAt))
		if isUnique(err) {
			return ErrConflict
		} else if err != nil {
			return err
		}
		if r.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		return insertMember(ctx, tx, r.ID, creatorID, r.CreatedAt)
	})
	if err != nil {
		return Room{}, fmt.Errorf("create room %q: %w", name, err)
	}
	return r, nil
}

func userExists(ctx context.Context, tx *sql.Tx, userID int64) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE id = ?`, userID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("user %d: %w", userID, ErrNotFound)
	}
	return err
}

func insertMember(ctx context.Context, tx *sql.Tx, roomID, userID int64, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO room_members (room_id, user_id, joined_at) VALUES (?, ?, ?)`, roomID, userID, micros(at))
	return err
}

// Room finds a room by id; [ErrNotFound] if there is none.
func (s *Store) Room(ctx context.Context, id int64) (Room, error) {
	r, err := scanRoom(s.r.QueryRowContext(ctx, `SELECT `+roomCols+` FROM rooms WHERE id = ?`, id))
	if err != nil {
		return Room{}, fmt.Errorf("room %d: %w", id, err)
	}
	return r, nil
}

// VisibleRooms lists, by id, the public rooms and every room userID is a
// member of, direct rooms included.
func (s *Store) VisibleRooms(ctx context.Context, userID int64) ([]RoomView, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT r.id, r.name, r.visibility, r.kind, r.created_by, r.created_at, r.last_seq,
			rm.user_id IS NOT NULL,
			(SELECT u.username FROM room_members o JOIN users u ON u.id = o.user_id
				WHERE r.kind = 'direct' AND o.room_id = r.id AND o.user_id <> ? LIMIT 1)
		FROM rooms r LEFT JOIN room_members rm ON rm.room_id = r.id AND rm.user_id = ?
		WHERE r.visibility = 'public' OR rm.user_id IS NOT NULL
		ORDER BY r.id`, userID, userID)
	if err != nil {
		return nil, fmt.Errorf("rooms visible to user %d: %w", userID, err)
	}
	defer rows.Close()
	var vs []RoomView
	for rows.Next() {
		var v RoomView
		var peer sql.NullString
		if v.Room, err = scanRoom(rows, &v.Member, &peer); err != nil {
			return nil, fmt.Errorf("rooms visible to user %d: %w", userID, err)
		}
		v.Peer = peer.String
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rooms visible to user %d: %w", userID, err)
	}
	return vs, nil
}

// UserRoomIDs lists, ascending, the rooms userID is a member of.
func (s *Store) UserRoomIDs(ctx context.Context, userID int64) ([]int64, error) {
	ids, err := s.ids(ctx, `SELECT room_id FROM room_members WHERE user_id = ? ORDER BY room_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("rooms of user %d: %w", userID, err)
	}
	return ids, nil
}

// MemberIDs lists, ascending, the user ids of a room's members; none for a missing room.
func (s *Store) MemberIDs(ctx context.Context, roomID int64) ([]int64, error) {
	ids, err := s.ids(ctx, `SELECT user_id FROM room_members WHERE room_id = ? ORDER BY user_id`, roomID)
	if err != nil {
		return nil, fmt.Errorf("member ids of room %d: %w", roomID, err)
	}
	return ids, nil
}

func (s *Store) ids(ctx context.Context, q string, arg int64) ([]int64, error) {
	rows, err := s.r.QueryContext(ctx, q, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Members lists a room's members by username; none for a missing room.
func (s *Store) Members(ctx context.Context, roomID int64) ([]User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+userCols+` FROM users
		WHERE id IN (SELECT user_id FROM room_members WHERE room_id = ?) ORDER BY username`, roomID)
	if err != nil {
		return nil, fmt.Errorf("members of room %d: %w", roomID, err)
	}
	defer rows.Close()
	var us []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("members of room %d: %w", roomID, err)
		}
		us = append(us, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("members of room %d: %w", roomID, err)
	}
	return us, nil
}

// IsMember reports whether userID is a member of roomID.
func (s *Store) IsMember(ctx context.Context, roomID, userID int64) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM room_members WHERE room_id = ? AND user_id = ?`, roomID, userID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("is user %d a member of room %d: %w", userID, roomID, err)
	}
	return true, nil
}

// AddMember makes userID a member of roomID; added is false if they already
// were. [ErrNotFound] if the room or the user is missing. It does not look
// at visibility or kind: who may add whom is the caller's policy.
func (s *Store) AddMember(ctx context.Context, roomID, userID int64) (added bool, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM rooms WHERE id = ?`, roomID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("room %d: %w", roomID, ErrNotFound)
		} else if err != nil {
			return err
		}
		if err := userExists(ctx, tx, userID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO room_members (room_id, user_id, joined_at) VALUES (?, ?, ?)
			ON CONFLICT (room_id, user_id) DO NOTHING`, roomID, userID, micros(s.now()))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		added = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("add user %d to room %d: %w", userID, roomID, err)
	}
	return added, nil
}

// RemoveMember ends userID's membership of roomID; removed is false if there
// was none. The room stays, even when it has no members left.
func (s *Store) RemoveMember(ctx context.Context, roomID, userID int64) (removed bool, err error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM room_members WHERE room_id = ? AND user_id = ?`, roomID, userID)
	if err != nil {
		return false, fmt.Errorf("remove user %d from room %d: %w", userID, roomID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("remove user %d from room %d: %w", userID, roomID, err)
	}
	return n > 0, nil
}

// DirectRoom returns the direct room of users a and b, creating it (private,
// kind [KindDirect], both as members, named by their usernames sorted and
// joined by ",") if there is none yet; created says which. The argument
// order does not matter, and concurrent calls for one pair get one room.
// Errors: [ErrNotFound] if a user is missing; an error wrapping
// [ErrConflict] if a == b.
func (s *Store) DirectRoom(ctx context.Context, a, b int64) (room Room, created bool, err error) {
	if a == b {
		return Room{}, false, fmt.Errorf("direct room of user %d with itself: %w", a, ErrConflict)
	}
	key := dmKey(a, b)
	// Nearly always the room exists: find it without taking the write lock.
	if room, err = roomByDMKey(ctx, s.r, key); err == nil || !errors.Is(err, ErrNotFound) {
		return room, false, wrapDM(key, err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		// Another caller may have created it since the read above.
		if room, err = roomByDMKey(ctx, tx, key); !errors.Is(err, ErrNotFound) {
			return err
		}
		room, err = insertDirectRoom(ctx, tx, key, a, b, fromMicros(micros(s.now())))
		created = err == nil
		return err
	})
	if isUnique(err) {
		// A backend without a single writer can lose the race at the
		// unique dm_key; the winner's room is the one.
		room, err = roomByDMKey(ctx, s.r, key)
		return room, false, wrapDM(key, err)
	}
	return room, created, wrapDM(key, err)
}

func wrapDM(key string, err error) error {
	if err != nil {
		return fmt.Errorf("direct room %s: %w", key, err)
	}
	return nil
}

func dmKey(a, b int64) string {
	if a > b {
		a, b = b, a
	}
	return fmt.Sprintf("%d:%d", a, b)
}

func roomByDMKey(ctx context.Context, q rowQuerier, key string) (Room, error) {
	return scanRoom(q.QueryRowContext(ctx, `SELECT `+roomCols+` FROM rooms WHERE dm_key = ?`, key))
}

func insertDirectRoom(ctx context.Context, tx *sql.Tx, key string, a, b int64, now time.Time) (Room, error) {
	names := make([]string, 0, 2)
	for _, id := range []int64{a, b} {
		var name string
		if err := tx.QueryRowContext(ctx, `SELECT username FROM users WHERE id = ?`, id).Scan(&name); errors.Is(err, sql.ErrNoRows) {
			return Room{}, fmt.Errorf("user %d: %w", id, ErrNotFound)
		} else if err != nil {
			return Room{}, err
		}
		names = append(names, name)
	}
	sort.Strings(names)
	r := Room{Name: strings.Join(names, ","), Visibility: VisibilityPrivate, Kind: KindDirect, CreatedBy: a, CreatedAt: now}
	res, err := tx.ExecContext(ctx, `INSERT INTO rooms (name, visibility, kind, dm_key, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		r.Name, r.Visibility, r.Kind, key, a, micros(now))
	if err != nil {
		return Room{}, err
	}
	if r.ID, err = res.LastInsertId(); err != nil {
		return Room{}, err
	}
	for _, id := range []int64{a, b} {
		if err := insertMember(ctx, tx, r.ID, id, now); err != nil {
			return Room{}, err
		}
	}
	return r, nil
}
