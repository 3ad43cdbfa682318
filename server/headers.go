package server

import (
	"strings"

	"github.com/labstack/echo/v4"
)

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
