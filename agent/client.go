package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"mesh/protocol"
)

// ErrRevoked means the server no longer knows this device's token.
var ErrRevoked = errors.New("this device's token was refused (revoked or replaced): run 'mesh agent login' again")

// APIError is an error answer from the server's HTTP API.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("server: %s (%s)", e.Message, e.Code) }

// client talks to the server's HTTP API. Its callers have checked base
// with CheckServerURL ([Config.Validate], [Login]); the client itself
// refuses to be redirected from https:// down to http://.
type client struct {
	base  string
	token string // Bearer: a JWT or a device token
	http  *http.Client
}

func newClient(base, token string) *client {
	return &client{base: strings.TrimRight(base, "/"), token: token,
		http: &http.Client{Timeout: 30 * time.Second, CheckRedirect: refuseDowngrade}}
}

// refuseDowngrade follows up to 10 redirects, none from https:// to
// http://: the next request (a password, a token) would cross in clear.
func refuseDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("redirect from %s to %s: %w", via[0].URL.Redacted(), req.URL.Redacted(), ErrCleartext)
	}
	return nil
}

// call sends body as JSON to method path and decodes a 2xx answer into out.
func (c *client) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach the server at %s: %w", c.base, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return decodeAnswer(res.StatusCode, b, strings.HasPrefix(c.token, "mdt_"), out)
}

// maxErrorText bounds the text of an error answer shown to the user: a proxy's
// HTML error page is not worth a screenful.
const maxErrorText = 200

// decodeAnswer turns the server's answer into out (2xx) or an error: an
// [*APIError] carrying the server's error envelope, or the start of whatever
// else came back, as one line of at most maxErrorText bytes. A 401 to a
// device token also wraps [ErrRevoked].
func decodeAnswer(status int, b []byte, deviceToken bool, out any) error {
	if status/100 != 2 {
		var e struct {
			Error struct{ Code, Message string }
		}
		ae := &APIError{Status: status}
		if json.Unmarshal(b, &e) != nil || e.Error.Message == "" {
			ae.Message = oneLine(string(b))
		} else {
			ae.Code, ae.Message = oneLine(e.Error.Code), oneLine(e.Error.Message)
		}
		if ae.Code == "" {
			ae.Code = "http_" + strconv.Itoa(status)
		}
		if status == http.StatusUnauthorized && deviceToken {
			return fmt.Errorf("%w: %w", ErrRevoked, ae)
		}
		return ae
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("unexpected answer from the server (%s): %w", oneLine(string(b)), err)
	}
	return nil
}

// oneLine makes s safe to print in a log line or terminal: valid UTF-8,
// control characters as spaces, at most maxErrorText bytes.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxErrorText {
		return s
	}
	cut := maxErrorText - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// login exchanges a username and password for a user token.
func (c *client) login(ctx context.Context, username, password string) (string, error) {
	var out struct {
		AccessToken string `json:"access_token"`
	}
	err := c.call(ctx, http.MethodPost, "/api/auth/login", map[string]string{"username": username, "password": password}, &out)
	return out.AccessToken, err
}

// enroll registers this device (or rotates its token) and returns the device token.
func (c *client) enroll(ctx context.Context, deviceID, fingerprint string) (string, error) {
	var out struct {
		DeviceToken string `json:"device_token"`
	}
	err := c.call(ctx, http.MethodPost, "/api/devices", map[string]string{"device_id": deviceID, "fingerprint": fingerprint}, &out)
	return out.DeviceToken, err
}

// session asks the server to introduce this device to target.
func (c *client) session(ctx context.Context, kind, target string, cands []protocol.Candidate) (protocol.P2PSession, error) {
	var s protocol.P2PSession
	err := c.call(ctx, http.MethodPost, "/api/p2p/sessions", protocol.P2PSessionRequest{Kind: kind, TargetDeviceID: target, Candidates: cands}, &s)
	return s, err
}

// terminalSession asks the server to introduce this device to the agent
// sharing terminal shareID.
func (c *client) terminalSession(ctx context.Context, shareID string, cands []protocol.Candidate) (protocol.P2PSession, error) {
	var s protocol.P2PSession
	err := c.call(ctx, http.MethodPost, "/api/p2p/sessions", protocol.P2PSessionRequest{Kind: protocol.SessionTerminal, ShareID: shareID, Candidates: cands}, &s)
	return s, err
}
