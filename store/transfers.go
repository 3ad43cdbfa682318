package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Transfer is a transfer's metadata as its agents reported it; never
// contents. There is one per session of a user, whichever sides reported.
type Transfer struct {
	ID                                    int64
	UserID                                int64
	SessionID, FromDevice, ToDevice, Name string
	Size                                  int64
	BLAKE3                                string
	Outcome, Reason                       string // the verdict over both sides' reports
	DurationMS                            int64
	Direct                                bool
	Path                                  string       // how the agents reached each other: "direct", "nat", "relay" or ""
	Sender, Receiver                      TransferSide // what each side said; zero if it did not report
	CreatedAt                             time.Time    // of the first report
}

// TransferSide is one side's report of a transfer: its outcome ("" if that
// side did not report), why it was not ok, and the path it connected on
// ("" if it did not say).
type TransferSide struct{ Outcome, Reason, Path string }

const transferCols = `id, user_id, session_id, from_device, to_device, name, size, blake3, duration_ms, outcome, reason, direct,
	sender_outcome, sender_reason, receiver_outcome, receiver_reason, path, sender_path, receiver_path, created_at`

func scanTransfer(row interface{ Scan(...any) error }) (Transfer, error) {
	var t Transfer
	var created int64
	err := row.Scan(&t.ID, &t.UserID, &t.SessionID, &t.FromDevice, &t.ToDevice, &t.Name, &t.Size, &t.BLAKE3, &t.DurationMS,
		&t.Outcome, &t.Reason, &t.Direct, &t.Sender.Outcome, &t.Sender.Reason, &t.Receiver.Outcome, &t.Receiver.Reason,
		&t.Path, &t.Sender.Path, &t.Receiver.Path, &created)
	t.CreatedAt = fromMicros(created)
	return t, err
}

// PutTransfer records a report of session sessionID for userID: merge gets
// the transfer stored so far (ID 0 and only UserID and SessionID set if
// there is none) and changes it to what is to be stored. Reports of one
// session by its two sides are merged atomically, in the order they come.
func (s *Store) PutTransfer(ctx context.Context, userID int64, sessionID string, merge func(*Transfer)) (Transfer, error) {
	var t Transfer
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = scanTransfer(tx.QueryRowContext(ctx, `SELECT `+transferCols+` FROM transfers
			WHERE user_id = ? AND session_id = ? ORDER BY id LIMIT 1`, userID, sessionID))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			t = Transfer{UserID: userID, SessionID: sessionID, CreatedAt: s.now().UTC()}
		case err != nil:
			return err
		}
		merge(&t)
		t.UserID, t.SessionID = userID, sessionID
		args := []any{t.FromDevice, t.ToDevice, t.Name, t.Size, t.BLAKE3, t.DurationMS, t.Outcome, t.Reason, t.Direct,
			t.Sender.Outcome, t.Sender.Reason, t.Receiver.Outcome, t.Receiver.Reason, t.Path, t.Sender.Path, t.Receiver.Path}
		if t.ID != 0 {
			_, err = tx.ExecContext(ctx, `UPDATE transfers SET from_device = ?, to_device = ?, name = ?, size = ?, blake3 = ?,
				duration_ms = ?, outcome = ?, reason = ?, direct = ?, sender_outcome = ?, sender_reason = ?,
				receiver_outcome = ?, receiver_reason = ?, path = ?, sender_path = ?, receiver_path = ? WHERE id = ?`, append(args, t.ID)...)
			return err
		}
		return tx.QueryRowContext(ctx, `INSERT INTO transfers (from_device, to_device, name, size, blake3, duration_ms,
			outcome, reason, direct, sender_outcome, sender_reason, receiver_outcome, receiver_reason, path, sender_path, receiver_path,
			user_id, session_id, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			append(args, userID, sessionID, micros(t.CreatedAt))...).Scan(&t.ID)
	})
	if err != nil {
		return Transfer{}, fmt.Errorf("record transfer of session %q: %w", sessionID, err)
	}
	return t, nil
}

// Transfers lists a user's most recent transfers, newest first.
func (s *Store) Transfers(ctx context.Context, userID int64, limit int) ([]Transfer, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+transferCols+` FROM transfers WHERE user_id = ? ORDER BY id DESC LIMIT ?`, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("list transfers: %w", err)
	}
	defer rows.Close()
	var ts []Transfer
	for rows.Next() {
		t, err := scanTransfer(rows)
		if err != nil {
			return nil, fmt.Errorf("list transfers: %w", err)
		}
		ts = append(ts, t)
	}
	return ts, rows.Err()
}
