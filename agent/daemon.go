package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/sync/errgroup"

	"mesh/agent/peer"
	"mesh/protocol"
	"mesh/transfer"
)

// Daemon is `mesh agent run`: it stays connected to the server, learns of
// sessions meant for this device, and receives files over QUIC.
type Daemon struct {
	cfg      Config
	dir      string
	log      *slog.Logger
	inbox    string
	id       peer.Identity
	sessions *peer.SessionCache
	link     *link
	ep       *peer.Endpoint // set by Run before the link starts
	parts    *partSweeper
}

// NewDaemon checks cfg and prepares the inbox and the QUIC identity kept in dir.
func NewDaemon(cfg Config, dir string, log *slog.Logger) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	inbox, err := cfg.InboxDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(inbox, 0o700); err != nil {
		return nil, fmt.Errorf("create inbox: %w", err)
	}
	id, err := peer.LoadOrCreateIdentity(dir)
	if err != nil {
		return nil, err
	}
	// Received files get their modes less this process's umask. Reading it
	// may mean setting it for an instant (not on Linux): read it now, before
	// any goroutine of ours creates files.
	umask := transfer.ProcessUmask()
	log.Debug("received files follow the umask", "umask", fmt.Sprintf("%04o", umask))
	parts := &partSweeper{inbox: inbox, maxAge: cfg.PartMaxAge, now: time.Now, log: log.With("component", "inbox")}
	return &Daemon{cfg: cfg, dir: dir, log: log, inbox: inbox, id: id, sessions: peer.NewSessionCache(nil), parts: parts}, nil
}

// Run serves QUIC on pc and keeps the server link until ctx is done. It
// returns [ErrRevoked] if the server refuses this device, and only after
// the sends the server asked for have ended.
func (d *Daemon) Run(ctx context.Context, pc net.PacketConn) error {
	ep, err := peer.NewEndpoint(peer.Config{
		Identity: d.id, DeviceID: d.cfg.DeviceID, User: d.cfg.Username, AcceptFrom: d.cfg.AcceptFrom,
		Sessions: d.sessions, Log: d.log.With("component", "quic"),
	}, pc)
	if err != nil {
		return err
	}
	defer ep.Close()
	g, ctx := errgroup.WithContext(ctx)
	// Sends the web app asked for outlive the event that started them;
	// they are added only from the link's goroutine, so all are added
	// before g.Wait returns.
	var sends sync.WaitGroup
	port := pc.LocalAddr().(*net.UDPAddr).Port
	d.link = &link{cfg: d.cfg, log: d.log.With("component", "link"),
		onEvent: func(env protocol.Envelope) { d.onEvent(ctx, &sends, env) },
		hello:   protocol.Hello{DeviceID: d.cfg.DeviceID, QUICPort: port, Fingerprint: d.id.Fingerprint, Version: protocol.Version}}
	rc := peer.NewRelayConn(d.link.sendBinary)
	defer rc.Close()
	d.link.onRelay = rc.Deliver
	ep.UseRelay(rc)
	d.ep = ep
	d.log.Info("agent running", "device_id", d.cfg.DeviceID, "quic", pc.LocalAddr().String(), "inbox", d.inbox, "fingerprint", d.id.Fingerprint)
	g.Go(func() error { return ep.Serve(ctx, d.handle) })
	g.Go(func() error { return d.link.run(ctx) })
	g.Go(func() error { announcer(ctx, d.cfg, ep, d.link, d.log.With("component", "nat")); return nil })
	g.Go(func() error { d.parts.run(ctx); return nil })
	err = g.Wait()
	sends.Wait()
	return err
}

// onEvent handles one event from the server; a send it starts runs in a
// goroutine counted by sends, until it ends or ctx is done.
func (d *Daemon) onEvent(ctx context.Context, sends *sync.WaitGroup, env protocol.Envelope) {
	if env.Type == protocol.TypeTransferStart {
		var req protocol.TransferStart
		if err := env.Unmarshal(&req); err != nil {
			d.log.Warn("bad transfer.start", "err", err)
			return
		}
		sends.Go(func() { d.startTransfer(ctx, env.From, req) })
		return
	}
	if env.Type != protocol.TypeP2PSessionCreated {
		return
	}
	var s protocol.P2PSession
	if err := env.Unmarshal(&s); err != nil {
		d.log.Warn("bad p2p.session.created", "err", err)
		return
	}
	if s.TargetDeviceID == d.cfg.DeviceID {
		d.sessions.Add(s, env.From)
		expect(ctx, d.ep, d.link, s)
		d.log.Debug("session expected", "session_id", s.SessionID, "kind", s.Kind, "from", s.InitiatorDeviceID, "user", env.From)
	}
}

// handle runs one authenticated peer session.
func (d *Daemon) handle(ctx context.Context, ps *peer.Session) {
	switch ps.Session.Kind {
	case protocol.SessionFile:
		d.receive(ctx, ps)
	default:
		d.log.Info("session kind not served by this agent", "kind", ps.Session.Kind, "session_id", ps.Session.SessionID)
		_ = ps.Close("this agent does not serve " + ps.Session.Kind + " sessions") // nothing more to tell the peer
	}
}

func (d *Daemon) receive(ctx context.Context, ps *peer.Session) {
	log := d.log.With("session_id", ps.Session.SessionID, "from", ps.Session.InitiatorDeviceID, "user", ps.FromUser)
	log.Info("receiving files")
	defer d.parts.receiving()()
	r := transfer.Receiver{Inbox: d.inbox}
	res, err := r.Receive(ctx, ps.Stream)
	if err != nil && len(res.Files) == 0 && doctorProbe(ps) {
		log.Info("connection test by mesh agent doctor", "path", ps.Path.String())
		return // not a transfer: nothing to list
	}
	outcome, reason := protocol.OutcomeOK, ""
	if err != nil {
		outcome, reason = protocol.OutcomeFailed, err.Error()
		for _, f := range res.Files {
			if f.Status == transfer.StatusMismatch {
				outcome = protocol.OutcomeMismatch
			}
		}
		log.Warn("receive failed", "err", err, "files", len(res.Files), "bytes", res.Bytes)
	} else {
		log.Info("files received", "files", len(res.Files), "bytes", res.Bytes, "resumed_bytes", res.Resumed,
			"duration", res.Duration.Round(time.Millisecond), "mb_per_s", mbps(res.Bytes, res.Duration))
	}
	_ = ps.Close("done") // the transfer's own messages told the peer how it went
	d.link.send(protocol.TypeTransferReport, report(protocol.SideReceiver, ps.Session, ps.Path, nil, res, outcome, reason))
}

func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}

// doctorProbe reports whether the initiator hung up as `mesh agent doctor
// --to` does, having sent nothing.
func doctorProbe(ps *peer.Session) bool {
	var app *quic.ApplicationError
	return errors.As(context.Cause(ps.Conn.Context()), &app) && app.Remote && app.ErrorMessage == doctorHangUp
}
