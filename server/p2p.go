package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"mesh/protocol"
	"mesh/store"
)

// sessionTokenPrefix marks peer-to-peer session tokens.
const sessionTokenPrefix = "mst_"

// maxInitiators bounds the devices a session without an initiator device
// lists, so p2p.session.created stays far below the 64 KiB frame cap.
const maxInitiators = 100

// newSession issues a single-use token for initiator → target and tells both
// agents. caller is the device that asked (empty for a user's own session),
// callerIP the address the request came from. The target of a file session
// is a device's agent daemon; that of a terminal session is the agent
// sharing req.ShareID, and only it hears of the session. A user's own
// request that names no initiator device gets a session any one of the
// user's other devices may use (Initiators lists them).
func (s *Server) newSession(ctx context.Context, u store.User, caller, callerIP string, req protocol.P2PSessionRequest) (protocol.P2PSession, error) {
	var none protocol.P2PSession
	if err := req.Validate(); err != nil {
		return none, refuse(kindInvalid, codeInvalidRequest, "%s", err.Error())
	}
	from, err := s.initiatorDevice(ctx, u, caller, req.InitiatorDeviceID)
	if err != nil {
		return none, err
	}
	var to string
	var tc *conn // the target agent's WebSocket session; it gets p2p.session.created
	var target protocol.Endpoint
	if req.Kind == protocol.SessionTerminal {
		to, tc, target, err = s.shareTarget(u, from.ID, req)
	} else {
		to, tc, target, err = s.fileTarget(ctx, u, from.ID, req.TargetDeviceID)
	}
	if err != nil {
		return none, err
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = protocol.DefaultSessionTTL
	}
	now := s.cfg.now().UTC()
	sess := protocol.P2PSession{
		SessionID:    randomHex(16),
		SessionToken: sessionTokenPrefix + randomToken(),
		ExpiresAt:    now.Add(time.Duration(ttl) * time.Second).Truncate(time.Second),
		Kind:         req.Kind, InitiatorDeviceID: from.ID, TargetDeviceID: to, ShareID: req.ShareID,
		Endpoints: protocol.Endpoints{Target: target},
	}
	var fc *conn // the initiator's agent, told too when there is one
	if from.ID == "" {
		sess.Initiators, err = s.anyInitiator(ctx, u, to)
	} else {
		sess.Endpoints.Initiator, fc, err = s.initiatorEndpoint(from, callerIP)
	}
	if err != nil {
		return none, err
	}
	if len(req.Candidates) > 0 { // the requester's own socket, not its daemon's
		sess.Endpoints.Initiator.Candidates = req.Candidates
	}
	if err := s.store.RecordSession(ctx, store.P2PSession{ID: sess.SessionID, TokenHash: store.HashToken(sess.SessionToken),
		Kind: sess.Kind, UserID: u.ID, InitiatorDevice: from.ID, TargetDevice: to, CreatedAt: now, ExpiresAt: sess.ExpiresAt}); err != nil {
		return none, err
	}
	// Each copy carries TURN credentials of the user whose device gets it.
	if sess.ICEServers, _, err = s.iceServers(u.Username); err != nil {
		return none, err
	}
	ev, err := s.hub.event(protocol.TypeP2PSessionCreated, u.Username, sess)
	if err != nil {
		return none, err
	}
	if fc != nil {
		fc.enqueue(ev)
	}
	if tc.user.ID != u.ID {
		other := sess
		if other.ICEServers, _, err = s.iceServers(tc.user.Username); err != nil {
			return none, err
		}
		if ev, err = s.hub.event(protocol.TypeP2PSessionCreated, u.Username, other); err != nil {
			return none, err
		}
	}
	tc.enqueue(ev)
	s.log.Info("p2p session created", "session_id", sess.SessionID, "kind", sess.Kind, "from", from.ID, "to", to,
		"initiators", len(sess.Initiators), "share_id", sess.ShareID, "user", u.Username)
	return sess, nil
}

// initiatorDevice is the device that will use a session: the calling
// device, or the one the body names, which must be u's. When neither names
// one it is the zero Device: any of u's devices may use the session.
func (s *Server) initiatorDevice(ctx context.Context, u store.User, caller, named string) (store.Device, error) {
	switch {
	case caller != "" && named != "" && store.DeviceKey(named) != store.DeviceKey(caller):
		return store.Device{}, refuse(kindForbidden, codeForbidden, "a device token can start sessions only for its own device %q", caller)
	case caller != "":
		named = caller
	case named == "":
		return store.Device{}, nil
	}
	d, err := s.store.DeviceByID(ctx, named)
	if errors.Is(err, store.ErrNotFound) || (err == nil && d.UserID != u.ID) {
		return store.Device{}, refuse(kindNotFound, codeDeviceNotFound, "you have no device %q; 'mesh agent login' enrols one", named)
	}
	return d, err
}

// initiatorEndpoint is where from's agent listens and the certificate it
// must present, with its WebSocket session (nil when it is offline).
func (s *Server) initiatorEndpoint(from store.Device, callerIP string) (protocol.Endpoint, *conn, error) {
	ini := protocol.Endpoint{IP: callerIP, Fingerprint: from.Fingerprint}
	fc := s.hub.deviceConn(from.ID)
	if fc != nil {
		if ep := fc.endpoint(); ep.Fingerprint != "" { // a session that announced none (a relay link) keeps the record's
			ini = ep
		}
	}
	if ini.Fingerprint == "" {
		return ini, nil, refuse(kindConflict, codeNoFingerprint, "device %q has no certificate on record; run 'mesh agent login' on it again", from.ID)
	}
	return ini, fc, nil
}

// anyInitiator lists the devices that may use a session of u's to target
// asked for without an initiator device: every other device of u's with a
// certificate on record. The target admits the first of them to present
// its own certificate with the token, and then no other.
func (s *Server) anyInitiator(ctx context.Context, u store.User, target string) ([]protocol.DeviceCert, error) {
	ds, err := s.store.Devices(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	var out []protocol.DeviceCert
	for _, d := range ds {
		if d.ID != target && protocol.ValidFingerprint(d.Fingerprint) {
			out = append(out, protocol.DeviceCert{DeviceID: d.ID, Fingerprint: d.Fingerprint})
		}
	}
	switch {
	case len(out) == 0:
		return nil, refuse(kindConflict, codeNoInitiator,
			"you have no enrolled device besides %q to connect from; run 'mesh agent login' on the machine that will connect", target)
	case len(out) > maxInitiators:
		return nil, refuse(kindConflict, codeTooManyDevices,
			"you have %d devices, more than a session without initiator_device_id can list (%d); name the device that will connect in initiator_device_id",
			len(out), maxInitiators)
	}
	return out, nil
}

// fileTarget resolves the target of a file session: device id's agent
// daemon, which must be online, announced, and u's own or a room-mate's.
func (s *Server) fileTarget(ctx context.Context, u store.User, fromDevice, id string) (string, *conn, protocol.Endpoint, error) {
	var ep protocol.Endpoint
	to, err := s.store.DeviceByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, ep, refuse(kindNotFound, codeDeviceNotFound, "no device %q", id)
	} else if err != nil {
		return "", nil, ep, err
	}
	if to.ID == fromDevice {
		return "", nil, ep, refuse(kindInvalid, codeInvalidRequest, "initiator and target are the same device")
	}
	if to.UserID != u.ID {
		if ok, err := s.hub.shareRoom(ctx, u.ID, to.UserID); err != nil {
			return "", nil, ep, err
		} else if !ok {
			return "", nil, ep, refuse(kindForbidden, codeForbidden,
				"device %q belongs to someone you share no room with; its owner must also list you in [agent] accept_from", to.ID)
		}
	}
	tc := s.hub.deviceConn(to.ID)
	if tc == nil {
		return "", nil, ep, refuse(kindConflict, codeDeviceOffline, "device %q is offline: start 'mesh agent run' on it", to.ID)
	}
	if ep = tc.endpoint(); ep.Port == 0 || ep.Fingerprint == "" {
		return "", nil, ep, refuse(kindConflict, codeDeviceOffline, "device %q has not announced its QUIC endpoint; restart its agent", to.ID)
	}
	return to.ID, tc, ep, nil
}

// endpoint is where this device session's agent listens for QUIC.
func (cn *conn) endpoint() protocol.Endpoint {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return protocol.Endpoint{IP: cn.ip, Port: cn.quicPort, Fingerprint: cn.fingerprint, Candidates: cn.candidates}
}

func (s *Server) createSession(c echo.Context) error {
	var req protocol.P2PSessionRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	d, _ := currentDevice(c)
	sess, err := s.newSession(c.Request().Context(), currentUser(c), d.ID, c.RealIP(), req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, sess)
}

// sessionAnswer is GET /api/p2p/sessions/{id}: an issued session as its
// owner may read it again, for the target's endpoint and pin. Never the token.
type sessionAnswer struct {
	SessionID         string    `json:"session_id"`
	ExpiresAt         time.Time `json:"expires_at"`
	Kind              string    `json:"kind"`
	InitiatorDeviceID string    `json:"initiator_device_id"` // "": any of the user's devices
	TargetDeviceID    string    `json:"target_device_id"`
	Endpoints         struct {
		Target protocol.Endpoint `json:"target"`
	} `json:"endpoints"`
}

// getSession lets the low-level send-file, which was given a session id and
// token by hand, ask for the target's pin with its own device token. Only
// the session's user (a user token or any of the user's device tokens) gets
// an answer; to anyone else the session does not exist.
func (s *Server) getSession(c echo.Context) error {
	ctx, id := c.Request().Context(), c.Param("id")
	p, err := s.store.SessionByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && p.UserID != currentUser(c).ID) {
		return refuse(kindNotFound, codeSessionNotFound, "you have no p2p session %.64q; ask for one with POST /api/p2p/sessions", id)
	} else if err != nil {
		return err
	}
	if d, ok := currentDevice(c); ok && p.InitiatorDevice != "" && !sameDeviceID(p.InitiatorDevice, d.ID) {
		return refuse(kindForbidden, codeForbidden, "session %q is for device %q, not this device %q: send from there, or ask for a session without initiator_device_id",
			p.ID, p.InitiatorDevice, d.ID)
	}
	if !s.cfg.now().Before(p.ExpiresAt) {
		return refuse(kindGone, codeSessionExpired, "session %q expired at %s; ask for a new one with POST /api/p2p/sessions",
			p.ID, p.ExpiresAt.Format(time.RFC3339))
	}
	to, err := s.store.DeviceByID(ctx, p.TargetDevice)
	if errors.Is(err, store.ErrNotFound) {
		return refuse(kindNotFound, codeDeviceNotFound, "the target of session %q, device %q, is no longer enrolled", p.ID, p.TargetDevice)
	} else if err != nil {
		return err
	}
	a := sessionAnswer{SessionID: p.ID, ExpiresAt: p.ExpiresAt, Kind: p.Kind, InitiatorDeviceID: p.InitiatorDevice, TargetDeviceID: to.ID}
	a.Endpoints.Target.Fingerprint = to.Fingerprint
	if tc := s.hub.deviceConn(to.ID); tc != nil && p.Kind == protocol.SessionFile {
		if ep := tc.endpoint(); ep.Fingerprint != "" { // what the running agent announced
			a.Endpoints.Target = ep
		}
	}
	if a.Endpoints.Target.Fingerprint == "" {
		return refuse(kindConflict, codeNoFingerprint, "device %q has no certificate on record; run 'mesh agent login' on it again", to.ID)
	}
	return c.JSON(http.StatusOK, a)
}

// onSessionRequest is p2p.session.request: the answer, p2p.session.created,
// reaches this session too when it is the initiator's agent; otherwise it
// is sent here as well.
func (s *Server) onSessionRequest(ctx context.Context, cn *conn, env protocol.Envelope) error {
	var req protocol.P2PSessionRequest
	if err := env.Unmarshal(&req); err != nil {
		return err
	}
	sess, err := s.newSession(ctx, cn.user, cn.device.ID, cn.ip, req)
	if err != nil {
		return err // a refusal reaches the client in the words of the HTTP API, with its WebSocket code
	}
	if cn.device.ID == "" || cn.device.ID != sess.InitiatorDeviceID { // the initiator's agent was told already
		cn.sendTo(protocol.TypeP2PSessionCreated, sess)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}
