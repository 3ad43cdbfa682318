// Package gotify sends pushes through a Gotify server's REST API
// (POST /message with an application token) and sorts failures into those
// worth retrying ([ErrTemporary]) and those that are not ([ErrRejected]).
//
// It owns the wire format and the error classes; a [netguard.Guard]
// transport keeps targets users choose off the server's own networks. What
// to push, to whom, when to retry and where targets are stored belong to the server
// package.
// The token travels only in the X-Gotify-Key header; it is kept out of URLs,
// error strings, fmt output and logs.
package gotify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mesh/server/netguard"
	"net/http"
	"time"
)

// Errors that Send's errors match with errors.Is.
var (
	// ErrRejected: Gotify (or the target itself) refused the push; the same
	// push to the same target will fail again, so callers must not retry.
	ErrRejected = errors.New("gotify push rejected")
	// ErrTemporary: the push may succeed later (5xx, 408/429, network error,
	// timeout, cancelled context); the error also wraps its cause.
	ErrTemporary = errors.New("gotify unavailable")
)

const (
	defaultTimeout = 10 * time.Second
	maxAnswer      = 64 << 10 // Gotify answers are small; a proxy's error page need not be read whole
)

// RejectedError is a 3xx or 4xx answer to a push. It matches [ErrRejected].
type RejectedError struct {
	Status  int    // HTTP status code
	Message string // a fixed hint chosen by Status; never text from the answer
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("gotify answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Is makes errors.Is(err, ErrRejected) true for every RejectedError.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// Message is one push. ClickURL, if set, goes into extras as
// {"client::notification":{"click":{"url":ClickURL}}}, which Gotify's
// Android app opens when the notification is tapped.
type Message struct {
	Title    string // empty: Gotify uses the application's name
	Message  string // required by Gotify; Markdown is shown as text unless extras say otherwise
	Priority int    // sent as is: Gotify's 0 (silent) to 10
	ClickURL string
}

// Client posts messages to Gotify servers. Its zero value is ready to use;
// it is safe for concurrent use.
type Client struct {
	// HTTP does the requests; nil means a client with a 10 s timeout over
	// http.DefaultTransport. Its CheckRedirect is overridden: see Send. For
	// targets users set, use a [netguard.Guard.Transport].
	HTTP *http.Client
}

// body is Gotify's CreateMessage request (model.MessageExternal).
type body struct {
	Title    string         `json:"title,omitempty"`
	Message  string         `json:"message"`
	Priority int            `json:"priority"`
	Extras   map[string]any `json:"extras,omitempty"`
}

// Send posts m to t and returns the id Gotify gave the stored message.
//
// Errors: an invalid t, an address a [netguard.Guard] refused (also matching
// [netguard.ErrForbiddenAddress]), a 3xx or 4xx answer (except 408 and 429), or a
// 2xx answer that is not a Gotify message match [ErrRejected] (the 3xx/4xx
// ones are a [*RejectedError]); a 5xx, 408, 429, network error, timeout or
// done ctx match [ErrTemporary] and wrap the cause. No error quotes the
// answer. Redirects are not followed, so no redirect escapes the guard:
// net/http would replay X-Gotify-Key to whatever host a redirect names, and
// it turns a redirected POST into a GET that cannot push anyway.
func (c *Client) Send(ctx context.Context, t Target, m Message) (id int64, err error) {
	u, err := t.parse()
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	b := body{Title: m.Title, Message: m.Message, Priority: m.Priority}
	if m.ClickURL != "" {
		b.Extras = map[string]any{"client::notification": map[string]any{"click": map[string]any{"url": m.ClickURL}}}
	}
	payload, err := json.Marshal(b)
	if err != nil { // only strings and an int: cannot happen
		return 0, fmt.Errorf("%w: encode message: %w", ErrRejected, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.JoinPath("message").String(), bytes.NewReader(payload))
	if err != nil { // the URL parsed and was rebuilt, the method is valid: cannot happen
		return 0, fmt.Errorf("%w: build request: %w", ErrRejected, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Gotify-Key", t.Token)

	resp, err := c.httpClient().Do(req)
	var refused *netguard.AddressError
	switch {
	case errors.As(err, &refused): // the same target is refused again until the admin allows it
		return 0, fmt.Errorf("%w: %s: %w", ErrRejected, u.Redacted(), refused)
	case errors.Is(err, netguard.ErrForbiddenAddress):
		return 0, fmt.Errorf("%w: %s: %w", ErrRejected, u.Redacted(), netguard.ErrForbiddenAddress)
	case err != nil: // *url.Error names the URL without userinfo; the token is only in a header
		return 0, fmt.Errorf("%w: %w", ErrTemporary, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, fmt.Errorf("%w: read answer: %w", ErrTemporary, err)
	}
	return decodeAnswer(resp, answer)
}

func (c *Client) httpClient() *http.Client {
	hc := http.Client{Timeout: defaultTimeout}
	if c.HTTP != nil {
		hc = *c.HTTP // a shallow copy shares the Transport, so connections are still pooled
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &hc
}

// decodeAnswer turns Gotify's answer into an id or a classified error. The
// error says the status and a fixed hint, never anything the answer holds
// (body, Location): a user chooses the target, and must not learn from the
// errors what answers at an address of their choosing.
func decodeAnswer(resp *http.Response, answer []byte) (int64, error) {
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		var stored struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(answer, &stored); err != nil || stored.ID <= 0 {
			// Likely a URL that reaches a web page, not Gotify; retrying won't fix it.
			return 0, fmt.Errorf("%w: %d answer is not a Gotify message; set the Gotify server's base URL", ErrRejected, code)
		}
		return stored.ID, nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		// 408 and 429 come from proxies in front of Gotify and ask for a later retry.
		return 0, fmt.Errorf("%w: %d %s", ErrTemporary, code, http.StatusText(code))
	}
	return 0, &RejectedError{Status: code, Message: hint(code)} // 3xx, 4xx, and 1xx that net/http did not consume
}

// hint says what a 3xx or 4xx answer usually means and what to change.
func hint(code int) string {
	switch {
	case code >= 300 && code < 400:
		return "redirect not followed; set the URL to the address it redirects to (open it in a browser to see)"
	case code == http.StatusUnauthorized:
		return "the token is not an application token of this Gotify; create one under Gotify → Apps"
	case code == http.StatusForbidden:
		return "the token may not push; use an application token from Gotify → Apps"
	case code == http.StatusNotFound:
		return "no Gotify API at this URL; check its path"
	case code == http.StatusRequestEntityTooLarge:
		return "the message is too large for Gotify or a proxy in front of it"
	}
	return "Gotify refused the message; check the URL and the application token"
}
