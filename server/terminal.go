package server

import (
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"mesh/protocol"
	"mesh/store"
)

// Shared terminals. An agent running `mesh agent share-terminal` opens a
// share over its own WebSocket (terminal.open) and streams the output as
// binary [protocol.TermFrame] messages. Shell joiners get a direct QUIC
// session to that agent (newSession only introduces them); browsers watch
// through the server, which keeps recent output for late watchers and
// relays every output message, byte for byte, to the share's watchers.

// replayChunk is the most output one replay frame carries, well under
// protocol.MaxFrame so every client's decoder takes it.
const replayChunk = 32 << 10

// terminals is the registry of live shares. One mutex guards the map and
// every share in it. Output is relayed while it is held (enqueue never
// blocks), so a new watcher's replay and the live frames after it arrive
// in offset order. Nothing holding it does store I/O.
type terminals struct {
	mu     sync.Mutex        // guards shares and the fields of every share
	shares map[string]*share // share id → live share
}

// share is one shared terminal as the server knows it.
type share struct {
	id, command string
	deviceID    string // the sharing agent's device
	owner       store.User
	started     time.Time
	sharer      *conn    // the share-terminal process's session
	allow       []string // lowercase usernames who may watch besides the owner
	allowInput  bool
	noWeb       bool // browser watching refused (share-terminal --no-web)
	cols, rows  int
	out         outputRing
	// anyOffset lets the first output after a takeover start anywhere: a
	// restarted sharer counts from 0 again.
	anyOffset bool
	watchers  map[*conn]*watcher
}

// watcher is one browser session watching a share.
type watcher struct {
	user    store.User
	mayType bool
	warned  bool // told once that its keystrokes are dropped
}

// mayWatch reports whether u may see the share: its owner or an allowed user.
func (sh *share) mayWatch(u store.User) bool {
	return u.ID == sh.owner.ID || slices.Contains(sh.allow, strings.ToLower(u.Username))
}

// viewers lists who watches, each user once, sorted.
func (sh *share) viewers() []string {
	names := make([]string, 0, len(sh.watchers))
	for _, w := range sh.watchers {
		names = append(names, w.user.Username)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// openFor is the terminal.open a watcher gets: the share as it is now.
func (sh *share) openFor(w *watcher) protocol.TerminalOpen {
	return protocol.TerminalOpen{ShareID: sh.id, Command: sh.command, Cols: sh.cols, Rows: sh.rows, AllowInput: w.mayType}
}

// replay frames the kept output as TermOutput messages from the ring's
// start offset, replayChunk bytes at most each.
func (sh *share) replay() []frame {
	data, off := sh.out.bytes(), sh.out.start()
	var fs []frame
	for len(data) > 0 {
		n := min(len(data), replayChunk)
		b := protocol.AppendTermFrame(nil, protocol.TermFrame{Kind: protocol.TermOutput, ShareID: sh.id, Offset: off, Data: data[:n]})
		fs = append(fs, binaryFrame(b))
		data, off = data[n:], off+uint64(n)
	}
	return fs
}

// relay queues ev for every watcher; s.terms.mu must be held.
func (sh *share) relay(ev frame) {
	for cn := range sh.watchers {
		cn.enqueue(ev)
	}
}

// normalizeAllow lowercases, trims and dedupes an allow list; usernames
// compare case-insensitively.
func normalizeAllow(names []string) []string {
	var out []string
	for _, n := range names {
		if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// onTerminalOpen registers a share, or takes over one of the same device
// (its agent reconnected before the server noticed the old session die).
func (s *Server) onTerminalOpen(cn *conn, env protocol.Envelope) error {
	if cn.device.ID == "" {
		return refuse(kindForbidden, codeForbidden, "only an agent may share a terminal: run 'mesh agent share-terminal', which connects with the device token")
	}
	var req protocol.TerminalOpen
	if err := decodeValid(env, &req); err != nil {
		return err
	}
	s.terms.mu.Lock()
	defer s.terms.mu.Unlock()
	sh, resumed := s.terms.shares[req.ShareID]
	switch {
	case !resumed:
		sh = &share{id: req.ShareID, deviceID: cn.device.ID, started: s.cfg.now().UTC(), watchers: make(map[*conn]*watcher)}
		s.terms.shares[sh.id] = sh
	case sh.deviceID != cn.device.ID:
		return refuse(kindInvalid, codeInvalidRequest, "terminal share %q is already running on another device; pick another share id", req.ShareID)
	default:
		sh.anyOffset = sh.sharer != cn
	}
	sh.sharer, sh.owner, sh.command = cn, cn.user, req.Command
	sh.allow, sh.allowInput, sh.cols, sh.rows = normalizeAllow(req.Allow), req.AllowInput, req.Cols, req.Rows
	sh.noWeb = req.NoWeb
	if cn.shareLimit == nil { // dispatch runs while the reader waits: no race with allow
		cn.shareLimit = rate.NewLimiter(shareBytesPerSec, shareBurst)
	}
	cn.sharing.Store(true)
	if resumed {
		s.rewatch(sh)
	}
	s.sendViewers(sh)
	s.log.Info("terminal share opened", "share_id", sh.id, "user", sh.owner.Username, "device_id", sh.deviceID,
		"allow_input", sh.allowInput, "resumed", resumed)
	return nil
}

// rewatch applies a share's new settings to its watchers: each gets the
// new terminal.open, or terminal.exit if it may no longer watch.
// s.terms.mu must be held.
func (s *Server) rewatch(sh *share) {
	for cn, w := range sh.watchers {
		if !sh.mayWatch(w.user) {
			delete(sh.watchers, cn)
			s.sendShare(cn, sh, protocol.TypeTerminalExit,
				protocol.TerminalExit{ShareID: sh.id, Code: -1, Reason: "the sharer no longer allows you to watch"})
			continue
		}
		w.mayType, w.warned = sh.allowInput, false
		s.sendShare(cn, sh, protocol.TypeTerminalOpen, sh.openFor(w))
	}
}

// sendShare queues one event about sh, from its owner, for cn.
func (s *Server) sendShare(cn *conn, sh *share, t protocol.Type, payload any) {
	ev, err := s.hub.event(t, sh.owner.Username, payload)
	if err != nil {
		s.log.Error("encode terminal event", "type", t, "err", err)
		return
	}
	cn.enqueue(ev)
}

// sendViewers tells the sharer who watches now; s.terms.mu must be held.
// With nobody watching, the server forgets the share's output: the sharer
// stops sending it, and shows a first watcher its own recent screen.
func (s *Server) sendViewers(sh *share) {
	if len(sh.watchers) == 0 {
		sh.out.restart(sh.out.end)
		sh.anyOffset = true // the next output comes from the sharer's ring, from further back
	}
	s.sendShare(sh.sharer, sh, protocol.TypeTerminalViewers, protocol.TerminalViewers{ShareID: sh.id, Viewers: sh.viewers()})
}

// ownShare returns the share cn shares as id; s.terms.mu must be held.
func (s *Server) ownShare(cn *conn, id string) (*share, error) {
	sh := s.terms.shares[id]
	if sh == nil {
		return nil, refuse(kindNotFound, codeNotFound, "no terminal share %q is running; send terminal.open first", id)
	} else if sh.sharer != cn {
		return nil, refuse(kindForbidden, codeForbidden, "only the session sharing terminal %q may do this", id)
	}
	return sh, nil
}

// onTermFrame handles one binary message: a sharer's output or a watcher's
// keystrokes. b is the whole message, relayed as is.
func (s *Server) onTermFrame(cn *conn, b []byte) {
	f, err := protocol.DecodeTermFrame(b)
	if err != nil {
		cn.reply("", protocol.CodeInvalid, err.Error())
		return
	}
	if f.Kind == protocol.TermOutput {
		err = s.termOutput(cn, f, b)
	} else {
		err = s.termInput(cn, f, b)
	}
	var r *refusal
	if errors.As(err, &r) {
		cn.replyRefusal("", r)
	}
}

func (s *Server) termOutput(cn *conn, f protocol.TermFrame, b []byte) error {
	s.terms.mu.Lock()
	defer s.terms.mu.Unlock()
	sh, err := s.ownShare(cn, f.ShareID)
	if err != nil {
		return err
	}
	if len(sh.watchers) == 0 {
		return nil // sent before the sharer heard that the last watcher left: not kept
	}
	switch end := sh.out.end; {
	case f.Offset > end || (f.Offset != end && sh.anyOffset):
		sh.out.restart(f.Offset) // the sharer dropped output: keep what follows the gap
	case f.Offset < end:
		return refuse(kindInvalid, codeInvalidRequest, "output at offset %d of terminal %q repeats bytes before %d; dropped", f.Offset, f.ShareID, end)
	}
	sh.anyOffset = false
	sh.out.write(f.Data)
	if len(sh.watchers) > 0 {
		sh.relay(binaryFrame(b)) // framed once for every watcher
	}
	return nil
}

func (s *Server) termInput(cn *conn, f protocol.TermFrame, b []byte) error {
	s.terms.mu.Lock()
	defer s.terms.mu.Unlock()
	sh := s.terms.shares[f.ShareID]
	if sh == nil {
		return refuse(kindNotFound, codeNotFound, "no terminal share %q is running", f.ShareID)
	}
	w := sh.watchers[cn]
	switch {
	case w == nil:
		return refuse(kindForbidden, codeForbidden, "you are not watching terminal %q; send terminal.watch first", f.ShareID)
	case !w.mayType && w.warned:
		return nil
	case !w.mayType:
		w.warned = true
		return refuse(kindForbidden, codeForbidden, "this terminal is read-only; your keystrokes are dropped")
	}
	sh.sharer.enqueue(binaryFrame(b))
	return nil
}

func (s *Server) onTerminalResize(cn *conn, env protocol.Envelope) error {
	var req protocol.TerminalResize
	if err := decodeValid(env, &req); err != nil {
		return err
	}
	ev, err := s.hub.event(protocol.TypeTerminalResize, cn.user.Username, req)
	if err != nil {
		return err
	}
	s.terms.mu.Lock()
	defer s.terms.mu.Unlock()
	sh, err := s.ownShare(cn, req.ShareID)
	if err != nil {
		return err
	}
	sh.cols, sh.rows = req.Cols, req.Rows
	sh.relay(ev)
	return nil
}

func (s *Server) onTerminalExit(cn *conn, env protocol.Envelope) error {
	var req protocol.TerminalExit
	if err := decodeValid(env, &req); err != nil {
		return err
	}
	s.terms.mu.Lock()
	defer s.terms.mu.Unlock()
	sh, err := s.ownShare(cn, req.ShareID)
	if err != nil {
		return err
	}
	s.endShare(sh, req)
	return nil
}

// endShare tells the watchers and forgets sh; s.terms.mu must be held.
func (s *Server) endShare(sh *share, exit protocol.TerminalExit) {
	delete(s.terms.shares, sh.id)
	for cn := range sh.watchers {
		s.sendShare(cn, sh, protocol.TypeTerminalExit, exit)
	}
	s.log.Info("terminal share closed", "share_id", sh.id, "user", sh.owner.Username, "device_id", sh.deviceID,
		"code", exit.Code, "reason", exit.Reason, "watchers", len(sh.watchers))
}

// dropConn forgets a closed session: the shares it served end, and the
// shares it watched lose a viewer.
func (s *Server) dropTerminals(cn *conn) {
	s.terms.mu.Lock()
	defer s.terms.mu.Unlock()
	for _, sh := range s.terms.shares {
		if sh.sharer == cn {
			s.endShare(sh, protocol.TerminalExit{ShareID: sh.id, Code: -1, Reason: "the sharer disconnected"})
		} else if _, ok := sh.watchers[cn]; ok {
			delete(sh.watchers, cn)
			s.sendViewers(sh)
		}
	}
}

type terminalAnswer struct {
	ShareID    string    `json:"share_id"`
	User       string    `json:"user"`
	DeviceID   string    `json:"device_id"`
	Command    string    `json:"command"`
	Cols       int       `json:"cols"`
	Rows       int       `json:"rows"`
	AllowInput bool      `json:"allow_input"`
	StartedAt  time.Time `json:"started_at"`
	Viewers    []string  `json:"viewers"`
}

// listTerminals is GET /api/terminals: the shares the caller may watch.
func (s *Server) listTerminals(c echo.Context) error {
	u := currentUser(c)
	out := []terminalAnswer{}
	s.terms.mu.Lock()
	for _, sh := range s.terms.shares {
		if sh.mayWatch(u) {
			out = append(out, terminalAnswer{ShareID: sh.id, User: sh.owner.Username, DeviceID: sh.deviceID, Command: sh.command,
				Cols: sh.cols, Rows: sh.rows, AllowInput: sh.allowInput, StartedAt: sh.started, Viewers: sh.viewers()})
		}
	}
	s.terms.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.Before(out[j].StartedAt)
		}
		return out[i].ShareID < out[j].ShareID
	})
	return c.JSON(http.StatusOK, map[string]any{"terminals": out})
}
