package server

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

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
