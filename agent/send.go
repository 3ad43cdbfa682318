package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/quic-go/quic-go"

	"mesh/agent/peer"
	"mesh/protocol"
	"mesh/transfer"
)

// SendOptions are the inputs of `mesh agent send-file`.
type SendOptions struct {
	Paths    []string
	Progress io.Writer // where the progress bar goes (stderr); nil for none
	TTY      bool      // redraw one line rather than print lines
	// report delivers the sender's report of a failed send (see
	// [SendOptions.tell]): the daemon's link; nil opens a WebSocket for it.
	report func(protocol.TransferReport)
}

// SendTo asks the server for a file session with device `to` and sends
// paths to it directly over QUIC. It succeeds only when the receiver has
// confirmed every file's BLAKE3. No daemon needs to run on this machine.
// A send that fails, from a refused session on, is reported to the server
// with the reason, so it shows in the user's transfer list.
func SendTo(ctx context.Context, cfg Config, dir, to string, o SendOptions, log *slog.Logger) (transfer.Result, error) {
	if err := cfg.Validate(); err != nil {
		return transfer.Result{}, err
	}
	d, err := openDialer(ctx, cfg, dir, true, log)
	if err != nil {
		return transfer.Result{}, err
	}
	defer d.close()
	var lost error // why the previous attempt's path broke
	var lostSess protocol.P2PSession
	var lostRes transfer.Result
	for attempt := 1; ; attempt++ {
		sess, err := newClient(cfg.Server, cfg.DeviceToken).session(ctx, protocol.SessionFile, to, d.cands)
		if err != nil && lost != nil { // the break is the news; the failed retry says why it stays broken
			err = fmt.Errorf("%w (and reconnecting failed: %v)", lost, err)
			o.tell(ctx, cfg, failedSend(lostSess, o.Paths, lostRes, err), log)
			return lostRes, err
		}
		if err != nil {
			err = fmt.Errorf("ask the server for a session with %s: %w", to, err)
			var ae *APIError
			if errors.As(err, &ae) && !errors.Is(err, ErrRevoked) { // the server answered: it can take a report
				none := protocol.P2PSession{SessionID: "send-" + randomID(), InitiatorDeviceID: cfg.DeviceID, TargetDeviceID: to}
				o.tell(ctx, cfg, failedSend(none, o.Paths, transfer.Result{}, err), log)
			}
			return transfer.Result{}, &notConnectedError{err}
		}
		res, err := sendOver(ctx, cfg, d, sess, o, log)
		if err == nil || attempt > maxReconnects || !pathLost(err) || ctx.Err() != nil {
			if err != nil {
				o.tell(ctx, cfg, failedSend(sess, o.Paths, res, err), log)
			}
			return res, err
		}
		// The path broke mid-transfer (a network change, a NAT that
		// forgot us): ask again, over whatever path works now; the
		// receiver keeps the verified chunks, so the send resumes.
		lost, lostSess, lostRes = err, sess, res
		log.Warn("path lost mid-transfer; reconnecting", "attempt", attempt, "err", err)
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "[mesh] connection lost (%v); reconnecting to resume\n", err)
		}
		gctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		d.cands = gather(gctx, cfg, d.ep, log)
		cancel()
	}
}

// maxReconnects bounds the new sessions one send asks for after its path broke.
const maxReconnects = 3

// pathLost reports whether a send failed because the connection went
// away after it was made (worth a new session), not by a refusal.
func pathLost(err error) bool {
	var nc *notConnectedError
	var timeout net.Error
	var idle *quic.IdleTimeoutError
	return !errors.As(err, &nc) && (errors.Is(err, transfer.ErrStalled) || errors.As(err, &idle) || errors.As(err, &timeout) && timeout.Timeout())
}

// DirectSession is the low-level form: a session already issued by the
// server, given on the command line.
type DirectSession struct {
	SessionID, Token, PeerAddr, Fingerprint string
}

// SendDirect sends over a session given by hand (--session-id, --peer-addr,
// --token, and --fingerprint or, without it, the target's pin from the
// server: see pinTarget).
func SendDirect(ctx context.Context, cfg Config, dir string, ds DirectSession, o SendOptions, log *slog.Logger) (transfer.Result, error) {
	host, portS, err := net.SplitHostPort(ds.PeerAddr)
	port, perr := strconv.Atoi(portS)
	if err != nil || perr != nil {
		return transfer.Result{}, fmt.Errorf("--peer-addr %q: want the target's IP:PORT from the session answer, e.g. 203.0.113.5:5000", ds.PeerAddr)
	}
	sess := protocol.P2PSession{SessionID: ds.SessionID, SessionToken: ds.Token, Kind: protocol.SessionFile,
		InitiatorDeviceID: cfg.DeviceID, TargetDeviceID: ds.PeerAddr, Endpoints: protocol.Endpoints{Target: protocol.Endpoint{IP: host, Port: port, Fingerprint: ds.Fingerprint}}}
	if err := pinTarget(ctx, cfg, &sess); err != nil { // without --fingerprint, asks the server
		return transfer.Result{}, err
	}
	return send(ctx, cfg, dir, sess, o, log)
}

// send is the low-level send over a session given by hand: its own
// dialer, the session's addresses only, one try, its failure reported.
func send(ctx context.Context, cfg Config, dir string, sess protocol.P2PSession, o SendOptions, log *slog.Logger) (transfer.Result, error) {
	d, err := openDialer(ctx, cfg, dir, false, log)
	if err != nil {
		return transfer.Result{}, err
	}
	defer d.close()
	res, err := sendOver(ctx, cfg, d, sess, o, log)
	if err != nil {
		o.tell(ctx, cfg, failedSend(sess, o.Paths, res, err), log)
	}
	return res, err
}

// sendOver connects for sess with d and sends o.Paths; the caller reports
// a failure.
func sendOver(ctx context.Context, cfg Config, d *dialer, sess protocol.P2PSession, o SendOptions, log *slog.Logger) (transfer.Result, error) {
	start := time.Now()
	ps, err := dialRetry(ctx, d.ep, sess)
	if err != nil {
		if de := (*peer.DenyError)(nil); !errors.As(err, &de) && ctx.Err() == nil {
			err = fmt.Errorf("receiver unreachable: %w", err)
		}
		return transfer.Result{}, &notConnectedError{err}
	}
	defer ps.Close("done")
	if o.Progress != nil {
		fmt.Fprintln(o.Progress, pathLine(cfg, ps.Path))
	}
	log.Info("connected to peer", "session_id", sess.SessionID, "peer", ps.Conn.RemoteAddr().String(), "path", ps.Path.String(),
		"connect_ms", time.Since(start).Milliseconds())
	bar := newProgress(o.Progress, o.TTY)
	res, err := transfer.Send(ctx, ps.Stream, o.Paths, transfer.Options{Progress: bar.update})
	bar.done()
	// A vanished receiver shows as the transfer's stall timeout while data
	// flows, or as QUIC's idle timeout while it waits.
	const rerun = "once it runs again, rerun this command: it resumes from the verified data"
	var timeout net.Error
	if errors.Is(err, transfer.ErrStalled) {
		err = fmt.Errorf("send to %s: %w; %s", sess.TargetDeviceID, err, rerun)
	} else if errors.As(err, &timeout) && timeout.Timeout() {
		err = fmt.Errorf("send to %s: the receiving agent stopped answering (%w); %s", sess.TargetDeviceID, err, rerun)
	} else if err != nil {
		err = fmt.Errorf("send to %s: %w", sess.TargetDeviceID, err)
	}
	if err != nil {
		return res, &pathError{ps.Path, err} // for the caller's report
	}
	log.Info("files sent", "session_id", sess.SessionID, "files", len(res.Files), "bytes", res.Bytes,
		"resumed_bytes", res.Resumed, "duration", res.Duration.Round(time.Millisecond), "mb_per_s", mbps(res.Bytes, res.Duration),
		"path", ps.Path.String())
	return res, nil
}

// dialRetry dials the target, retrying briefly while it has not yet heard of
// the session: the server tells both sides at once, and the news may reach
// the target a moment after the answer reached us.
func dialRetry(ctx context.Context, ep *peer.Endpoint, sess protocol.P2PSession) (*peer.Session, error) {
	wait := 50 * time.Millisecond
	deadline := time.Now().Add(5 * time.Second)
	for {
		ps, err := ep.Dial(ctx, sess)
		var de *peer.DenyError
		if err == nil || !errors.As(err, &de) || de.Reason != peer.ReasonUnknown || time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("connect to %s at %s:%d: %w", sess.TargetDeviceID, sess.Endpoints.Target.IP, sess.Endpoints.Target.Port, err)
			}
			return ps, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Second)
	}
}

// notConnectedError is a send that failed before the receiver was reached,
// so only the sender can tell anyone about it.
type notConnectedError struct{ err error }

func (e *notConnectedError) Error() string { return e.err.Error() }
func (e *notConnectedError) Unwrap() error { return e.err }
