package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"mesh/server/netguard"
	"mesh/server/notify/gotify"
	"mesh/store"
)

// pushSettingsAnswer is GET /api/notify: the token is never shown back in full.
type pushSettingsAnswer struct {
	GotifyURL     string          `json:"gotify_url"`
	TokenSet      bool            `json:"token_set"`
	TokenHint     string          `json:"token_hint,omitempty"`
	ServerDefault bool            `json:"server_default"` // pushes go to the server's Gotify when you set none
	Kinds         map[string]bool `json:"kinds"`
	MutedRooms    []int64         `json:"muted_rooms"`
	LastError     string          `json:"last_error,omitempty"`
	LastErrorAt   *time.Time      `json:"last_error_at,omitempty"`
}

func (s *Server) getPushSettings(c echo.Context) error {
	ctx, u := c.Request().Context(), currentUser(c)
	set, err := s.store.NotifySettings(ctx, u.ID)
	if err != nil {
		return err
	}
	muted, err := s.store.MutedRooms(ctx, u.ID)
	if err != nil {
		return err
	}
	a := pushSettingsAnswer{GotifyURL: set.GotifyURL, TokenSet: set.GotifyToken != "", ServerDefault: s.cfg.Notify.Gotify.URL != "",
		Kinds: map[string]bool{}, MutedRooms: append([]int64{}, muted...), LastError: set.LastError}
	if a.TokenSet {
		a.TokenHint = gotify.Target{Token: set.GotifyToken}.Hint()
	}
	for _, k := range pushKinds {
		a.Kinds[k] = !slices.Contains(set.KindsOff, k)
	}
	if !set.LastErrorAt.IsZero() && set.LastError != "" {
		a.LastErrorAt = &set.LastErrorAt
	}
	return c.JSON(http.StatusOK, a)
}

// pushSettingsRequest is PUT /api/notify; absent fields stay as they are. An
// empty gotify_url (with no token) removes your own target.
type pushSettingsRequest struct {
	GotifyURL   *string         `json:"gotify_url"`
	GotifyToken *string         `json:"gotify_token"`
	Kinds       map[string]bool `json:"kinds"`
}

func (s *Server) putPushSettings(c echo.Context) error {
	var req pushSettingsRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	ctx, u := c.Request().Context(), currentUser(c)
	set, err := s.store.NotifySettings(ctx, u.ID)
	if err != nil {
		return err
	}
	if req.GotifyURL != nil {
		set.GotifyURL = *req.GotifyURL
	}
	if req.GotifyToken != nil {
		set.GotifyToken = *req.GotifyToken
	}
	if set.GotifyURL == "" && req.GotifyURL != nil {
		set.GotifyToken = ""
	}
	if set.GotifyURL != "" {
		if err := (gotify.Target{URL: set.GotifyURL, Token: set.GotifyToken}).Validate(); err != nil {
			return refuse(kindInvalid, codeInvalidGotify, "%s", err.Error())
		}
		// Early and partial: names are checked again, after DNS, on every push.
		u, _ := url.Parse(set.GotifyURL) // Validate parsed it
		if err := s.push.guard.CheckHost(u.Hostname()); err != nil {
			return refuse(kindInvalid, codePrivateTarget, "gotify_url %s: %s; %s", u.Redacted(), err.Error(), privateHint)
		}
	}
	for k, on := range req.Kinds {
		if !slices.Contains(pushKinds, k) {
			return refuse(kindInvalid, codeInvalidKind, "unknown kind %q: want dm, mention, call or file", k)
		}
		set.KindsOff = slices.DeleteFunc(set.KindsOff, func(o string) bool { return o == k })
		if !on {
			set.KindsOff = append(set.KindsOff, k)
		}
	}
	if err := s.store.SetNotifySettings(ctx, set); err != nil {
		return err
	}
	return s.getPushSettings(c)
}

// testPush sends a push to you now and says how it went: a self-hoster's
// first check.
func (s *Server) testPush(c echo.Context) error {
	ctx, u := c.Request().Context(), currentUser(c)
	t, _, err := s.push.target(ctx, u.ID)
	if err != nil {
		return err
	}
	if t.URL == "" {
		return refuse(kindConflict, codeNoTarget, "no Gotify target: set yours (URL and application token) or ask the admin to set [notify.gotify]")
	}
	id, err := s.push.send(ctx, t, gotify.Message{Title: "mesh test", Message: "Pushes from mesh reach you, " + u.Username + ".",
		Priority: pushPriority[pushKindTest], ClickURL: s.clickURL("#/chat")})
	if err != nil {
		if errors.Is(err, gotify.ErrRejected) { // pushes would fail the same way: show it in the settings
			s.push.record(s.store.SetNotifyError(ctx, u.ID, failureText(err)))
		}
		if errors.Is(err, netguard.ErrForbiddenAddress) {
			return refuse(kindForbidden, codePrivateTarget, "%s", failureText(err))
		}
		return refuse(kindUpstream, codePushFailed, "the push did not go through: %s", err.Error())
	}
	s.push.record(s.store.SetNotifyError(ctx, u.ID, "")) // a push went through: clear an old failure
	return c.JSON(http.StatusOK, map[string]any{"ok": true, "gotify_message_id": id})
}

// muteRoom is PUT /api/rooms/:id/mute {"muted":bool}.
func (s *Server) muteRoom(c echo.Context) error {
	r, _, err := s.pathRoom(c, false)
	if err != nil {
		return err
	}
	var req struct {
		Muted *bool `json:"muted"`
	}
	if err := bind(c, &req); err != nil {
		return err
	}
	if req.Muted == nil {
		return missing("muted")
	}
	if err := s.store.MuteRoom(c.Request().Context(), currentUser(c).ID, r.ID, *req.Muted); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"room_id": r.ID, "muted": *req.Muted})
}

// SendTestPush sends a test push to username's Gotify target (theirs, else
// the server's [notify.gotify]), or with username empty to the server's, and
// describes where it went. It is `mesh notify test`: it works on the
// database directly, with or without a server running.
func SendTestPush(ctx context.Context, cfg Config, st *store.Store, username string) (string, error) {
	p := newPusher(cfg.Notify, st, slog.New(slog.DiscardHandler)) // what it does here logs nothing
	var t route
	who := "the server's [notify.gotify] target"
	if username != "" {
		u, err := st.UserByName(ctx, username)
		if err != nil {
			return "", fmt.Errorf("user %q: %w", username, err)
		}
		if t, _, err = p.target(ctx, u.ID); err != nil {
			return "", err
		}
		who = username + "'s target"
	} else if cfg.Notify.Gotify.URL != "" {
		var err error
		if t, _, err = p.target(ctx, 0); err != nil {
			return "", err
		}
	}
	if t.URL == "" {
		return "", errors.New("no Gotify target: set [notify.gotify] url and token (or token_file), or a user's own in the web app")
	}
	id, err := p.send(ctx, t, gotify.Message{Title: "mesh test", Message: "Pushes from mesh reach this device.", Priority: pushPriority[pushKindTest]})
	if errors.Is(err, netguard.ErrForbiddenAddress) {
		return "", fmt.Errorf("push to %s refused: %w; allow it with [notify] allow_private_targets = true or allowed_targets", who, err)
	} else if err != nil {
		return "", fmt.Errorf("push to %s at %s failed: %w", who, t.URL, err)
	}
	return fmt.Sprintf("sent to %s at %s (Gotify message %d)", who, t.URL, id), nil
}
