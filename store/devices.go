package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Device is an enrolled agent at rest. Its token is kept only as a hash.
type Device struct {
	ID          string
	UserID      int64
	Fingerprint string
	CreatedAt   time.Time
	LastSeen    time.Time
}

// HashToken is how device and session tokens are stored: the SHA-256 of the
// token, hex. Tokens are 256-bit random, so no salt or slow hash is needed.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// DeviceKey is the form in which device ids are compared: lower-cased, as
// usernames are. Every lookup by id in this package goes through it, and so
// must any map keyed by device id elsewhere.
func DeviceKey(id string) string { return strings.ToLower(id) }

// EnrollDevice records device id for userID with a new token (hashed) and
// fingerprint. Ids compare by [DeviceKey]. The same user enrolling again, in
// any case, replaces the token (the old one stops working) and takes the new
// spelling; an id another user holds gives [ErrConflict].
func (s *Store) EnrollDevice(ctx context.Context, id string, userID int64, tokenHash, fingerprint string) (Device, error) {
	now := s.now().UTC()
	d := Device{ID: id, UserID: userID, Fingerprint: fingerprint, CreatedAt: now, LastSeen: now}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var owner int64
		err := tx.QueryRowContext(ctx, `SELECT user_id FROM devices WHERE id_key = ?`, DeviceKey(id)).Scan(&owner)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, `INSERT INTO devices (id, id_key, user_id, token_hash, fingerprint, created_at, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				id, DeviceKey(id), userID, tokenHash, fingerprint, micros(now), micros(now))
			return err
		case err != nil:
			return err
		case owner != userID:
			return ErrConflict
		}
		_, err = tx.ExecContext(ctx, `UPDATE devices SET id = ?, token_hash = ?, fingerprint = ?, last_seen = ? WHERE id_key = ?`,
			id, tokenHash, fingerprint, micros(now), DeviceKey(id))
		return err
	})
	if err != nil {
		return Device{}, fmt.Errorf("enroll device %q: %w", id, err)
	}
	return d, nil
}

const deviceCols = `id, user_id, fingerprint, created_at, last_seen`

func scanDevice(row interface{ Scan(...any) error }) (Device, error) {
	var d Device
	var created, seen int64
	if err := row.Scan(&d.ID, &d.UserID, &d.Fingerprint, &created, &seen); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Device{}, ErrNotFound
		}
		return Device{}, err
	}
	d.CreatedAt, d.LastSeen = fromMicros(created), fromMicros(seen)
	return d, nil
}

// DeviceByToken finds the device a token belongs to; [ErrNotFound] if none
// (unknown or revoked).
func (s *Store) DeviceByToken(ctx context.Context, tokenHash string) (Device, error) {
	d, err := scanDevice(s.r.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE token_hash = ?`, tokenHash))
	if err != nil {
		return Device{}, fmt.Errorf("device by token: %w", err)
	}
	return d, nil
}

// DeviceByID finds a device by its id in any case; [ErrNotFound] if none.
func (s *Store) DeviceByID(ctx context.Context, id string) (Device, error) {
	d, err := scanDevice(s.r.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE id_key = ?`, DeviceKey(id)))
	if err != nil {
		return Device{}, fmt.Errorf("device %q: %w", id, err)
	}
	return d, nil
}

// Devices lists a user's devices by id.
func (s *Store) Devices(ctx context.Context, userID int64) ([]Device, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE user_id = ? ORDER BY id_key`, userID)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var ds []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		ds = append(ds, d)
	}
	return ds, rows.Err()
}

// TouchDevice records that a device was seen now, with its current fingerprint if not empty.
func (s *Store) TouchDevice(ctx context.Context, id, fingerprint string) error {
	q, args := `UPDATE devices SET last_seen = ? WHERE id_key = ?`, []any{micros(s.now()), DeviceKey(id)}
	if fingerprint != "" {
		q, args = `UPDATE devices SET last_seen = ?, fingerprint = ? WHERE id_key = ?`, []any{micros(s.now()), fingerprint, DeviceKey(id)}
	}
	if _, err := s.w.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("touch device %q: %w", id, err)
	}
	return nil
}

// RevokeDevice deletes a user's device, named in any case, so its token
// stops working, and returns it as it was; [ErrNotFound] if the user has no
// such device.
func (s *Store) RevokeDevice(ctx context.Context, userID int64, id string) (Device, error) {
	d, err := scanDevice(s.w.QueryRowContext(ctx, `DELETE FROM devices WHERE id_key = ? AND user_id = ? RETURNING `+deviceCols, DeviceKey(id), userID))
	if err != nil {
		return Device{}, fmt.Errorf("revoke device %q: %w", id, err)
	}
	return d, nil
}

// P2PSession is an issued peer-to-peer session at rest (the token only hashed).
type P2PSession struct {
	ID, TokenHash, Kind           string
	UserID                        int64
	InitiatorDevice, TargetDevice string
	CreatedAt, ExpiresAt          time.Time
}

// RecordSession stores an issued session, for audit and for matching transfer reports.
func (s *Store) RecordSession(ctx context.Context, p P2PSession) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO p2p_sessions (id, token_hash, kind, user_id, initiator_device, target_device, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, p.ID, p.TokenHash, p.Kind, p.UserID, p.InitiatorDevice, p.TargetDevice, micros(p.CreatedAt), micros(p.ExpiresAt))
	if err != nil {
		return fmt.Errorf("record session: %w", err)
	}
	return nil
}
