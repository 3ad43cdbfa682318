package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// NotifySettings is a user's push target and preferences.
type NotifySettings struct {
	UserID      int64
	GotifyURL   string
	GotifyToken string   // an application token; never shown back in full
	KindsOff    []string // kinds the user turned off
	LastError   string   // why the last push failed for good, if it did
	LastErrorAt time.Time
}

// NotifySettings returns userID's settings; a user who never set any gets
// the zero settings (and no error).
func (s *Store) NotifySettings(ctx context.Context, userID int64) (NotifySettings, error) {
	n := NotifySettings{UserID: userID}
	var off string
	var errAt int64
	err := s.r.QueryRowContext(ctx, `SELECT gotify_url, gotify_token, kinds_off, last_error, last_error_at
		FROM notify_settings WHERE user_id = ?`, userID).Scan(&n.GotifyURL, &n.GotifyToken, &off, &n.LastError, &errAt)
	if errors.Is(err, sql.ErrNoRows) {
		return n, nil
	} else if err != nil {
		return n, fmt.Errorf("notify settings: %w", err)
	}
	if off != "" {
		n.KindsOff = strings.Split(off, ",")
	}
	if errAt != 0 {
		n.LastErrorAt = fromMicros(errAt)
	}
	return n, nil
}

// SetNotifySettings stores the target and kinds of n (not its error fields;
// a new target clears the last error).
func (s *Store) SetNotifySettings(ctx context.Context, n NotifySettings) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO notify_settings (user_id, gotify_url, gotify_token, kinds_off, updated_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(user_id) DO UPDATE SET
			last_error = CASE WHEN notify_settings.gotify_url != excluded.gotify_url OR notify_settings.gotify_token != excluded.gotify_token
				THEN '' ELSE notify_settings.last_error END,
			gotify_url = excluded.gotify_url, gotify_token = excluded.gotify_token,
			kinds_off = excluded.kinds_off, updated_at = excluded.updated_at`,
		n.UserID, n.GotifyURL, n.GotifyToken, strings.Join(n.KindsOff, ","), micros(s.now()))
	if err != nil {
		return fmt.Errorf("set notify settings: %w", err)
	}
	return nil
}

// SetNotifyError records why pushes to userID fail for good ("" clears it).
func (s *Store) SetNotifyError(ctx context.Context, userID int64, msg string) error {
	now := micros(s.now())
	_, err := s.w.ExecContext(ctx, `INSERT INTO notify_settings (user_id, last_error, last_error_at, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(user_id) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at`,
		userID, msg, now, now)
	if err != nil {
		return fmt.Errorf("set notify error: %w", err)
	}
	return nil
}

// MuteRoom mutes (or unmutes) pushes from roomID for userID.
func (s *Store) MuteRoom(ctx context.Context, userID, roomID int64, mute bool) error {
	q := `INSERT OR IGNORE INTO notify_mutes (user_id, room_id) VALUES (?, ?)`
	if !mute {
		q = `DELETE FROM notify_mutes WHERE user_id = ? AND room_id = ?`
	}
	if _, err := s.w.ExecContext(ctx, q, userID, roomID); err != nil {
		return fmt.Errorf("mute room: %w", err)
	}
	return nil
}

// MutedRooms lists the rooms userID muted.
func (s *Store) MutedRooms(ctx context.Context, userID int64) ([]int64, error) {
	return s.ids(ctx, `SELECT room_id FROM notify_mutes WHERE user_id = ? ORDER BY room_id`, userID)
}

// Push is one notification in the outbox.
type Push struct {
	ID                int64
	IdemKey           string // one push per event and user: a second Enqueue with it is ignored
	UserID            int64
	Kind              string
	RoomID            int64
	Title, Message    string
	Priority          int
	ClickURL          string
	State             string
	Attempts          int
	NextAt, CreatedAt time.Time
	LastError         string
}

// Push states.
const (
	PushPending = "pending"
	PushSent    = "sent"
	PushFailed  = "failed" // gave up: rejected, or out of attempts
	PushMerged  = "merged" // sent as part of a coalesced push
)

// EnqueuePush adds p to the outbox, due now; it reports false if a push
// with the same IdemKey exists (the event was already queued).
func (s *Store) EnqueuePush(ctx context.Context, p Push) (bool, error) {
	now := micros(s.now())
	res, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO notify_outbox
		(idem_key, user_id, kind, room_id, title, message, priority, click_url, next_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.IdemKey, p.UserID, p.Kind, p.RoomID, p.Title, p.Message, p.Priority, p.ClickURL, now, now)
	if err != nil {
		return false, fmt.Errorf("enqueue push: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// DuePushUsers lists up to limit users with a pending push that is due.
func (s *Store) DuePushUsers(ctx context.Context, limit int) ([]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT DISTINCT user_id FROM notify_outbox
		WHERE state = 'pending' AND next_at <= ? LIMIT ?`, micros(s.now()), limit)
	if err != nil {
		return nil, fmt.Errorf("due pushes: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("due pushes: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// PendingPushes returns all of userID's pending pushes, due or not, oldest
// first: a push that goes out takes along what waits for the same room.
func (s *Store) PendingPushes(ctx context.Context, userID int64) ([]Push, error) {
	return s.pushes(ctx, `WHERE user_id = ? AND state = 'pending' ORDER BY id LIMIT 1000`, userID)
}

// ResumePushes makes every pending push due now: a restart is a good
// moment to retry (the outage may be over) rather than wait out a backoff.
func (s *Store) ResumePushes(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE notify_outbox SET next_at = ? WHERE state = 'pending'`, micros(s.now())); err != nil {
		return fmt.Errorf("resume pushes: %w", err)
	}
	return nil
}

// NextPushAt is when the earliest pending push falls due (zero if none).
func (s *Store) NextPushAt(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT MIN(next_at) FROM notify_outbox WHERE state = 'pending'`).Scan(&next); err != nil {
		return time.Time{}, fmt.Errorf("next push: %w", err)
	}
	if !next.Valid {
		return time.Time{}, nil
	}
	return fromMicros(next.Int64), nil
}

// FinishPushes marks pushes ids sent (or failed, merged) at once.
func (s *Store) FinishPushes(ctx context.Context, state, lastError string, ids ...int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE notify_outbox SET state = ?, last_error = ?, sent_at = ?, attempts = attempts + 1
				WHERE id = ? AND state = 'pending'`, state, lastError, micros(s.now()), id); err != nil {
				return fmt.Errorf("finish push %d: %w", id, err)
			}
		}
		return nil
	})
}

// RetryPush counts a failed attempt and makes push id due again after wait.
func (s *Store) RetryPush(ctx context.Context, id int64, wait time.Duration, lastError string) error {
	_, err := s.w.ExecContext(ctx, `UPDATE notify_outbox SET attempts = attempts + 1, next_at = ?, last_error = ?
		WHERE id = ? AND state = 'pending'`, micros(s.now().Add(wait)), lastError, id)
	if err != nil {
		return fmt.Errorf("retry push: %w", err)
	}
	return nil
}

// DelayPushes makes the pending pushes ids due after wait, without counting
// an attempt (the user's rate limit holds them back).
func (s *Store) DelayPushes(ctx context.Context, wait time.Duration, ids ...int64) error {
	next := s.now().Add(wait)
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE notify_outbox SET next_at = ? WHERE id = ? AND state = 'pending'`, micros(next), id); err != nil {
				return fmt.Errorf("delay push: %w", err)
			}
		}
		return nil
	})
}

// PushesFor lists userID's pushes, newest first (for tests and support).
func (s *Store) PushesFor(ctx context.Context, userID int64) ([]Push, error) {
	return s.pushes(ctx, `WHERE user_id = ? ORDER BY id DESC LIMIT 1000`, userID)
}

func (s *Store) pushes(ctx context.Context, where string, userID int64) ([]Push, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, idem_key, user_id, kind, room_id, title, message, priority, click_url,
		state, attempts, next_at, created_at, last_error FROM notify_outbox `+where, userID)
	if err != nil {
		return nil, fmt.Errorf("pushes: %w", err)
	}
	defer rows.Close()
	var ps []Push
	for rows.Next() {
		var p Push
		var next, created int64
		if err := rows.Scan(&p.ID, &p.IdemKey, &p.UserID, &p.Kind, &p.RoomID, &p.Title, &p.Message, &p.Priority, &p.ClickURL,
			&p.State, &p.Attempts, &next, &created, &p.LastError); err != nil {
			return nil, fmt.Errorf("pushes: %w", err)
		}
		p.NextAt, p.CreatedAt = fromMicros(next), fromMicros(created)
		ps = append(ps, p)
	}
	return ps, rows.Err()
}
