package server

import (
	"embed"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

//go:embed web
var webFS embed.FS

// webRoutes serves the embedded web app at /.
func (s *Server) webRoutes(e *echo.Echo) {
	sub, err := fs.Sub(webFS, "web")
	if err != nil {
		panic(err) // embedded at build time: a programmer error
	}
	files := echo.WrapHandler(http.FileServer(http.FS(sub)))
	// A not-found route, not GET /*: a catch-all GET would turn every unknown
	// POST into 405 and hide real 405s behind it.
	e.RouteNotFound("/*", func(c echo.Context) error {
		p := c.Request().URL.Path
		if allow := s.allowedMethods(p); len(allow) > 0 {
			c.Response().Header().Set(echo.HeaderAllow, strings.Join(allow, ", "))
			return echo.ErrMethodNotAllowed
		}
		if strings.HasPrefix(p, "/api/") || p == "/api" || p == "/ws" {
			return echo.ErrNotFound
		}
		if m := c.Request().Method; m != http.MethodGet && m != http.MethodHead {
			return echo.ErrNotFound
		}
		return files(c)
	})
}

// allowedMethods lists the methods routed for path; echo answers 404 rather
// than 405 when a not-found route exists, so the 405 is found here.
func (s *Server) allowedMethods(path string) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		c := s.echo.NewContext(nil, nil)
		s.echo.Router().Find(m, path, c)
		if c.Path() != "/*" && c.Path() != "" {
			allow = append(allow, m)
		}
	}
	return allow
}

// The Content-Security-Policy of every answer. Scripts come only from the
// server's own files (the web app has no inline script: theme-boot.js is a
// file for that reason), so an injected <script> or on*= attribute does not
// run. Inline styles are allowed because xterm.js 6 writes <style> elements
// and style attributes for its theme and cell sizes; style injection cannot
// run code. connect-src names ws(s)://host as well as 'self' for browsers
// that do not count WebSockets as 'self'. media-src blob: keeps a call's
// video working wherever a stream ends up behind a blob: URL.
const (
	cspHead = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
		"img-src 'self' data:; media-src 'self' blob:; font-src 'self'; object-src 'none'; " +
		"frame-ancestors 'none'; base-uri 'none'; form-action 'self'; connect-src 'self'"
	// hstsValue is sent on HTTPS answers only: a browser that got it over
	// plain HTTP must ignore it, and a server that turns TLS off again would
	// be unreachable for a year. No includeSubDomains: other names under the
	// same domain are not this server's to decide.
	hstsValue = "max-age=31536000"
)

// securityHeaders sets, before the handler runs (so error answers get them
// too), the headers that stop a browser from running injected script,
// framing the app (clickjacking), sniffing a download into HTML, and
// sending URLs (which can carry tokens) to other sites as a Referer.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r, h := c.Request(), c.Response().Header()
		h.Set("Content-Security-Policy", csp(r.Host))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", hstsValue)
		}
		return next(c)
	}
}

// csp is the policy for a page served to host (the request's Host header).
// A host that is not a plain name[:port] only gets 'self': the header must
// not carry what a client wrote into it.
func csp(host string) string {
	if host == "" || strings.IndexFunc(host, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-:[]", r))
	}) >= 0 {
		return cspHead
	}
	return cspHead + " ws://" + host + " wss://" + host
}

// originAllowed lets non-browser clients (no Origin header: agents, wscat)
// through. A browser's page must come from public_url or allowed_origins,
// scheme, host and port alike. With neither configured, the page must come
// from the address the browser used for this very request, and only if
// that is an IP address or localhost: a name might be the attacker's,
// rebound by DNS to this server, and then Host and Origin agree too.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	o, ok := canonicalOrigin(origin)
	if !ok {
		return false
	}
	configured := false
	for _, a := range append([]string{s.cfg.HTTP.PublicURL}, s.cfg.HTTP.AllowedOrigins...) {
		if a == "" {
			continue
		}
		configured = true
		if c, ok := canonicalOrigin(a); ok && c == o {
			return true
		}
	}
	if configured {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	self, ok := canonicalOrigin(scheme + "://" + r.Host)
	if !ok || self != o {
		return false
	}
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	return net.ParseIP(host) != nil || host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// canonicalOrigin is "scheme://host:port" of an http(s) URL, lower-cased
// and with the default port written out, so that equal origins compare equal.
func canonicalOrigin(raw string) (string, bool) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", false
	}
	scheme, port := strings.ToLower(u.Scheme), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port), true
}
