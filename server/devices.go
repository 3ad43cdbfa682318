package server

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"

	"mesh/protocol"
	"mesh/store"
)

// deviceTokenPrefix tells device tokens from JWTs at a glance (and in logs).
const deviceTokenPrefix = "mdt_"

// DeviceToken is an agent's credential. It never appears in logs.
type DeviceToken string

// LogValue hides the token from slog.
func (DeviceToken) LogValue() slog.Value { return slog.StringValue("REDACTED") }

type deviceAnswer struct {
	DeviceID    string    `json:"device_id"`
	Online      bool      `json:"online"`
	LastSeen    time.Time `json:"last_seen"`
	Fingerprint string    `json:"fingerprint"`
}

// validDeviceID: host names and the like, 1–64 of A-Z a-z 0-9 . _ -.
func validDeviceID(id string) bool {
	if len(id) < 1 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func (s *Server) enrollDevice(c echo.Context) error {
	var req struct {
		DeviceID    string `json:"device_id"`
		Fingerprint string `json:"fingerprint"`
	}
	if err := bind(c, &req); err != nil {
		return err
	}
	if req.DeviceID == "" {
		return missing("device_id")
	} else if !validDeviceID(req.DeviceID) {
		return refuse(kindInvalid, codeInvalidDeviceID, "device_id must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")
	} else if req.Fingerprint != "" && !protocol.ValidFingerprint(req.Fingerprint) {
		return refuse(kindInvalid, codeInvalidFingerprint, "fingerprint must be \"sha256:\" and 64 lowercase hex digits")
	}
	if _, ok := currentDevice(c); ok {
		return refuse(kindForbidden, codeForbidden, "log in as the user (not with a device token) to enrol a device")
	}
	tok := DeviceToken(deviceTokenPrefix + randomToken())
	u := currentUser(c)
	if _, err := s.store.EnrollDevice(c.Request().Context(), req.DeviceID, u.ID, store.HashToken(string(tok)), req.Fingerprint); errors.Is(err, store.ErrConflict) {
		return refuse(kindConflict, codeDeviceTaken, "device id %q belongs to another user; pick another with --device", req.DeviceID)
	} else if err != nil {
		return err
	}
	// A rotated token ends the sessions of the old one.
	s.hub.closeDevice(req.DeviceID, websocket.ClosePolicyViolation, "device token replaced; log in again")
	s.log.Info("device enrolled", "device_id", req.DeviceID, "user", u.Username)
	return c.JSON(http.StatusCreated, struct {
		DeviceID    string      `json:"device_id"`
		DeviceToken DeviceToken `json:"device_token"` // shown once
	}{req.DeviceID, tok})
}

func (s *Server) listDevices(c echo.Context) error {
	ds, err := s.store.Devices(c.Request().Context(), currentUser(c).ID)
	if err != nil {
		return err
	}
	out := make([]deviceAnswer, len(ds))
	for i, d := range ds {
		out[i] = s.deviceAnswer(d)
	}
	return c.JSON(http.StatusOK, map[string]any{"devices": out})
}

func (s *Server) revokeDevice(c echo.Context) error {
	u, id := currentUser(c), c.Param("id")
	d, err := s.store.RevokeDevice(c.Request().Context(), u.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return refuse(kindNotFound, codeNotFound, "you have no device %q", id)
	} else if err != nil {
		return err
	}
	id = d.ID // as listed, whatever case the path used
	s.hub.closeDevice(id, websocket.ClosePolicyViolation, "device revoked")
	if ev, err := s.hub.event(protocol.TypeDeviceRevoked, u.Username, protocol.DeviceRevoked{DeviceID: id}); err == nil {
		s.hub.publishUser(u.ID, ev, nil)
	}
	s.log.Info("device revoked", "device_id", id, "user", u.Username)
	return c.NoContent(http.StatusNoContent)
}

// getDevice is GET /api/devices/:id: one of the user's devices; a device
// token sees only its own entry (an agent checking itself).
func (s *Server) getDevice(c echo.Context) error {
	u, id := currentUser(c), c.Param("id")
	if d, ok := currentDevice(c); ok && !sameDeviceID(d.ID, id) {
		return refuse(kindLoginRequired, codeUserLoginRequired,
			"a device token may read only its own entry %q; log in as the user to see the others", d.ID)
	}
	d, err := s.store.DeviceByID(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && d.UserID != u.ID) {
		return refuse(kindNotFound, codeNotFound, "you have no device %q", id)
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.deviceAnswer(d))
}

func (s *Server) deviceAnswer(d store.Device) deviceAnswer {
	return deviceAnswer{DeviceID: d.ID, Online: s.hub.deviceReady(d.ID), LastSeen: d.LastSeen, Fingerprint: d.Fingerprint}
}

// sameDeviceID compares device ids the way usernames are compared.
func sameDeviceID(a, b string) bool { return store.DeviceKey(a) == store.DeviceKey(b) }
