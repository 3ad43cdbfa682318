package server

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"mesh/protocol"
	"mesh/store"
)

// onTransferReport stores an agent's report of a transfer (metadata only).
func (s *Server) onTransferReport(ctx context.Context, c *conn, env protocol.Envelope) error {
	if c.device.ID == "" {
		return wsErr(protocol.CodeForbidden, "only agents (device tokens) report transfers")
	}
	var r protocol.TransferReport
	if err := decodeValid(env, &r); err != nil {
		return err
	}
	t, err := s.store.AddTransfer(ctx, store.Transfer{UserID: c.user.ID, SessionID: r.SessionID, FromDevice: r.FromDevice,
		ToDevice: r.ToDevice, Name: r.Name, Size: r.Size, BLAKE3: r.BLAKE3, DurationMS: r.DurationMS, Outcome: r.Outcome, Direct: r.Direct})
	if err != nil {
		return err
	}
	s.pushFile(ctx, c.user, r)
	s.log.Info("transfer reported", "id", t.ID, "session_id", r.SessionID, "from", r.FromDevice, "to", r.ToDevice,
		"bytes", r.Size, "outcome", r.Outcome, "duration_ms", r.DurationMS)
	return nil
}

type transferAnswer struct {
	ID         int64     `json:"id"`
	SessionID  string    `json:"session_id"`
	FromDevice string    `json:"from_device"`
	ToDevice   string    `json:"to_device"`
	Name       string    `json:"name"`
	Size       int64     `json:"size"`
	BLAKE3     string    `json:"blake3"`
	DurationMS int64     `json:"duration_ms"`
	Outcome    string    `json:"outcome"`
	Direct     bool      `json:"direct"`
	CreatedAt  time.Time `json:"created_at"`
}

func (s *Server) listTransfers(c echo.Context) error {
	ts, err := s.store.Transfers(c.Request().Context(), currentUser(c).ID, 100)
	if err != nil {
		return err
	}
	out := make([]transferAnswer, len(ts))
	for i, t := range ts {
		out[i] = transferAnswer{ID: t.ID, SessionID: t.SessionID, FromDevice: t.FromDevice, ToDevice: t.ToDevice, Name: t.Name,
			Size: t.Size, BLAKE3: t.BLAKE3, DurationMS: t.DurationMS, Outcome: t.Outcome, Direct: t.Direct, CreatedAt: t.CreatedAt}
	}
	return c.JSON(http.StatusOK, map[string]any{"transfers": out})
}
