package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"mesh/protocol"
	"mesh/store"
)

// onTransferReport stores an agent's report of a transfer (metadata only).
// Both sides of a session may report it; their reports merge into one
// transfer of the reporting device's user.
func (s *Server) onTransferReport(ctx context.Context, cn *conn, env protocol.Envelope) error {
	if cn.device.ID == "" {
		return refuse(kindForbidden, codeForbidden, "only agents (device tokens) report transfers")
	}
	var r protocol.TransferReport
	if err := decodeValid(env, &r); err != nil {
		return err
	}
	if r.Side == "" {
		r.Side = protocol.SideReceiver // agents that predate the field reported only from there
	}
	t, err := s.store.PutTransfer(ctx, cn.user.ID, r.SessionID, func(t *store.Transfer) { mergeReport(t, r) })
	if err != nil {
		return err
	}
	if r.Side == protocol.SideReceiver { // "file received" is the receiver's news to tell
		s.pushFile(ctx, cn.user, r)
	}
	s.log.Info("transfer reported", "id", t.ID, "session_id", r.SessionID, "side", r.Side, "from", r.FromDevice, "to", r.ToDevice,
		"bytes", r.Size, "outcome", r.Outcome, "reason", r.Reason, "duration_ms", r.DurationMS, "verdict", t.Outcome)
	return nil
}

// mergeReport folds one side's report into the transfer stored so far. The
// receiver knows best what landed, so its name, size, hash and duration
// win; the sender's fill in what the receiver did not say. The verdict is
// ok once the receiver confirmed the data; otherwise the gravest outcome
// either side reported, with that side's reason (the receiver's on a tie).
// The path is the receiver's if it said, else the sender's.
func mergeReport(t *store.Transfer, r protocol.TransferReport) {
	first := t.ID == 0
	mine := store.TransferSide{Outcome: r.Outcome, Reason: r.Reason, Path: r.Path}
	if r.Side == protocol.SideSender {
		t.Sender = mine
	} else {
		t.Receiver = mine
	}
	authoritative := first || r.Side == protocol.SideReceiver
	set := func(dst *string, v string) {
		if v != "" && (authoritative || *dst == "") {
			*dst = v
		}
	}
	set(&t.FromDevice, r.FromDevice)
	set(&t.ToDevice, r.ToDevice)
	set(&t.Name, r.Name)
	set(&t.BLAKE3, r.BLAKE3)
	if authoritative || t.Size == 0 {
		t.Size = r.Size
	}
	if authoritative || t.DurationMS == 0 {
		t.DurationMS = r.DurationMS
	}
	t.Direct = t.Direct || r.Direct
	t.Path = t.Receiver.Path
	if t.Path == "" {
		t.Path = t.Sender.Path
	}
	t.Outcome, t.Reason = t.Receiver.Outcome, t.Receiver.Reason
	if t.Receiver.Outcome != protocol.OutcomeOK && gravity(t.Sender.Outcome) > gravity(t.Receiver.Outcome) {
		t.Outcome, t.Reason = t.Sender.Outcome, t.Sender.Reason
	}
}

// gravity orders outcomes for the verdict: a mismatch says the most, a
// side that gave up more than a broken connection.
func gravity(outcome string) int {
	switch outcome {
	case protocol.OutcomeMismatch:
		return 4
	case protocol.OutcomeCanceled:
		return 3
	case protocol.OutcomeFailed:
		return 2
	case protocol.OutcomeOK:
		return 1
	}
	return 0
}

type transferAnswer struct {
	ID         int64       `json:"id"`
	SessionID  string      `json:"session_id"`
	FromDevice string      `json:"from_device"`
	ToDevice   string      `json:"to_device"`
	Name       string      `json:"name"`
	Size       int64       `json:"size"`
	BLAKE3     string      `json:"blake3"`
	DurationMS int64       `json:"duration_ms"`
	Outcome    string      `json:"outcome"`
	Reason     string      `json:"reason,omitempty"` // why the outcome is not ok
	Direct     bool        `json:"direct"`
	Path       string      `json:"path"`               // "direct", "nat", "relay", or "" if no side said
	Sender     *sideAnswer `json:"sender,omitempty"`   // what the sending agent reported, if it did
	Receiver   *sideAnswer `json:"receiver,omitempty"` // what the receiving agent reported, if it did
	CreatedAt  time.Time   `json:"created_at"`
}

type sideAnswer struct {
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	Path    string `json:"path,omitempty"`
}

func sideOf(s store.TransferSide) *sideAnswer {
	if s.Outcome == "" {
		return nil
	}
	return &sideAnswer{Outcome: s.Outcome, Reason: s.Reason, Path: s.Path}
}

func (s *Server) listTransfers(c echo.Context) error {
	ts, err := s.store.Transfers(c.Request().Context(), currentUser(c).ID, 100)
	if err != nil {
		return err
	}
	out := make([]transferAnswer, len(ts))
	for i, t := range ts {
		out[i] = transferAnswer{ID: t.ID, SessionID: t.SessionID, FromDevice: t.FromDevice, ToDevice: t.ToDevice, Name: t.Name,
			Size: t.Size, BLAKE3: t.BLAKE3, DurationMS: t.DurationMS, Outcome: t.Outcome, Reason: t.Reason, Direct: t.Direct,
			Path: t.Path, Sender: sideOf(t.Sender), Receiver: sideOf(t.Receiver), CreatedAt: t.CreatedAt}
	}
	return c.JSON(http.StatusOK, map[string]any{"transfers": out})
}

// onTransferStart is transfer.start from the web app: it asks the agent on
// one of the user's devices to send files to another of them. The server
// checks ownership and relays; the agent checks its send_dirs and sends
// directly, and the outcome arrives as a transfer.report like any other.
func (s *Server) onTransferStart(ctx context.Context, cn *conn, env protocol.Envelope) error {
	var req protocol.TransferStart
	if err := decodeValid(env, &req); err != nil {
		return err
	}
	req.RefID = ""
	for _, id := range []*string{&req.FromDevice, &req.ToDevice} {
		d, err := s.store.DeviceByID(ctx, *id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && d.UserID != cn.user.ID) {
			return refuse(kindNotFound, codeDeviceNotFound, "you have no device %q", *id)
		} else if err != nil {
			return err
		}
		*id = d.ID // as the agents' configs spell it: they compare exactly
	}
	fc := s.hub.deviceConn(req.FromDevice)
	if fc == nil {
		return refuse(kindConflict, codeDeviceOffline, "device %q is offline: start 'mesh agent run' on it", req.FromDevice)
	}
	ev, err := s.hub.event(protocol.TypeTransferStart, cn.user.Username, req)
	if err != nil {
		return err
	}
	fc.enqueue(ev)
	req.RefID = env.ID
	cn.sendTo(protocol.TypeTransferStart, req) // accepted: the browser waits for the report
	s.log.Info("transfer requested", "user", cn.user.Username, "from", req.FromDevice, "to", req.ToDevice, "paths", len(req.Paths))
	return nil
}
