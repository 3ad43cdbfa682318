package peer

import (
	"crypto/subtle"
	"sync"
	"time"

	"mesh/protocol"
)

// expiredGrace is how long an expired session is remembered so a late dial
// hears "session expired" rather than "unknown session".
const expiredGrace = 5 * time.Minute

// Reasons a [SessionCache] denies a P2P_HELLO. The initiator sees them in
// [DenyError].Reason.
const (
	ReasonUnknown     Reason = "unknown session"
	ReasonExpired     Reason = "session expired"
	ReasonUsed        Reason = "token already used"
	ReasonToken       Reason = "wrong token"
	ReasonDevice      Reason = "wrong device"
	ReasonKind        Reason = "wrong kind"
	ReasonCertificate Reason = "certificate does not match"
)

// SessionCache holds the p2p sessions the server announced to this device
// until they are redeemed or expire. It is safe for concurrent use.
type SessionCache struct {
	now func() time.Time

	mu       sync.Mutex // guards sessions, added
	sessions map[string]*cached
	added    chan struct{} // closed and replaced by every Add
}

type cached struct {
	Pending
	certs    []string // fingerprints that pass TLS until expiry, fixed at Add
	redeemed bool
}

// Pending is a session a P2P_HELLO redeemed: what the server announced and
// the user who asked for it (the envelope's from).
type Pending struct {
	Session  protocol.P2PSession
	FromUser string
}

// NewSessionCache returns an empty cache that reads the time from now
// (time.Now if nil).
func NewSessionCache(now func() time.Time) *SessionCache {
	if now == nil {
		now = time.Now
	}
	return &SessionCache{now: now, sessions: make(map[string]*cached), added: make(chan struct{})}
}

// Add remembers s, announced by the server on behalf of fromUser, until
// s.ExpiresAt (and 5 minutes more, so a late dial hears "session expired"
// rather than "unknown session"). Announcing a session again does not revive
// a used token.
func (c *SessionCache) Add(s protocol.P2PSession, fromUser string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneLocked()
	if old, ok := c.sessions[s.SessionID]; ok && old.redeemed {
		return
	}
	c.sessions[s.SessionID] = &cached{Pending: Pending{Session: s, FromUser: fromUser}, certs: initiatorCerts(s)}
	close(c.added)
	c.added = make(chan struct{})
}

// Redeem checks h, sent by a peer whose certificate has fingerprint
// peerFingerprint, against the cached session and uses the session up. Every
// refusal is a [*DenyError] with one of the Reason constants. An attempt with
// the wrong token leaves the session usable; once the token matched, the
// session is spent even if the device, kind or certificate is then refused.
// A session without an initiator device may be redeemed by any device in
// its Initiators presenting that device's certificate; the returned session
// names that device as its initiator.
func (c *SessionCache) Redeem(h Hello, peerFingerprint string) (Pending, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneLocked()
	e, ok := c.sessions[h.SessionID]
	switch {
	case !ok:
		return Pending{}, &DenyError{ReasonUnknown}
	case !c.now().Before(e.Session.ExpiresAt):
		return Pending{}, &DenyError{ReasonExpired}
	case e.redeemed:
		return Pending{}, &DenyError{ReasonUsed}
	case h.Token == "" || subtle.ConstantTimeCompare([]byte(h.Token), []byte(e.Session.SessionToken)) != 1:
		return Pending{}, &DenyError{ReasonToken}
	}
	e.redeemed = true
	want, ok := initiator(e.Session, h.DeviceID)
	switch {
	case !ok:
		return Pending{}, &DenyError{ReasonDevice}
	case h.Kind != e.Session.Kind:
		return Pending{}, &DenyError{ReasonKind}
	case peerFingerprint == "" || peerFingerprint != want:
		return Pending{}, &DenyError{ReasonCertificate}
	}
	// A session without an initiator is now the session of this device.
	e.Session.InitiatorDeviceID, e.Session.Endpoints.Initiator.Fingerprint = h.DeviceID, want
	e.Session.Initiators = nil
	return e.Pending, nil
}

// initiator returns the certificate fingerprint device must present to use
// s: the named initiator's, or for a session without one, that of device
// in s.Initiators. ok is false when device may not use s.
func initiator(s protocol.P2PSession, device string) (fingerprint string, ok bool) {
	if s.InitiatorDeviceID != "" {
		return s.Endpoints.Initiator.Fingerprint, device == s.InitiatorDeviceID
	}
	for _, d := range s.Initiators {
		if d.DeviceID == device && device != "" {
			return d.Fingerprint, true
		}
	}
	return "", false
}

// initiatorCerts lists the fingerprints that may pass TLS for s.
func initiatorCerts(s protocol.P2PSession) []string {
	if s.InitiatorDeviceID != "" {
		return []string{s.Endpoints.Initiator.Fingerprint}
	}
	fps := make([]string, len(s.Initiators))
	for i, d := range s.Initiators {
		fps[i] = d.Fingerprint
	}
	return fps
}

// InitiatorFingerprints returns the initiator fingerprints of unexpired
// sessions, redeemed ones included, and every listed device's of sessions
// announced without an initiator: the certificates the TLS layer lets in.
func (c *SessionCache) InitiatorFingerprints() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.initiatorsLocked()
}

func (c *SessionCache) initiatorsLocked() map[string]bool {
	c.pruneLocked()
	now := c.now()
	fps := make(map[string]bool)
	for _, e := range c.sessions {
		if !now.Before(e.Session.ExpiresAt) {
			continue
		}
		// A redeemed session's initiators still pass TLS until expiry, so a
		// replayed token, or a second device trying a session without an
		// initiator, hears "token already used" rather than a TLS alert.
		for _, fp := range e.certs {
			if fp != "" {
				fps[fp] = true
			}
		}
	}
	return fps
}

// awaitInitiator reports whether fingerprint belongs to the initiator of a
// live session, waiting up to d (real time) for one to be added.
func (c *SessionCache) awaitInitiator(fingerprint string, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		c.mu.Lock()
		ok, added := c.initiatorsLocked()[fingerprint], c.added
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-added:
		case <-t.C:
			return false
		}
	}
}

// pruneLocked forgets sessions that expired more than expiredGrace ago.
func (c *SessionCache) pruneLocked() {
	cutoff := c.now().Add(-expiredGrace)
	for id, e := range c.sessions {
		if e.Session.ExpiresAt.Before(cutoff) {
			delete(c.sessions, id)
		}
	}
}
