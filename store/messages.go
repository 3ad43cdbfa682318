package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"
)

// Message is a chat message at rest. Seq numbers a room's messages 1, 2, 3…
// without gaps, in the order they were stored. ClientMsgID is "" when the
// sender gave none.
type Message struct {
	ID, RoomID, Seq, UserID int64
	Username                string // the sender's
	Text, ClientMsgID       string
	CreatedAt               time.Time
}

// NewMessage is one message to store with [Store.AppendMessages].
type NewMessage struct {
	RoomID, UserID    int64
	Text, ClientMsgID string
}

// AppendResult is the outcome of one [NewMessage]: the stored message, or
// with Dup the one stored earlier under the same client message id, or Err
// (wrapping [ErrNotMember]) when the message was refused.
type AppendResult struct {
	Message
	Dup bool
	Err error
}

// Page sizes of the history reads.
const (
	MaxMessagesBefore = 200
	MaxMessagesAfter  = 1000
)

// AppendMessage stores one message; see [Store.AppendMessages]. A refusal is
// returned as err (wrapping [ErrNotMember]).
func (s *Store) AppendMessage(ctx context.Context, roomID, userID int64, text, clientMsgID string) (m Message, dup bool, err error) {
	res, err := s.AppendMessages(ctx, []NewMessage{{RoomID: roomID, UserID: userID, Text: text, ClientMsgID: clientMsgID}})
	if err != nil {
		return Message{}, false, err
	}
	return res[0].Message, res[0].Dup, res[0].Err
}

// AppendMessages stores a batch of messages in one transaction (group
// commit), in order, and returns one result per message. For each: if it has
// a ClientMsgID that its sender already used in that room, the earlier
// message comes back with Dup and nothing changes; otherwise a sender who is
// not a member of the room (or a missing room) gets Err wrapping
// [ErrNotMember] without failing the batch; otherwise the message takes the
// room's next seq. A database error fails the whole batch and stores none of it.
func (s *Store) AppendMessages(ctx context.Context, batch []NewMessage) ([]AppendResult, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	res := make([]AppendResult, len(batch))
	now := fromMicros(micros(s.now()))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		a := appender{tx: tx, members: map[[2]int64]member{}, seqs: map[int64]*roomSeq{}}
		for i, nm := range batch {
			var err error
			if res[i], err = a.append(ctx, nm, now); err != nil {
				return err
			}
		}
		return a.saveSeqs(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("append %d messages: %w", len(batch), err)
	}
	return res, nil
}

// appender stores the messages of one batch. The write transaction holds
// SQLite's only write lock, so it may read a room's last_seq once, count on
// from there and write it back at the end. (A backend with row locks would
// read it FOR UPDATE.)
type appender struct {
	tx      *sql.Tx
	stmts   [stmtCount]*sql.Stmt // prepared on first use, closed by the commit
	members map[[2]int64]member  // by {room, user}
	seqs    map[int64]*roomSeq   // by room, of the rooms with a member sending
	rooms   []int64              // keys of seqs in first-use order
}

// roomSeq is a room's last_seq as read (stored) and as counted on (last).
type roomSeq struct{ stored, last int64 }

type member struct {
	ok       bool
	username string
}

// Statement slots of an [appender] and their SQL.
const (
	stmtMember = iota
	stmtInsert
	stmtOriginal
	stmtSaveSeq
	stmtCount
)

const (
	// One query answers membership, the sender's name and the room's last seq.
	memberSQL = `SELECT u.username, r.last_seq FROM room_members rm
		JOIN users u ON u.id = rm.user_id JOIN rooms r ON r.id = rm.room_id
		WHERE rm.room_id = ? AND rm.user_id = ?`
	// The conflict target is the client message id index: a retry inserts
	// nothing; any other violation is still an error.
	insertMessageSQL = `INSERT INTO messages (room_id, seq, user_id, text, client_msg_id, created_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (room_id, user_id, client_msg_id) WHERE client_msg_id IS NOT NULL DO NOTHING`
	originalSQL = messageSelect + ` WHERE m.room_id = ? AND m.user_id = ? AND m.client_msg_id = ?`
	saveSeqSQL  = `UPDATE rooms SET last_seq = ? WHERE id = ?`
)

// stmt returns the statement of a slot, preparing q on first use: a batch
// then compiles each statement once however many messages it holds.
func (a *appender) stmt(ctx context.Context, slot int, q string) (*sql.Stmt, error) {
	if a.stmts[slot] == nil {
		st, err := a.tx.PrepareContext(ctx, q)
		if err != nil {
			return nil, err
		}
		a.stmts[slot] = st
	}
	return a.stmts[slot], nil
}

// append stores one message. Its error is a database error that fails the batch.
func (a *appender) append(ctx context.Context, nm NewMessage, now time.Time) (AppendResult, error) {
	mem, err := a.member(ctx, nm.RoomID, nm.UserID)
	if err != nil {
		return AppendResult{}, err
	}
	if !mem.ok {
		if nm.ClientMsgID != "" { // a retry is answered even after the sender left
			if m, err := a.original(ctx, nm); err == nil {
				return AppendResult{Message: m, Dup: true}, nil
			} else if !errors.Is(err, ErrNotFound) {
				return AppendResult{}, err
			}
		}
		return AppendResult{Err: fmt.Errorf("user %d in room %d: %w", nm.UserID, nm.RoomID, ErrNotMember)}, nil
	}
	m := Message{RoomID: nm.RoomID, Seq: a.seqs[nm.RoomID].last + 1, UserID: nm.UserID, Username: mem.username,
		Text: nm.Text, ClientMsgID: nm.ClientMsgID, CreatedAt: now}
	var clientID any // NULL when none, so the retry index ignores it
	if nm.ClientMsgID != "" {
		clientID = nm.ClientMsgID
	}
	st, err := a.stmt(ctx, stmtInsert, insertMessageSQL)
	if err != nil {
		return AppendResult{}, err
	}
	r, err := st.ExecContext(ctx, m.RoomID, m.Seq, m.UserID, m.Text, clientID, micros(now))
	if err != nil {
		return AppendResult{}, err
	}
	if n, err := r.RowsAffected(); err != nil {
		return AppendResult{}, err
	} else if n == 0 { // a retry: the client message id is taken
		m, err := a.original(ctx, nm)
		return AppendResult{Message: m, Dup: true}, err
	}
	if m.ID, err = r.LastInsertId(); err != nil {
		return AppendResult{}, err
	}
	a.seqs[m.RoomID].last = m.Seq
	return AppendResult{Message: m}, nil
}

// member looks up, once per batch, whether a user is in a room and their
// name, and for a member, notes the room's last seq if it is new to the batch.
func (a *appender) member(ctx context.Context, roomID, userID int64) (member, error) {
	key := [2]int64{roomID, userID}
	if mem, ok := a.members[key]; ok {
		return mem, nil
	}
	st, err := a.stmt(ctx, stmtMember, memberSQL)
	if err != nil {
		return member{}, err
	}
	var mem member
	var seq int64
	switch err := st.QueryRowContext(ctx, roomID, userID).Scan(&mem.username, &seq); {
	case err == nil:
		mem.ok = true
		if _, ok := a.seqs[roomID]; !ok {
			a.seqs[roomID] = &roomSeq{stored: seq, last: seq}
			a.rooms = append(a.rooms, roomID)
		}
	case !errors.Is(err, sql.ErrNoRows):
		return member{}, err
	}
	a.members[key] = mem
	return mem, nil
}

func (a *appender) original(ctx context.Context, nm NewMessage) (Message, error) {
	st, err := a.stmt(ctx, stmtOriginal, originalSQL)
	if err != nil {
		return Message{}, err
	}
	return scanMessage(st.QueryRowContext(ctx, nm.RoomID, nm.UserID, nm.ClientMsgID))
}

// saveSeqs writes back the last seq of each room the batch added to.
func (a *appender) saveSeqs(ctx context.Context) error {
	for _, id := range a.rooms {
		rs := a.seqs[id]
		if rs.last == rs.stored {
			continue // the batch held only retries for this room
		}
		st, err := a.stmt(ctx, stmtSaveSeq, saveSeqSQL)
		if err != nil {
			return err
		}
		if _, err := st.ExecContext(ctx, rs.last, id); err != nil {
			return err
		}
	}
	return nil
}

const messageSelect = `SELECT m.id, m.room_id, m.seq, m.user_id, u.username, m.text, m.client_msg_id, m.created_at
	FROM messages m JOIN users u ON u.id = m.user_id`

func scanMessage(row interface{ Scan(...any) error }) (Message, error) {
	var m Message
	var clientID sql.NullString
	var created int64
	if err := row.Scan(&m.ID, &m.RoomID, &m.Seq, &m.UserID, &m.Username, &m.Text, &clientID, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Message{}, ErrNotFound
		}
		return Message{}, err
	}
	m.ClientMsgID, m.CreatedAt = clientID.String, fromMicros(created)
	return m, nil
}

// MessagesBefore returns up to limit (clamped to 1..[MaxMessagesBefore])
// messages of a room with seq < before, newest first; before <= 0 means from
// the newest. hasMore says whether older ones remain. It does not check
// membership.
func (s *Store) MessagesBefore(ctx context.Context, roomID, before int64, limit int) (msgs []Message, hasMore bool, err error) {
	if before <= 0 {
		before = math.MaxInt64
	}
	limit = min(max(limit, 1), MaxMessagesBefore)
	msgs, hasMore, err = s.messages(ctx, messageSelect+` WHERE m.room_id = ? AND m.seq < ? ORDER BY m.seq DESC LIMIT ?`, roomID, before, limit)
	if err != nil {
		return nil, false, fmt.Errorf("messages of room %d before %d: %w", roomID, before, err)
	}
	return msgs, hasMore, nil
}

// MessagesAfter returns up to limit (clamped to 1..[MaxMessagesAfter])
// messages of a room with seq > after, oldest first. hasMore says whether
// newer ones remain. It does not check membership.
func (s *Store) MessagesAfter(ctx context.Context, roomID, after int64, limit int) (msgs []Message, hasMore bool, err error) {
	limit = min(max(limit, 1), MaxMessagesAfter)
	msgs, hasMore, err = s.messages(ctx, messageSelect+` WHERE m.room_id = ? AND m.seq > ? ORDER BY m.seq LIMIT ?`, roomID, after, limit)
	if err != nil {
		return nil, false, fmt.Errorf("messages of room %d after %d: %w", roomID, after, err)
	}
	return msgs, hasMore, nil
}

// messages runs a page query, asking for one row more than limit to learn whether more remain.
func (s *Store) messages(ctx context.Context, q string, roomID, from int64, limit int) ([]Message, bool, error) {
	rows, err := s.r.QueryContext(ctx, q, roomID, from, limit+1)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	msgs := make([]Message, 0, min(limit, 64))
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, false, err
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if len(msgs) > limit {
		return msgs[:limit], true, nil
	}
	return msgs, false, nil
}
