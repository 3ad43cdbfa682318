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
	sess, err := newClient(cfg.Server, cfg.DeviceToken).session(ctx, protocol.SessionFile, to)
	if err != nil {
		err = fmt.Errorf("ask the server for a session with %s: %w", to, err)
		var ae *APIError
		if errors.As(err, &ae) && !errors.Is(err, ErrRevoked) { // the server answered: it can take a report
			none := protocol.P2PSession{SessionID: "send-" + randomID(), InitiatorDeviceID: cfg.DeviceID, TargetDeviceID: to}
			o.tell(ctx, cfg, failedSend(none, o.Paths, transfer.Result{}, err), log)
		}
		return transfer.Result{}, &notConnectedError{err}
	}
	return send(ctx, cfg, dir, sess, o, log)
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

func send(ctx context.Context, cfg Config, dir string, sess protocol.P2PSession, o SendOptions, log *slog.Logger) (transfer.Result, error) {
	id, err := peer.LoadOrCreateIdentity(dir)
	if err != nil {
		return transfer.Result{}, err
	}
	pc, err := net.ListenPacket("udp", ":0") // the daemon may hold quic_listen
	if err != nil {
		return transfer.Result{}, fmt.Errorf("open a UDP socket: %w", err)
	}
	ep, err := peer.NewEndpoint(peer.Config{Identity: id, DeviceID: cfg.DeviceID, User: cfg.Username,
		Sessions: peer.NewSessionCache(nil), Log: log.With("component", "quic")}, pc)
	if err != nil {
		_ = pc.Close() // the endpoint error is the one worth reporting
		return transfer.Result{}, err
	}
	defer ep.Close()
	ps, err := dialRetry(ctx, ep, sess)
	if err != nil {
		if de := (*peer.DenyError)(nil); !errors.As(err, &de) && ctx.Err() == nil {
			err = fmt.Errorf("receiver unreachable: %w", err)
		}
		o.tell(ctx, cfg, failedSend(sess, o.Paths, transfer.Result{}, err), log)
		return transfer.Result{}, &notConnectedError{err}
	}
	defer ps.Close("done")
	log.Info("connected to peer", "session_id", sess.SessionID, "peer", net.JoinHostPort(sess.Endpoints.Target.IP, strconv.Itoa(sess.Endpoints.Target.Port)), "direct", true)
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
		o.tell(ctx, cfg, failedSend(sess, o.Paths, res, err), log)
		return res, err
	}
	log.Info("files sent", "session_id", sess.SessionID, "files", len(res.Files), "bytes", res.Bytes,
		"resumed_bytes", res.Resumed, "duration", res.Duration.Round(time.Millisecond), "mb_per_s", mbps(res.Bytes, res.Duration))
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
