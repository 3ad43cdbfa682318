package server

import (
	"mesh/protocol"
	"mesh/store"
)

// refuseWatch is why u may not watch share id, and the way out.
const refuseWatch = "not allowed to watch this terminal; the sharer can add you with --allow %s"

// onTerminalWatch makes cn a watcher: it gets terminal.open, the kept output,
// then live output; the sharer learns the new viewers list.
func (s *Server) onTerminalWatch(cn *conn, env protocol.Envelope) error {
	s.terms.mu.Lock()
	defer s.terms.mu.Unlock()
	sh, err := s.namedShare(env)
	if err != nil {
		return err
	}
	if !sh.mayWatch(cn.user) {
		s.log.Info("terminal watch refused", "share_id", sh.id, "user", cn.user.Username, "via", "websocket")
		return refuse(kindForbidden, codeForbidden, refuseWatch, cn.user.Username)
	}
	if sh.noWeb {
		return refuse(kindForbidden, codeForbidden,
			"the sharer of %q allows no browser watching (--no-web); join from a shell: mesh agent join-terminal %s", sh.id, sh.id)
	}
	w := &watcher{user: cn.user, mayType: sh.allowInput} // mayWatch held: owner or allowed
	s.sendShare(cn, sh, protocol.TypeTerminalOpen, sh.openFor(w))
	for _, f := range sh.replay() {
		cn.enqueue(f)
	}
	sh.watchers[cn] = w // live output from here on, after the replay
	s.sendViewers(sh)
	return nil
}

// onTerminalUnwatch stops relaying to cn; unwatching a share one does not
// watch is harmless.
func (s *Server) onTerminalUnwatch(cn *conn, env protocol.Envelope) error {
	s.terms.mu.Lock()
	defer s.terms.mu.Unlock()
	sh, err := s.namedShare(env)
	if err != nil {
		return err
	}
	if _, ok := sh.watchers[cn]; ok {
		delete(sh.watchers, cn)
		s.sendViewers(sh)
	}
	return nil
}

// namedShare is the running share a terminal.watch/unwatch names;
// s.terms.mu must be held.
func (s *Server) namedShare(env protocol.Envelope) (*share, error) {
	var req protocol.TerminalRef
	if err := decodeValid(env, &req); err != nil {
		return nil, err
	}
	sh := s.terms.shares[req.ShareID]
	if sh == nil {
		return nil, refuse(kindNotFound, codeNotFound, "no terminal share %q is running", req.ShareID)
	}
	return sh, nil
}

// shareTarget resolves the target of a terminal p2p session: the session
// of the agent sharing req.ShareID, which u must be allowed to watch. The
// explicit allow list is the sharer's consent, so no shared room is needed.
func (s *Server) shareTarget(u store.User, fromDevice string, req protocol.P2PSessionRequest) (string, *conn, protocol.Endpoint, error) {
	var ep protocol.Endpoint
	s.terms.mu.Lock()
	defer s.terms.mu.Unlock()
	sh := s.terms.shares[req.ShareID]
	switch {
	case sh == nil:
		return "", nil, ep, refuse(kindNotFound, codeNotFound, "no terminal share %q is running", req.ShareID)
	case !sh.mayWatch(u):
		s.log.Info("terminal watch refused", "share_id", sh.id, "user", u.Username, "via", "p2p")
		return "", nil, ep, refuse(kindForbidden, codeForbidden, refuseWatch, u.Username)
	case req.TargetDeviceID != "" && store.DeviceKey(req.TargetDeviceID) != store.DeviceKey(sh.deviceID):
		return "", nil, ep, refuse(kindInvalid, codeInvalidRequest,
			"terminal share %q runs on device %q, not %q; leave target_device_id out", sh.id, sh.deviceID, req.TargetDeviceID)
	case sh.deviceID == fromDevice:
		return "", nil, ep, refuse(kindInvalid, codeInvalidRequest,
			"terminal share %q runs on this device %q; join it from another device", sh.id, fromDevice)
	}
	if ep = sh.sharer.endpoint(); ep.Port == 0 || ep.Fingerprint == "" {
		return "", nil, ep, refuse(kindConflict, codeDeviceOffline,
			"the agent sharing terminal %q has not announced its QUIC endpoint; restart share-terminal", sh.id)
	}
	return sh.deviceID, sh.sharer, ep, nil
}

// ringSize is how much recent output a share keeps for late watchers.
const ringSize = 256 << 10

// outputRing keeps the last ringSize bytes of a share's output. The byte at
// output offset o sits at buf[o%ringSize], so writing never moves bytes.
type outputRing struct {
	buf []byte // ringSize bytes, allocated by the first write
	n   int    // bytes held, at most ringSize
	end uint64 // output offset just past the newest byte
}

// start is the output offset of the oldest byte held.
func (r *outputRing) start() uint64 { return r.end - uint64(r.n) }

// restart empties the ring, which continues at output offset off.
func (r *outputRing) restart(off uint64) { r.n, r.end = 0, off }

// write appends p, forgetting the oldest bytes beyond ringSize.
func (r *outputRing) write(p []byte) {
	if len(p) == 0 {
		return
	}
	if r.buf == nil {
		r.buf = make([]byte, ringSize)
	}
	if len(p) > ringSize {
		r.end += uint64(len(p) - ringSize)
		p = p[len(p)-ringSize:]
	}
	for len(p) > 0 {
		k := copy(r.buf[r.end%ringSize:], p)
		p, r.end, r.n = p[k:], r.end+uint64(k), min(r.n+k, ringSize)
	}
}

// bytes returns a copy of what the ring holds, oldest first.
func (r *outputRing) bytes() []byte {
	if r.n == 0 {
		return nil
	}
	out := make([]byte, r.n)
	k := copy(out, r.buf[r.start()%ringSize:])
	copy(out[k:], r.buf)
	return out
}
