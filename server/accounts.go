package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"

	"mesh/store"
)

// Login throttling: 429 after this many failures within the window, per
// username and per client address.
const (
	throttleWindow  = 15 * time.Minute
	maxUserFailures = 10
	maxIPFailures   = 30
)

type credentials struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	InviteCode string `json:"invite_code"`
}

type tokenAnswer struct {
	AccessToken AccessToken `json:"access_token"`
	TokenType   string      `json:"token_type"`
	ExpiresIn   int64       `json:"expires_in"` // seconds
}

type meAnswer struct {
	ID        int64     `json:"id"`
	Username  string    `json:"username"`
	IsAdmin   bool      `json:"is_admin"`
	CreatedAt time.Time `json:"created_at"`
}

// checkUsername applies the account rule (3-32 of a-z 0-9 _ . -, compared
// case-insensitively) and returns the canonical (lower-case) name. Its
// refusal reads as plain text, so the admin CLI prints it as it is.
func checkUsername(name string) (string, error) {
	n := strings.ToLower(name)
	if l := utf8.RuneCountInString(n); l < 3 || l > 32 {
		return "", refuse(kindInvalid, codeInvalidUsername, "username must be 3 to 32 characters long")
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return "", refuse(kindInvalid, codeInvalidUsername,
				"username may use only letters a-z, digits, '_', '.' and '-' (found %q)", r)
		}
	}
	return n, nil
}

// maxPassword is bcrypt's limit: it ignores every byte after it.
const maxPassword = 72

// checkPassword applies the account rules. Passwords past bcrypt's 72 bytes are
// refused rather than silently truncated.
func checkPassword(pw string) error {
	switch {
	case len(pw) < 6:
		return refuse(kindInvalid, codeInvalidPassword, "password must be at least 6 bytes long")
	case len(pw) > maxPassword:
		return refuse(kindInvalid, codeInvalidPassword, "password must be at most 72 bytes long (bcrypt's limit); choose a shorter one")
	}
	return nil
}

// hashPassword checks pw and hashes it at the configured cost.
func hashPassword(pw string, cost int) (string, error) {
	if err := checkPassword(pw); err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// bindCredentials reads a register or login body; both fields are required.
func bindCredentials(c echo.Context) (credentials, error) {
	var req credentials
	if err := bind(c, &req); err != nil {
		return req, err
	}
	if req.Username == "" {
		return req, missing("username")
	} else if req.Password == "" {
		return req, missing("password")
	}
	return req, nil
}

func (s *Server) register(c echo.Context) error {
	req, err := bindCredentials(c)
	if err != nil {
		return err
	}
	name, err := checkUsername(req.Username)
	if err != nil {
		return err
	}
	hash, err := hashPassword(req.Password, s.cfg.Auth.BcryptCost)
	if err != nil {
		return err
	}
	u, err := s.store.Register(c.Request().Context(), name, hash, s.admission, req.InviteCode)
	switch {
	case errors.Is(err, store.ErrConflict):
		return refuse(kindConflict, codeUsernameTaken, "username %q is taken; choose another", name)
	case errors.Is(err, store.ErrRegistrationClosed):
		return refuse(kindForbidden, codeRegistrationClosed, "registration is closed on this server; ask its admin for an account")
	case errors.Is(err, store.ErrInviteRequired):
		return refuse(kindForbidden, codeInviteRequired, "registration needs an invite code; ask a member for one (mesh user invite)")
	case errors.Is(err, store.ErrInviteInvalid):
		return refuse(kindForbidden, codeInviteInvalid, "invite code is unknown, used or expired; ask for a new one")
	case err != nil:
		return err
	}
	s.log.Info("user registered", "username", u.Username, "admin", u.IsAdmin, "ip", c.RealIP())
	return s.answerToken(c, http.StatusCreated, u)
}

func (s *Server) login(c echo.Context) error {
	req, err := bindCredentials(c)
	if err != nil {
		return err
	}
	now := s.cfg.now()
	userKey, ipKey := "u:"+strings.ToLower(req.Username), "ip:"+c.RealIP()
	wait := max(s.throttle.wait(userKey, maxUserFailures, now), s.throttle.wait(ipKey, maxIPFailures, now))
	if wait > 0 {
		secs := int64(math.Ceil(wait.Seconds()))
		c.Response().Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		return refuse(kindRateLimited, codeRateLimited, "too many failed logins; try again in %d seconds", secs)
	}
	u, err := s.store.UserByName(c.Request().Context(), req.Username)
	hash := s.dummyHash() // unknown users cost one bcrypt too, so timing tells nothing
	if err == nil {
		hash = u.PasswordHash
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	// bcrypt reads only the first 72 bytes, so a longer password would log
	// in as its prefix; it is refused after the same compare, so it costs
	// the same time and gets the same answer as any wrong pair.
	cerr := bcrypt.CompareHashAndPassword([]byte(hash), []byte(req.Password))
	if cerr != nil || err != nil || len(req.Password) > maxPassword {
		s.throttle.fail(userKey, now)
		s.throttle.fail(ipKey, now)
		s.log.Info("login failed", "username", strings.ToLower(req.Username), "ip", c.RealIP())
		return refuse(kindUnauthorized, codeInvalidCredentials, "wrong username or password")
	}
	s.throttle.reset(userKey)
	return s.answerToken(c, http.StatusOK, u)
}

func (s *Server) answerToken(c echo.Context, status int, u store.User) error {
	tok, err := s.key.issue(u, s.cfg.now(), s.cfg.Auth.TokenTTL)
	if err != nil {
		return err
	}
	return c.JSON(status, tokenAnswer{AccessToken: tok, TokenType: "bearer", ExpiresIn: int64(s.cfg.Auth.TokenTTL.Seconds())})
}

func (s *Server) me(c echo.Context) error {
	u := currentUser(c)
	return c.JSON(http.StatusOK, meAnswer{ID: u.ID, Username: u.Username, IsAdmin: u.IsAdmin, CreatedAt: u.CreatedAt})
}

// changePassword is POST /api/me/password {"current","new"}. It ends every
// credential issued before (other browsers, scripts, device tokens; their
// live sessions close) and answers with a fresh token for this caller.
func (s *Server) changePassword(c echo.Context) error {
	var req struct {
		Current string `json:"current"`
		New     string `json:"new"`
	}
	if err := bind(c, &req); err != nil {
		return err
	} else if req.Current == "" {
		return missing("current")
	} else if req.New == "" {
		return missing("new")
	}
	ctx, u := c.Request().Context(), currentUser(c)
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(req.Current)) != nil || len(req.Current) > maxPassword {
		return refuse(kindForbidden, codeInvalidCredentials, "the current password is wrong; the password was not changed")
	}
	hash, err := hashPassword(req.New, s.cfg.Auth.BcryptCost)
	if err != nil {
		return err
	}
	if err := s.store.SetPassword(ctx, u.Username, hash); err != nil {
		return err
	}
	nu, err := s.store.UserByID(ctx, u.ID)
	if err != nil {
		return err
	}
	s.hub.endCredentials(nu.ID, nu.TokenGen)
	s.log.Info("password changed", "user", u.Username, "ip", c.RealIP())
	return s.answerToken(c, http.StatusOK, nu)
}

// AddUser creates an account from the admin CLI, whatever the registration
// policy, with the same name and password rules as the API.
func AddUser(ctx context.Context, st *store.Store, cfg AuthConfig, username, password string, admin bool) (store.User, error) {
	name, err := checkUsername(username)
	if err != nil {
		return store.User{}, err
	}
	hash, err := hashPassword(password, cfg.BcryptCost)
	if err != nil {
		return store.User{}, err
	}
	u, err := st.AddUser(ctx, name, hash, admin)
	if errors.Is(err, store.ErrConflict) {
		return store.User{}, fmt.Errorf("username %q is taken; pick another or use 'mesh user passwd'", name)
	}
	return u, err
}

// SetPassword replaces a user's password from the admin CLI.
func SetPassword(ctx context.Context, st *store.Store, cfg AuthConfig, username, password string) error {
	hash, err := hashPassword(password, cfg.BcryptCost)
	if err != nil {
		return err
	}
	if err := st.SetPassword(ctx, username, hash); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %q; 'mesh user list' shows who exists", username)
	} else if err != nil {
		return err
	}
	return nil
}

// CreateInvite makes a single-use invite code valid for cfg.InviteTTL.
func CreateInvite(ctx context.Context, st *store.Store, cfg AuthConfig) (string, error) {
	return st.CreateInvite(ctx, 0, cfg.InviteTTL)
}

// throttle counts failed logins per key in a sliding window. It keeps only
// failure times, so memory is bounded by attackers' failures in one window.
type throttle struct {
	window time.Duration
	mu     sync.Mutex // guards fails
	fails  map[string][]time.Time
}

func newThrottle(window time.Duration) *throttle {
	return &throttle{window: window, fails: make(map[string][]time.Time)}
}

// wait returns how long key must wait before another attempt, 0 if it may
// try now, given that limit failures within the window block it.
func (t *throttle) wait(key string, limit int, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	fs := t.prune(key, now)
	if len(fs) < limit {
		return 0
	}
	// Blocked until enough of the oldest failures leave the window.
	return fs[len(fs)-limit].Add(t.window).Sub(now)
}

// fail records one failure for key.
func (t *throttle) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fails[key] = append(t.prune(key, now), now)
	if len(t.fails) > 4096 {
		for k := range t.fails {
			t.prune(k, now)
		}
	}
}

// reset forgets key's failures (after a successful login).
func (t *throttle) reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.fails, key)
}

// prune drops failures older than the window; t.mu must be held.
func (t *throttle) prune(key string, now time.Time) []time.Time {
	fs := t.fails[key]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) >= t.window {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(t.fails, key)
		return nil
	}
	t.fails[key] = fs
	return fs
}
