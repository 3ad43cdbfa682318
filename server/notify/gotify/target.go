package gotify

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Target is where pushes for one user go. Its String, GoString and LogValue
// show the token only as [Target.Hint] and the URL without a password, so
// printing or logging a Target is safe.
type Target struct {
	URL   string // the Gotify server's base URL: http(s)://host[:port][/path]
	Token string // an application token (secret)
}

// Validate reports why t cannot be pushed to: the URL must be absolute
// http or https with a host and without query or fragment (a pasted
// "?token=" would put the secret where proxies log it), and the token must
// be non-empty printable text without spaces (it goes in a header). Its
// error never contains the token.
func (t Target) Validate() error {
	_, err := t.parse()
	return err
}

func (t Target) parse() (*url.URL, error) {
	u, err := url.Parse(t.URL)
	if err != nil {
		var ue *url.Error // its message repeats the raw URL, which may hold a secret
		if errors.As(err, &ue) {
			err = ue.Err
		}
		// The inner error may quote part of the URL (a port, a host), so only
		// its text survives, without the token.
		return nil, fmt.Errorf("gotify url: %s", scrub(err.Error(), t.Token))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("gotify url %q: want http(s)://host[:port][/path]", u.Redacted())
	case u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("gotify url %q: no host", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, errors.New("gotify url: must not have a query or fragment; the token goes in its own field")
	}
	if t.Token == "" {
		return nil, errors.New("gotify token: empty")
	}
	for _, r := range t.Token {
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return nil, errors.New("gotify token: has spaces or unprintable characters")
		}
	}
	return u, nil
}

// Hint is a display form of the token that does not reveal it: "…" and its
// last 4 characters, or "set" for a token shorter than 8 (its last 4 would
// be half of it), or "" for no token.
func (t Target) Hint() string {
	n := utf8.RuneCountInString(t.Token)
	switch {
	case n == 0:
		return ""
	case n < 8:
		return "set"
	}
	r := []rune(t.Token)
	return "…" + string(r[n-4:])
}

// String is the URL and the token's hint, for fmt's %v, %+v and %s.
func (t Target) String() string {
	return fmt.Sprintf("%s (token %s)", t.displayURL(), t.hintOrNone())
}

// GoString is like String, for fmt's %#v.
func (t Target) GoString() string {
	return fmt.Sprintf("gotify.Target{URL:%q, Token:%q}", t.displayURL(), t.hintOrNone())
}

// LogValue logs the URL and the token's hint, never the token.
func (t Target) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", t.displayURL()), slog.String("token", t.hintOrNone()))
}

func (t Target) displayURL() string {
	if u, err := url.Parse(t.URL); err == nil {
		return u.Redacted()
	}
	return "(invalid url)" // the raw text may hold a secret
}

func (t Target) hintOrNone() string {
	if h := t.Hint(); h != "" {
		return h
	}
	return "none"
}

// scrub replaces token in s, for errors that may quote what holds it.
func scrub(s, token string) string {
	if token == "" {
		return s
	}
	out := strings.ReplaceAll(s, token, "REDACTED")
	if strings.Contains(out, token) { // the marker and what follows spelled it again
		return "(withheld: it quoted the token)"
	}
	return out
}
