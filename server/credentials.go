package server

import (
	"context"
	"time"

	"github.com/gorilla/websocket"
)

// credentialPoll is how often the server looks for credentials ended by
// another process (`mesh user passwd` writes the database directly).
const credentialPoll = 500 * time.Millisecond

// watchCredentials closes the live sessions whose credentials were ended,
// whoever ended them, until ctx is done. Sessions are checked once per
// change, not once per frame.
func (s *Server) watchCredentials(ctx context.Context) {
	last, err := s.store.LastCredentialChange(ctx)
	if err != nil {
		s.log.Error("credential watch", "err", err)
	}
	t := time.NewTicker(credentialPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changes, err := s.store.CredentialChanges(ctx, last)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("credential watch", "err", err)
			}
			continue
		}
		for _, ch := range changes {
			s.hub.endCredentials(ch.UserID, ch.TokenGen)
			last = ch.Serial
		}
	}
}

// endCredentials closes userID's sessions opened with credentials older
// than generation gen.
func (h *hub) endCredentials(userID, gen int64) {
	for _, cn := range h.sessions(func(cn *conn) bool { return cn.user.ID == userID && cn.user.TokenGen < gen }) {
		if cn.close(websocket.ClosePolicyViolation, "credentials ended by a password change; log in again") {
			h.log.Info("session ended: password changed", "user", cn.user.Username, "device_id", cn.device.ID)
		}
	}
}
