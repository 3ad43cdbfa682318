package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"mesh/agent/peer"
	"mesh/protocol"
	"mesh/transfer"
)

// reportTimeout bounds how long a failed send-file waits to tell the server.
const reportTimeout = 5 * time.Second

// report is a transfer's metadata for the server, as side saw it: never
// contents. path is how the session connected ([peer.PathUnknown] if it
// never did); paths name the transfer when no file got as far as a result.
func report(side string, s protocol.P2PSession, path peer.Path, paths []string, res transfer.Result, outcome, reason string) protocol.TransferReport {
	r := protocol.TransferReport{SessionID: s.SessionID, FromDevice: s.InitiatorDeviceID, ToDevice: s.TargetDeviceID,
		Size: res.Bytes, DurationMS: res.Duration.Milliseconds(), Outcome: outcome, Direct: path != peer.PathRelay,
		Reason: shorten(reason), Side: side, Path: path.Word()}
	var names []string
	for _, f := range res.Files {
		top, _, _ := strings.Cut(f.Name, "/")
		if len(names) == 0 || names[len(names)-1] != top {
			names = append(names, top)
		}
	}
	switch {
	case len(res.Files) == 1:
		r.Name, r.BLAKE3 = res.Files[0].Name, res.Files[0].BLAKE3
	case len(names) == 1:
		r.Name = names[0]
	case len(names) > 1:
		r.Name = fmt.Sprintf("%s and %d more", names[0], len(names)-1)
	case len(paths) > 0:
		r.Name = startName(paths)
	}
	return r
}

// failedSend is the sender's report of a send that failed with err: the
// receiver may never have heard of it, or be gone before it could report.
// Its path is the one a [pathError] in err carries, if the send connected.
func failedSend(s protocol.P2PSession, paths []string, res transfer.Result, err error) protocol.TransferReport {
	outcome := protocol.OutcomeFailed
	switch {
	case errors.Is(err, transfer.ErrMismatch):
		outcome = protocol.OutcomeMismatch
	case errors.Is(err, transfer.ErrCanceled), errors.Is(err, context.Canceled):
		outcome = protocol.OutcomeCanceled
	}
	path := peer.PathUnknown
	if pe := (*pathError)(nil); errors.As(err, &pe) {
		path = pe.path
	}
	return report(protocol.SideSender, s, path, paths, res, outcome, err.Error())
}

// pathError is the error of a send that failed after it connected, with
// the path it connected on, for its report. It reads as err alone.
type pathError struct {
	path peer.Path
	err  error
}

func (e *pathError) Error() string { return e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }

// shorten cuts a reason to [protocol.MaxReason] bytes of valid UTF-8.
func shorten(s string) string {
	if len(s) <= protocol.MaxReason {
		return s
	}
	cut := protocol.MaxReason - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// tell delivers a sender's report: through o.report (the daemon's link)
// if set, else over a WebSocket of its own, for a send-file that runs
// without a daemon. A report that cannot be delivered is logged, never
// the send's error.
func (o SendOptions) tell(ctx context.Context, cfg Config, r protocol.TransferReport, log *slog.Logger) {
	if o.report != nil {
		o.report(r)
		return
	}
	if cfg.Server == "" || cfg.DeviceToken == "" {
		log.Debug("transfer not reported: this agent is not logged in", "session_id", r.SessionID)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout) // a canceled send is still worth reporting
	defer cancel()
	if err := reportOnce(ctx, cfg, r); err != nil {
		log.Warn("could not report the failed send to the server", "session_id", r.SessionID, "err", err)
	}
}

// reportOnce sends r over a WebSocket of its own and returns once the server
// has handled it: frames are handled in order, so the answer to a hello sent
// after it means the report is stored (or refused, with a system.error
// naming it).
func reportOnce(ctx context.Context, cfg Config, r protocol.TransferReport) error {
	addr, err := wsURL(cfg.Server, cfg.DeviceToken, cfg.Insecure)
	if err != nil {
		return err
	}
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, addr, nil)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", cfg.Server, err)
	}
	defer ws.Close()
	defer context.AfterFunc(ctx, func() { _ = ws.Close() })() // unblocks the read
	frames := []struct {
		id      string
		t       protocol.Type
		payload any
	}{
		{"report", protocol.TypeTransferReport, r},
		{"hello", protocol.TypeSystemHello, protocol.Hello{DeviceID: cfg.DeviceID, Version: protocol.Version}},
	}
	for _, f := range frames {
		p, err := json.Marshal(f.payload)
		if err != nil {
			return err
		}
		b, err := protocol.Encode(protocol.Envelope{Type: f.t, ID: f.id, Timestamp: time.Now().UTC(), Payload: p})
		if err != nil {
			return err
		}
		if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
			return fmt.Errorf("send the report: %w", err)
		}
	}
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("wait for the server to take the report: %w", err)
		}
		env, err := protocol.Decode(b)
		if err != nil {
			continue // not ours to judge: the link logs such frames
		}
		switch env.Type {
		case protocol.TypeSystemError:
			var e protocol.Error
			if env.Unmarshal(&e) == nil && e.RefID == "report" {
				return fmt.Errorf("the server refused the report: %s (%s)", e.Message, e.Code)
			}
		case protocol.TypeSystemWelcome:
			var w protocol.Welcome
			if env.Unmarshal(&w) == nil && w.RefID == "hello" {
				_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")) // a courtesy
				return nil
			}
		}
	}
}
