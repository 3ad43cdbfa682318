package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// SessionByID finds an issued peer-to-peer session; [ErrNotFound] if none.
// Expired sessions are found too: the caller decides what expiry means.
func (s *Store) SessionByID(ctx context.Context, id string) (P2PSession, error) {
	var p P2PSession
	var created, expires int64
	err := s.r.QueryRowContext(ctx, `SELECT id, token_hash, kind, user_id, initiator_device, target_device, created_at, expires_at
		FROM p2p_sessions WHERE id = ?`, id).Scan(&p.ID, &p.TokenHash, &p.Kind, &p.UserID, &p.InitiatorDevice, &p.TargetDevice, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return P2PSession{}, fmt.Errorf("p2p session %q: %w", id, err)
	}
	p.CreatedAt, p.ExpiresAt = fromMicros(created), fromMicros(expires)
	return p, nil
}
