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

// newSession issues a single-use token for initiator → target and tells both
// agents. caller is the device that asked (empty for a user's own session),
// callerIP the address the request came from. The target of a file session
// is a device's agent daemon; that of a terminal session is the agent
// sharing req.ShareID, and only it hears of the session.
func (s *Server) newSession(ctx context.Context, u store.User, caller, callerIP string, req protocol.P2PSessionRequest) (protocol.P2PSession, error) {
	var none protocol.P2PSession
	if err := req.Validate(); err != nil {
		return none, errorf(http.StatusBadRequest, "invalid_request", "%s", err.Error())
	}
	initiator := req.InitiatorDeviceID
	switch {
	case caller != "" && initiator != "" && initiator != caller:
		return none, errorf(http.StatusForbidden, "forbidden", "a device token can start sessions only for its own device %q", caller)
	case caller != "":
		initiator = caller
	case initiator == "":
		return none, missing("initiator_device_id")
	}
	from, err := s.store.DeviceByID(ctx, initiator)
	if errors.Is(err, store.ErrNotFound) || (err == nil && from.UserID != u.ID) {
		return none, errorf(http.StatusNotFound, "device_not_found", "you have no device %q; 'mesh agent login' enrols one", initiator)
	} else if err != nil {
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
	ini := protocol.Endpoint{IP: callerIP, Fingerprint: from.Fingerprint}
	fc := s.hub.deviceConn(from.ID)
	if fc != nil {
		ini = fc.endpoint()
	}
	if ini.Fingerprint == "" {
		return none, errorf(http.StatusConflict, "no_fingerprint", "device %q has no certificate on record; run 'mesh agent login' on it again", from.ID)
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
		Endpoints: protocol.Endpoints{Initiator: ini, Target: target},
	}
	if err := s.store.RecordSession(ctx, store.P2PSession{ID: sess.SessionID, TokenHash: store.HashToken(sess.SessionToken),
		Kind: sess.Kind, UserID: u.ID, InitiatorDevice: from.ID, TargetDevice: to, CreatedAt: now, ExpiresAt: sess.ExpiresAt}); err != nil {
		return none, err
	}
	ev, err := s.hub.event(protocol.TypeP2PSessionCreated, u.Username, sess)
	if err != nil {
		return none, err
	}
	tc.enqueue(ev)
	if fc != nil {
		fc.enqueue(ev)
	}
	s.log.Info("p2p session created", "session_id", sess.SessionID, "kind", sess.Kind, "from", from.ID, "to", to,
		"share_id", sess.ShareID, "user", u.Username)
	return sess, nil
}

// fileTarget resolves the target of a file session: device id's agent
// daemon, which must be online, announced, and u's own or a room-mate's.
func (s *Server) fileTarget(ctx context.Context, u store.User, fromDevice, id string) (string, *conn, protocol.Endpoint, error) {
	var ep protocol.Endpoint
	to, err := s.store.DeviceByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, ep, errorf(http.StatusNotFound, "device_not_found", "no device %q", id)
	} else if err != nil {
		return "", nil, ep, err
	}
	if to.ID == fromDevice {
		return "", nil, ep, errorf(http.StatusBadRequest, "invalid_request", "initiator and target are the same device")
	}
	if to.UserID != u.ID {
		if ok, err := s.hub.shareRoom(ctx, u.ID, to.UserID); err != nil {
			return "", nil, ep, err
		} else if !ok {
			return "", nil, ep, errorf(http.StatusForbidden, "forbidden",
				"device %q belongs to someone you share no room with; its owner must also list you in [agent] accept_from", to.ID)
		}
	}
	tc := s.hub.deviceConn(to.ID)
	if tc == nil {
		return "", nil, ep, errorf(http.StatusConflict, "device_offline", "device %q is offline: start 'mesh agent run' on it", to.ID)
	}
	if ep = tc.endpoint(); ep.Port == 0 || ep.Fingerprint == "" {
		return "", nil, ep, errorf(http.StatusConflict, "device_offline", "device %q has not announced its QUIC endpoint; restart its agent", to.ID)
	}
	return to.ID, tc, ep, nil
}

// endpoint is where this device session's agent listens for QUIC.
func (c *conn) endpoint() protocol.Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return protocol.Endpoint{IP: c.ip, Port: c.quicPort, Fingerprint: c.fingerprint}
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

// onSessionRequest is p2p.session.request: the answer, p2p.session.created,
// reaches this session too when it is the initiator's agent; otherwise it
// is sent here as well.
func (s *Server) onSessionRequest(ctx context.Context, c *conn, env protocol.Envelope) error {
	var req protocol.P2PSessionRequest
	if err := env.Unmarshal(&req); err != nil {
		return err
	}
	sess, err := s.newSession(ctx, c.user, c.device.ID, c.ip, req)
	var ae *apiError
	if errors.As(err, &ae) {
		code := map[int]string{http.StatusNotFound: protocol.CodeNotFound, http.StatusForbidden: protocol.CodeForbidden,
			http.StatusConflict: protocol.CodeUnavailable}[ae.Status]
		if code == "" {
			code = protocol.CodeInvalid
		}
		return wsErr(code, "%s", ae.Message)
	} else if err != nil {
		return err
	}
	if c.device.ID != sess.InitiatorDeviceID {
		c.sendTo(protocol.TypeP2PSessionCreated, sess)
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
