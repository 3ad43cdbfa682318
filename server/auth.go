package server

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"

	"mesh/store"
)

const (
	userKey   = "mesh.user"
	deviceKey = "mesh.device"
)

// A credential is a user's login token (a JWT, from the web app or the
// API) or a device token (mdt_…, in agent.toml on every enrolled machine).
// A device token gets only what an agent does, so a stolen agent.toml is
// one machine's access, not the account.
type authRule struct {
	device bool // device tokens are accepted too
	query  bool // the token may come as ?token= (WebSocket upgrades only)
}

// requireUser admits a user's login token only.
func (s *Server) requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return s.authenticate(authRule{}, next)
}

// requireAgent admits a user's login token or a device token: the routes
// an agent uses.
func (s *Server) requireAgent(next echo.HandlerFunc) echo.HandlerFunc {
	return s.authenticate(authRule{device: true}, next)
}

// requireSocket is requireAgent that also reads ?token=, since browsers
// cannot set headers on a WebSocket. Anywhere else a token in the URL
// would end up in proxy logs, browser history and Referer headers.
func (s *Server) requireSocket(next echo.HandlerFunc) echo.HandlerFunc {
	return s.authenticate(authRule{device: true, query: true}, next)
}

// authenticate sets the user (and, for a device token, the device) of the
// request, or answers 401 for a missing or ended token and 403 for a
// device token where rule wants a user.
func (s *Server) authenticate(rule authRule, next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		var tok string
		if h := c.Request().Header.Get("Authorization"); h != "" {
			scheme, rest, _ := strings.Cut(h, " ")
			if !strings.EqualFold(scheme, "bearer") {
				return refuse(kindUnauthorized, codeUnauthorized, "send the token as 'Authorization: Bearer TOKEN'")
			}
			tok = strings.TrimSpace(rest)
		} else if q := c.QueryParam("token"); q != "" {
			if !rule.query {
				return refuse(kindUnauthorized, codeUnauthorized,
					"send the token as 'Authorization: Bearer TOKEN'; a token in the URL is accepted only on /ws")
			}
			tok = q
		}
		if tok == "" {
			return refuse(kindUnauthorized, codeUnauthorized, "log in first and send the token as 'Authorization: Bearer TOKEN'")
		}
		if strings.HasPrefix(tok, deviceTokenPrefix) {
			return s.authDevice(c, rule, tok, next)
		}
		id, gen, err := s.key.verify(tok, s.cfg.now())
		if err != nil {
			return refuse(kindUnauthorized, codeInvalidToken, "token is invalid or expired; log in again")
		}
		u, err := s.store.UserByID(c.Request().Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			return refuse(kindUnauthorized, codeInvalidToken, "the account of this token no longer exists; log in again")
		} else if err != nil {
			return err
		}
		if gen != u.TokenGen {
			return refuse(kindUnauthorized, codeInvalidToken, "this token was ended by a password change; log in again")
		}
		c.Set(userKey, u)
		return next(c)
	}
}

func (s *Server) authDevice(c echo.Context, rule authRule, tok string, next echo.HandlerFunc) error {
	ctx := c.Request().Context()
	d, err := s.store.DeviceByToken(ctx, store.HashToken(tok))
	if errors.Is(err, store.ErrNotFound) {
		return refuse(kindUnauthorized, codeInvalidToken,
			"device token is unknown, revoked or ended by a password change; run 'mesh agent login' again")
	} else if err != nil {
		return err
	}
	if !rule.device {
		return refuse(kindLoginRequired, codeUserLoginRequired,
			"a device token may only do an agent's work; log in as the user (the web app, or POST /api/auth/login) for this")
	}
	u, err := s.store.UserByID(ctx, d.UserID)
	if err != nil {
		return err
	}
	c.Set(userKey, u)
	c.Set(deviceKey, d)
	return next(c)
}

// currentUser is the user the request authenticated as.
func currentUser(c echo.Context) store.User {
	u, _ := c.Get(userKey).(store.User) // set by authenticate on every route that calls this
	return u
}

// currentDevice is the device whose token authenticated the request, if any.
func currentDevice(c echo.Context) (store.Device, bool) {
	d, ok := c.Get(deviceKey).(store.Device)
	return d, ok
}

// credentialPoll is how often the server looks for credentials ended by
// another process (`mesh user passwd` writes the database directly).
const credentialPoll = 500 * time.Millisecond

// watchCredentials closes the live sessions whose credentials were ended,
// whoever ended them, until ctx is done. Sessions are checked once per
// change, not once per frame.
func (s *Server) watchCredentials(ctx context.Context) {
	last, err := s.store.LastCredentialChange(ctx)
	if err != nil {
		s.log.Error("credential watch", "err", err)
	}
	t := time.NewTicker(credentialPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changes, err := s.store.CredentialChanges(ctx, last)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("credential watch", "err", err)
			}
			continue
		}
		for _, ch := range changes {
			s.hub.endCredentials(ch.UserID, ch.TokenGen)
			last = ch.Serial
		}
	}
}

// endCredentials closes userID's sessions opened with credentials older
// than generation gen.
func (h *hub) endCredentials(userID, gen int64) {
	h.mu.RLock()
	var stale []*conn
	for cn := range h.conns[userID] {
		if cn.user.TokenGen < gen {
			stale = append(stale, cn)
		}
	}
	h.mu.RUnlock()
	for _, cn := range stale { // outside the lock, as closeDevice does
		if cn.close(websocket.ClosePolicyViolation, "credentials ended by a password change; log in again") {
			h.log.Info("session ended: password changed", "user", cn.user.Username, "device_id", cn.device.ID)
		}
	}
}
