package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/term"

	"mesh/agent/peer"
	"mesh/protocol"
	"mesh/terminal"
)

// DetachKey is the byte that detaches join-terminal: Ctrl-], as in telnet.
const DetachKey = 0x1d

// registerWait is how long share-terminal waits for the server to confirm
// the share before it prints how to join anyway.
const registerWait = 5 * time.Second

// drainWait bounds how long a finished share waits for its viewers to
// receive the exit (peer.Session.Close waits up to 5 s for a peer to hang up).
const drainWait = 6 * time.Second

// ShareOptions are the inputs of `mesh agent share-terminal`.
type ShareOptions struct {
	Command    []string // what to run; empty means $SHELL, else /bin/sh
	AllowInput bool     // viewers who may watch may also type
	Allow      []string // other users who may watch; the sharer's own user always may
	NoWeb      bool     // no browser watching: shell joiners only, and the server never sees the output
	Record     string   // an asciicast v2 file to write, "" for none
	ShareID    string   // "" for a random one
	Stdin      *os.File // the sharer's terminal: raw mode while sharing, restored on every exit
	Stdout     io.Writer
	Stderr     io.Writer // notes for the sharer: who is watching
}

// ShareTerminal runs the command in a PTY and shares it until it exits:
// shell users join directly over QUIC on pc, browsers watch through the
// server. The sharer's terminal stays the command's terminal. It returns
// the command's exit code (128+signal if a signal ended it).
func ShareTerminal(ctx context.Context, cfg Config, dir string, pc net.PacketConn, o ShareOptions, log *slog.Logger) (int, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	id, err := peer.LoadOrCreateIdentity(dir)
	if err != nil {
		return 0, err
	}
	if o.ShareID == "" {
		o.ShareID = newShareID()
	} else if err := (protocol.TerminalRef{ShareID: o.ShareID}).Validate(); err != nil {
		return 0, fmt.Errorf("--share-id: %w", err)
	}
	if len(o.Command) == 0 {
		o.Command = []string{os.Getenv("SHELL")}
		if o.Command[0] == "" {
			o.Command[0] = "/bin/sh"
		}
	}
	sh := &share{cfg: cfg, o: o, log: log, cols: 80, rows: 24, sessions: peer.NewSessionCache(nil)}
	if fd := sh.ttyFD(); fd >= 0 {
		if c, r, err := term.GetSize(fd); err == nil && c > 0 && r > 0 {
			sh.cols, sh.rows = min(c, protocol.MaxTerminalSize), min(r, protocol.MaxTerminalSize)
		}
	}
	return sh.run(ctx, id, pc)
}

// share is one running share-terminal.
type share struct {
	cfg      Config
	o        ShareOptions
	log      *slog.Logger
	sessions *peer.SessionCache
	link     *link
	ep       *peer.Endpoint // set before the link starts
	gate     *webGate       // what output the server gets
	host     *terminal.Host
	ptmx     *os.File
	rec      *terminal.Recorder

	registered chan struct{} // closed when the server first confirms the share
	regOnce    sync.Once

	mu         sync.Mutex // guards the fields below
	cols, rows int
	peers, web []string      // who watches over QUIC, and in browsers
	serving    int           // shell viewers' sessions in progress
	idle       chan struct{} // closed when serving drops to 0, if someone waits
}

// ttyFD is the sharer's terminal's descriptor, or -1 when stdin is not one.
func (sh *share) ttyFD() int {
	if sh.o.Stdin == nil || !term.IsTerminal(int(sh.o.Stdin.Fd())) {
		return -1
	}
	return int(sh.o.Stdin.Fd())
}

func (sh *share) run(ctx context.Context, id peer.Identity, pc net.PacketConn) (code int, err error) {
	cmd := exec.Command(sh.o.Command[0], sh.o.Command[1:]...)
	cmd.Env = append(os.Environ(), "MESH_SHARE_ID="+sh.o.ShareID)
	ptmx, err := startPTY(cmd, sh.cols, sh.rows)
	if err != nil {
		return 0, fmt.Errorf("start %s in a terminal: %w", sh.o.Command[0], err)
	}
	defer ptmx.Close()
	sh.ptmx = ptmx
	if sh.o.Record != "" {
		f, err := os.OpenFile(sh.o.Record, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			_ = cmd.Process.Kill() // not started for real yet
			return 0, fmt.Errorf("--record: %w", err)
		}
		defer f.Close()
		if sh.rec, err = terminal.NewRecorder(f, sh.cols, sh.rows, time.Now(), strings.Join(sh.o.Command, " ")); err != nil {
			_ = cmd.Process.Kill() // as above
			return 0, fmt.Errorf("--record: %w", err)
		}
	}
	relay := newRelay(sh.o.ShareID)
	sh.gate = &webGate{relay: relay, noWeb: sh.o.NoWeb}
	sh.host = terminal.NewHost(terminal.HostConfig{Cols: sh.cols, Rows: sh.rows, Command: strings.Join(sh.o.Command, " "),
		AllowInput: sh.o.AllowInput, OnViewers: sh.setPeers,
		OnOutput: func(off uint64, data []byte) {
			if sh.rec != nil {
				_ = sh.rec.Output(time.Now(), data) // a failing recording must not stop the share
			}
			sh.gate.output(off, data)
		}})
	sh.gate.host = sh.host
	ep, err := peer.NewEndpoint(peer.Config{Identity: id, DeviceID: sh.cfg.DeviceID, User: sh.cfg.Username, AcceptFrom: sh.o.Allow,
		Sessions: sh.sessions, Log: sh.log.With("component", "quic")}, pc)
	if err != nil {
		_ = cmd.Process.Kill() // nothing is shared yet
		return 0, err
	}
	defer ep.Close()
	sh.link = &link{cfg: sh.cfg, log: sh.log.With("component", "link"), onEvent: sh.onEvent, onBinary: sh.onBinary, onUp: sh.announce,
		hello: protocol.Hello{DeviceID: sh.cfg.DeviceID, QUICPort: pc.LocalAddr().(*net.UDPAddr).Port, Fingerprint: id.Fingerprint, Version: protocol.Version}}
	relay.link = sh.link
	rc := peer.NewRelayConn(sh.link.sendBinary) // for joiners no direct path reaches
	defer rc.Close()
	sh.link.onRelay = rc.Deliver
	ep.UseRelay(rc)
	sh.ep = ep
	sh.registered = make(chan struct{})

	lctx, stopLink := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLink()
	g, gctx := errgroup.WithContext(lctx)
	g.Go(func() error { return ep.Serve(gctx, sh.serve) })
	g.Go(func() error { return sh.link.run(gctx) })
	g.Go(func() error { relay.run(gctx); return nil })
	g.Go(func() error { announcer(gctx, sh.cfg, ep, sh.link, sh.log.With("component", "nat")); return nil })
	// The join line is printed once the server knows the share, so it works
	// at once; the command's first output waits in the PTY meanwhile.
	select {
	case <-sh.registered:
	case <-time.After(registerWait):
		fmt.Fprintf(sh.o.Stderr, "[mesh] the server at %s has not confirmed the share yet; joining works once it has\n", sh.cfg.Server)
	case <-ctx.Done():
	}
	sh.printJoin()

	if fd := sh.ttyFD(); fd >= 0 {
		old, err := term.MakeRaw(fd)
		if err != nil {
			_ = cmd.Process.Kill() // the sharer could not use it
			return 0, fmt.Errorf("put the terminal in raw mode: %w", err)
		}
		defer term.Restore(fd, old) //nolint:errcheck // nothing better to do on the way out
	}
	if sh.o.Stdin != nil {
		// Never waited for: a read of the terminal cannot be interrupted,
		// and the process exits soon after the share ends.
		go func() { _, _ = io.Copy(ptmx, sh.o.Stdin) }()
	}
	stopWinch := sh.followSize()
	defer stopWinch()

	pumped := make(chan error, 1)
	go func() { pumped <- sh.host.Pump(ptmx, sh.o.Stdout) }()
	select {
	case err = <-pumped:
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGHUP) // as a closing terminal would; the shell exits and the pump ends
		err = <-pumped
	}
	stopWinch() // no resize may follow the exit, nor reach a closed recording
	code = exitCode(cmd.Wait())
	if err != nil {
		sh.log.Warn("terminal output failed", "err", err)
	}
	sh.host.Exit(code, "")
	sh.link.send(protocol.TypeTerminalExit, protocol.TerminalExit{ShareID: sh.o.ShareID, Code: code})
	sh.drainViewers()
	stopLink()
	_ = g.Wait() // each ends with its context
	if sh.rec != nil {
		if err := sh.rec.Close(); err != nil {
			sh.log.Warn("recording incomplete", "file", sh.o.Record, "err", err)
		}
	}
	return code, nil
}

// printJoin tells the sharer how others watch, before the terminal goes raw.
func (sh *share) printJoin() {
	fmt.Fprintf(sh.o.Stdout, "share: %s\njoin from a shell: mesh agent join-terminal %s\n", sh.o.ShareID, sh.o.ShareID)
	if sh.o.NoWeb {
		fmt.Fprintf(sh.o.Stdout, "no browser watching (--no-web): the server never sees the output\n")
	} else {
		fmt.Fprintf(sh.o.Stdout, "watch in a browser: %s/#/terminal/%s\n", strings.TrimRight(sh.cfg.Server, "/"), sh.o.ShareID)
	}
	mode := "read-only"
	if sh.o.AllowInput {
		mode = "viewers may type"
	}
	who := "you"
	if len(sh.o.Allow) > 0 {
		who += ", " + strings.Join(sh.o.Allow, ", ")
	}
	fmt.Fprintf(sh.o.Stderr, "[mesh] %s; may watch: %s; exit the command to end the share\n", mode, who)
}

// announce (re)registers the share with the server after each connection.
func (sh *share) announce() {
	sh.mu.Lock()
	open := protocol.TerminalOpen{ShareID: sh.o.ShareID, Command: strings.Join(sh.o.Command, " "), Cols: sh.cols, Rows: sh.rows,
		AllowInput: sh.o.AllowInput, Allow: sh.o.Allow, NoWeb: sh.o.NoWeb}
	sh.mu.Unlock()
	sh.link.send(protocol.TypeTerminalOpen, open)
}

func (sh *share) onEvent(env protocol.Envelope) {
	switch env.Type {
	case protocol.TypeP2PSessionCreated:
		var s protocol.P2PSession
		if err := env.Unmarshal(&s); err != nil {
			sh.log.Warn("bad p2p.session.created", "err", err)
			return
		}
		if s.Kind == protocol.SessionTerminal && s.ShareID == sh.o.ShareID && s.TargetDeviceID == sh.cfg.DeviceID {
			sh.sessions.Add(s, env.From)
			expect(context.Background(), sh.ep, sh.link, s) // punches for two seconds
		}
	case protocol.TypeTerminalViewers:
		var v protocol.TerminalViewers
		if env.Unmarshal(&v) == nil && v.ShareID == sh.o.ShareID {
			sh.regOnce.Do(func() { close(sh.registered) }) // the server answers terminal.open with the viewers
			sh.mu.Lock()
			sh.web = v.Viewers
			sh.mu.Unlock()
			sh.gate.watchers(len(v.Viewers))
			sh.printViewers()
		}
	}
}

// onBinary takes keystrokes typed in a browser; the server has checked the
// typist may type, and the share allows it only with --allow-input.
func (sh *share) onBinary(f protocol.TermFrame) {
	if f.Kind == protocol.TermInput && f.ShareID == sh.o.ShareID && sh.o.AllowInput {
		_, _ = sh.ptmx.Write(f.Data) // the shell is gone if this fails; the pump sees it
	}
}

// serve runs one shell viewer that came in over QUIC.
func (sh *share) serve(ctx context.Context, ps *peer.Session) {
	sh.mu.Lock()
	sh.serving++
	sh.mu.Unlock()
	defer func() {
		sh.mu.Lock()
		if sh.serving--; sh.serving == 0 && sh.idle != nil {
			close(sh.idle)
			sh.idle = nil
		}
		sh.mu.Unlock()
	}()
	log := sh.log.With("session_id", ps.Session.SessionID, "user", ps.FromUser, "device", ps.Session.InitiatorDeviceID)
	if ps.Session.Kind != protocol.SessionTerminal || ps.Session.ShareID != sh.o.ShareID {
		_ = ps.Close("this agent shares terminal " + sh.o.ShareID + " only") // the reason is all the peer needs
		return
	}
	allowed := ps.FromUser == sh.cfg.Username || slices.Contains(sh.o.Allow, ps.FromUser)
	if !allowed {
		log.Warn("viewer refused: not allowed")
		_ = ps.Close("you may not watch this terminal") // as above
		return
	}
	log.Info("viewer joined")
	err := sh.host.Serve(ctx, ps.Stream, ps.FromUser, sh.o.AllowInput, sh.ptmx)
	log.Info("viewer left", "err", err)
	_ = ps.Close("share over") // the viewer has its answer already
}

func (sh *share) setPeers(names []string) {
	sh.mu.Lock()
	sh.peers = names
	sh.mu.Unlock()
	sh.printViewers()
}

// printViewers puts one line in the sharer's terminal on every change.
func (sh *share) printViewers() {
	sh.mu.Lock()
	var who []string
	for _, n := range sh.peers {
		who = append(who, n+" (shell)")
	}
	for _, n := range sh.web {
		who = append(who, n+" (browser)")
	}
	sh.mu.Unlock()
	line := "nobody is watching"
	if len(who) > 0 {
		line = "watching: " + strings.Join(who, ", ")
	}
	fmt.Fprintf(sh.o.Stderr, "\r\n[mesh] %s\r\n", line)
}

// followSize makes the sharer's window size the PTY's, on every SIGWINCH,
// until stop (idempotent) returns: then no resize is under way.
func (sh *share) followSize() (stop func()) {
	fd := sh.ttyFD()
	if fd < 0 {
		return func() {}
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-done:
				return
			case <-ch:
			}
			c, r, err := term.GetSize(fd)
			if err != nil || c < 1 || r < 1 {
				continue
			}
			c, r = min(c, protocol.MaxTerminalSize), min(r, protocol.MaxTerminalSize)
			_ = setPTYSize(sh.ptmx, c, r) // fails only once the PTY is closed: the share is ending
			sh.mu.Lock()
			sh.cols, sh.rows = c, r
			sh.mu.Unlock()
			sh.host.Resize(c, r)
			sh.link.send(protocol.TypeTerminalResize, protocol.TerminalResize{ShareID: sh.o.ShareID, Cols: c, Rows: r})
			if sh.rec != nil {
				_ = sh.rec.Resize(time.Now(), c, r) // as for output
			}
		}
	}()
	return sync.OnceFunc(func() { signal.Stop(ch); close(done); <-exited })
}

// drainViewers waits until every shell viewer's session has ended (each
// closes once the viewer has the exit frame and hangs up): closing the
// endpoint earlier would drop the exit frame still in flight. A viewer
// that vanished is given up on after drainWait.
func (sh *share) drainViewers() {
	sh.mu.Lock()
	if sh.serving == 0 {
		sh.mu.Unlock()
		return
	}
	done := make(chan struct{})
	sh.idle = done
	sh.mu.Unlock()
	select {
	case <-done:
	case <-time.After(drainWait):
	}
}

// exitCode turns cmd.Wait's answer into a shell-style exit code.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

// newShareID is 10 random characters, easy to read out and type.
func newShareID() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789" // no 0/o, 1/l
	b := make([]byte, 10)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
