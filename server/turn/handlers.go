package turn

import (
	"context"
	"net"
	"net/netip"
	"time"

	pion "github.com/pion/turn/v4"
	"golang.org/x/time/rate"
)

// key names a client's transport: UDP and TCP clients are kept apart.
func key(src net.Addr) string { return src.Network() + "/" + src.String() }

// auth answers pion's question for every authenticated request: the key
// for this username, if the credential stands. A credential past its
// expiry still serves the allocation it made (refreshes, permissions): a
// call outlives the credential's lifetime, and the sweep ends it when the
// user's credentials end.
func (s *Server) auth(username, realm string, src net.Addr) ([]byte, bool) {
	user, exp, err := parseUsername(username)
	if err != nil || realm != Realm {
		s.log.Info("turn request refused", "username", username, "realm", realm, "client", src.String(), "why", "not a mesh credential")
		return nil, false
	}
	s.mu.Lock()
	a := s.allocs[key(src)]
	s.mu.Unlock()
	existing := a != nil && a.user == user
	if !existing && !s.cfg.Now().Before(exp) {
		s.log.Info("turn request refused", "user", user, "client", src.String(), "why", "credential expired", "expired", exp)
		return nil, false
	}
	at, exists, err := s.users.CredentialsEnded(context.Background(), user)
	switch {
	case err != nil:
		s.log.Error("turn credential check", "user", user, "err", err)
		return nil, false
	case !exists:
		s.log.Info("turn request refused", "user", user, "client", src.String(), "why", "no such user")
		return nil, false
	case exp.Add(-s.cfg.TTL).Before(at):
		s.log.Info("turn request refused", "user", user, "client", src.String(), "why", "credentials ended after it was issued")
		return nil, false
	}
	// A wrong password fails pion's message-integrity check against this key.
	return pion.GenerateAuthKey(username, realm, password(s.cfg.Secret, username)), true
}

// quota admits an allocation while the user holds fewer than MaxPerUser,
// counting those admitted but not yet made.
func (s *Server) quota(username, _ string, src net.Addr) bool {
	user, _, _ := parseUsername(username) // auth accepted it
	if s.cfg.MaxPerUser <= 0 {
		return true
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	held := 0
	for _, a := range s.allocs {
		if a.user == user {
			held++
		}
	}
	fresh := s.pending[user][:0]
	for _, t := range s.pending[user] {
		if now.Sub(t) < 5*time.Second { // admitted, then the relay could not be made
			fresh = append(fresh, t)
		}
	}
	if held+len(fresh) >= s.cfg.MaxPerUser {
		s.pending[user] = fresh
		s.log.Warn("turn allocation refused: quota reached", "user", user, "client", src.String(),
			"allocations", held, "max", s.cfg.MaxPerUser, "setting", "rtc.turn_max_allocations_per_user")
		return false
	}
	s.pending[user] = append(fresh, now)
	return true
}

func (s *Server) created(src, _ net.Addr, _, username, _ string, relayAddr net.Addr, _ int) {
	user, exp, _ := parseUsername(username)
	rc := s.relays.byAddr(relayAddr)
	if rc == nil { // cannot happen: every relay comes from s.relays
		s.log.Error("turn allocation without a known relay", "user", user, "relay", relayAddr)
		return
	}
	s.mu.Lock()
	if p := s.pending[user]; len(p) > 0 {
		s.pending[user] = p[1:]
	}
	st := s.states[user]
	if st == nil {
		st = &userState{name: user}
		if s.cfg.UserMbps > 0 {
			bps := float64(s.cfg.UserMbps) * 1e6 / 8
			st.limit = rate.NewLimiter(rate.Limit(bps), int(bps/4)) // a quarter second of burst
		}
		s.states[user] = st
	}
	s.allocs[key(src)] = &allocation{user: user, issued: exp.Add(-s.cfg.TTL), relay: rc}
	s.mu.Unlock()
	rc.user.Store(st)
	s.log.Debug("turn allocation", "user", user, "client", src.String(), "relay", relayAddr.String())
}

func (s *Server) deleted(src, _ net.Addr, _, _, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.allocs[key(src)]
	if a == nil {
		return
	}
	delete(s.allocs, key(src))
	for _, b := range s.allocs {
		if b.user == a.user {
			return
		}
	}
	delete(s.states, a.user)
	delete(s.pending, a.user)
}

// permit answers CreatePermission and ChannelBind: a peer on the server's
// own networks is refused, except the relay address itself (two relayed
// callers reach each other through it; relayConn keeps that to relay ports).
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	p, ok := netip.AddrFromSlice(peer)
	if !ok {
		return false
	}
	p = p.Unmap()
	if p == s.relays.public {
		return true
	}
	err := s.cfg.Peers.Check(p)
	if err == nil {
		return true
	}
	user := ""
	s.mu.Lock()
	if a := s.allocs[key(client)]; a != nil {
		user = a.user
	}
	s.mu.Unlock()
	s.log.Info("turn peer refused", "user", user, "client", client.String(), "peer", p.String(), "why", err.Error(),
		"setting", "rtc.turn_allowed_peers")
	return false
}
