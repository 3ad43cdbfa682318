package server

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"mesh/store"
)

// Config is everything `mesh serve` reads from the [server] and [auth]
// tables of the config file (and their MESH_* environment overrides).
type Config struct {
	HTTP   HTTPConfig   `toml:"server"`
	Auth   AuthConfig   `toml:"auth"`
	RTC    RTCConfig    `toml:"rtc"`
	Notify NotifyConfig `toml:"notify"`

	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time `toml:"-"`
}

// HTTPConfig is the [server] table.
type HTTPConfig struct {
	Listen          string        `toml:"listen"`           // host:port for HTTP and WebSocket
	DB              string        `toml:"db"`               // SQLite file path
	PublicURL       string        `toml:"public_url"`       // how users reach the server; "" = derived from listen
	TrustedProxies  []string      `toml:"trusted_proxies"`  // CIDRs whose X-Forwarded-For is believed
	ShutdownTimeout time.Duration `toml:"shutdown_timeout"` // how long in-flight requests get on shutdown
	AllowedOrigins  []string      `toml:"allowed_origins"`  // browser origins allowed besides the server's own
	WSRate          int           `toml:"ws_rate"`          // frames per second one WebSocket may send
	WSBurst         int           `toml:"ws_burst"`         // frames one WebSocket may send at once
	// MaxSessionsPerUser and MaxSessionsPerIP cap live WebSocket sessions
	// (each holds a file descriptor); 0 means no cap.
	MaxSessionsPerUser int `toml:"max_sessions_per_user"`
	MaxSessionsPerIP   int `toml:"max_sessions_per_ip"`
	// RelayUserMbps caps what one user's agents relay through the server
	// (when no direct path works), in Mbit/s; 0 means no cap.
	RelayUserMbps int `toml:"relay_user_mbps"`

	TLSCert     string   `toml:"tls_cert"`     // PEM certificate chain; with tls_key, listen serves HTTPS
	TLSKey      string   `toml:"tls_key"`      // PEM private key of tls_cert
	ACMEDomains []string `toml:"acme_domains"` // names to get certificates for automatically (Let's Encrypt)
	ACMECache   string   `toml:"acme_cache"`   // ACME account key and certificates; "" = DB path + ".acme"
	ACMEEmail   string   `toml:"acme_email"`   // contact for the CA's notices; optional
	ACMEHTTP    string   `toml:"acme_http"`    // host:port for http-01 challenges and the redirect to HTTPS
}

// AuthConfig is the [auth] table.
type AuthConfig struct {
	Registration string        `toml:"registration"` // invite | open | closed
	TokenTTL     time.Duration `toml:"token_ttl"`    // lifetime of an access token
	BcryptCost   int           `toml:"bcrypt_cost"`  // 4..31; each step doubles login time
	SecretFile   string        `toml:"secret_file"`  // JWT signing key; "" = DB path + ".secret"
	InviteTTL    time.Duration `toml:"invite_ttl"`   // how long an invite code stays valid
}

// RTCConfig is the [rtc] table: what calls (and agents across NATs) use to
// connect, and the embedded STUN/TURN server.
type RTCConfig struct {
	ICEServers   []string `toml:"ice_servers"`        // more stun:, stuns:, turn: or turns: URLs
	TURNUsername string   `toml:"turn_username"`      // for those turn(s): URLs
	TURNPassFile string   `toml:"turn_password_file"` // file holding their TURN password

	TURN              bool          `toml:"turn"`                          // run the embedded STUN/TURN server
	TURNListen        string        `toml:"turn_listen"`                   // host:port, UDP and TCP
	TURNPublicIP      string        `toml:"turn_public_ip"`                // the relay address; "" = from public_url, listen or the interfaces
	TURNRelayPorts    string        `toml:"turn_relay_ports"`              // "MIN-MAX", UDP
	TURNSecretFile    string        `toml:"turn_secret_file"`              // HMAC key of the credentials; "" = DB path + ".turn-secret"
	TURNCredentialTTL time.Duration `toml:"turn_credential_ttl"`           // how long a credential may start an allocation
	TURNMaxPerUser    int           `toml:"turn_max_allocations_per_user"` // 0 = no cap
	TURNUserMbps      int           `toml:"turn_user_mbps"`                // relayed Mbit/s per user, both ways; 0 = no cap
	// A relay may not send to the server's own networks (loopback, private,
	// link-local, ...) except its own relay ports; these let the admin
	// allow a LAN. See netguard.Guard.
	TURNAllowPrivatePeers bool     `toml:"turn_allow_private_peers"`
	TURNAllowedPeers      []string `toml:"turn_allowed_peers"` // addresses or CIDRs allowed whatever they are
	// RelayOnly makes every call go through the TURN relay, so that callers
	// never learn each other's IP addresses (iceTransportPolicy "relay").
	RelayOnly bool `toml:"relay_only"`
}

// NotifyConfig is the [notify] table: push notifications.
type NotifyConfig struct {
	Gotify       GotifyConfig  `toml:"gotify"`
	MaxPerMinute int           `toml:"max_per_minute"` // pushes one user may get a minute; more are coalesced
	RetryMin     time.Duration `toml:"retry_min"`      // first retry after a network error or 5xx; doubles up to 10m
	Workers      int           `toml:"workers"`        // pushes sent at once

	// Users' own targets may not be on the server's own networks (SSRF);
	// these let the admin allow a Gotify on the LAN. See netguard.Guard.
	AllowPrivateTargets bool     `toml:"allow_private_targets"` // loopback, private and CGNAT addresses
	AllowedTargets      []string `toml:"allowed_targets"`       // addresses or CIDRs allowed whatever they are

	// Resolver looks up the names in users' targets; nil means
	// net.DefaultResolver. Tests set it.
	Resolver *net.Resolver `toml:"-"`
}

// GotifyConfig is [notify.gotify]: the server-wide target for users who set
// none of their own.
type GotifyConfig struct {
	URL       string `toml:"url"`
	Token     string `toml:"token"`      // an application token
	TokenFile string `toml:"token_file"` // or a file holding it
}

// DefaultConfig is what `mesh serve` runs with when nothing is configured.
func DefaultConfig() Config {
	return Config{
		HTTP: HTTPConfig{
			Listen:          "127.0.0.1:8000",
			DB:              "mesh.db",
			ShutdownTimeout: 10 * time.Second,
			WSRate:          20,
			WSBurst:         40,
			// A user with a dozen tabs, phones and agents uses ~20; a
			// household behind one NAT a few times that.
			MaxSessionsPerUser: 64,
			MaxSessionsPerIP:   256,
			RelayUserMbps:      500,
			ACMEHTTP:           ":80",
		},
		Notify: NotifyConfig{MaxPerMinute: 6, RetryMin: 2 * time.Second, Workers: 4},
		RTC: RTCConfig{
			TURN: true, TURNListen: ":3478", TURNRelayPorts: "50000-50199",
			TURNCredentialTTL: time.Hour,
			// A call holds 1 to 4 allocations (one per network and transport
			// the browser tries); a dozen tabs and agents fit.
			TURNMaxPerUser: 32,
			TURNUserMbps:   20, // a 1080p call both ways, with room
		},
		Auth: AuthConfig{
			Registration: "invite",
			TokenTTL:     24 * time.Hour,
			BcryptCost:   11,
			InviteTTL:    7 * 24 * time.Hour,
		},
	}
}

// Validate reports the first setting that cannot work, naming its key.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		errs = append(errs, fmt.Errorf("server.listen %q: want host:port", c.HTTP.Listen))
	}
	if c.HTTP.DB == "" {
		errs = append(errs, errors.New("server.db: must name a file"))
	}
	if c.HTTP.PublicURL != "" {
		if u, err := url.Parse(c.HTTP.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("server.public_url %q: want http(s)://host[:port]", c.HTTP.PublicURL))
		} else if u.Scheme == "http" && c.HTTP.TLS() {
			errs = append(errs, fmt.Errorf("server.public_url %q: the server speaks HTTPS; write https://", c.HTTP.PublicURL))
		}
	}
	for _, p := range c.HTTP.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil {
			errs = append(errs, fmt.Errorf("server.trusted_proxies %q: want a CIDR such as 10.0.0.0/8", p))
		}
	}
	if c.HTTP.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("server.shutdown_timeout: must be positive, e.g. \"10s\""))
	}
	if c.HTTP.WSRate < 1 || c.HTTP.WSBurst < 1 {
		errs = append(errs, fmt.Errorf("server.ws_rate %d, ws_burst %d: both must be at least 1", c.HTTP.WSRate, c.HTTP.WSBurst))
	}
	if c.HTTP.MaxSessionsPerUser < 0 || c.HTTP.MaxSessionsPerIP < 0 {
		errs = append(errs, fmt.Errorf("server.max_sessions_per_user %d, max_sessions_per_ip %d: want 0 (no cap) or more",
			c.HTTP.MaxSessionsPerUser, c.HTTP.MaxSessionsPerIP))
	}
	errs = append(errs, c.HTTP.validateTLS()...)
	if _, err := c.Auth.admission(); err != nil {
		errs = append(errs, err)
	}
	if c.Auth.TokenTTL < time.Minute {
		errs = append(errs, fmt.Errorf("auth.token_ttl %s: must be at least 1m", c.Auth.TokenTTL))
	}
	if c.Auth.BcryptCost < 4 || c.Auth.BcryptCost > 31 {
		errs = append(errs, fmt.Errorf("auth.bcrypt_cost %d: must be 4..31 (10-12 suits most servers)", c.Auth.BcryptCost))
	}
	if c.Auth.InviteTTL < time.Minute {
		errs = append(errs, fmt.Errorf("auth.invite_ttl %s: must be at least 1m", c.Auth.InviteTTL))
	}
	if c.Notify.MaxPerMinute < 1 || c.Notify.Workers < 1 || c.Notify.RetryMin <= 0 {
		errs = append(errs, fmt.Errorf("notify.max_per_minute %d, workers %d, retry_min %s: all must be positive",
			c.Notify.MaxPerMinute, c.Notify.Workers, c.Notify.RetryMin))
	}
	if _, err := c.Notify.allowedTargets(); err != nil {
		errs = append(errs, err)
	}
	if g := c.Notify.Gotify; g.URL != "" {
		if u, err := url.Parse(g.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("notify.gotify.url %q: want http(s)://host[:port]", g.URL))
		}
		if g.Token == "" && g.TokenFile == "" {
			errs = append(errs, errors.New("notify.gotify: set token or token_file with url"))
		}
	}
	for _, u := range c.RTC.ICEServers {
		if p, _, _ := strings.Cut(u, ":"); p != "stun" && p != "stuns" && p != "turn" && p != "turns" {
			errs = append(errs, fmt.Errorf("rtc.ice_servers %q: want a stun:, stuns:, turn: or turns: URL", u))
		}
	}
	errs = append(errs, c.RTC.validate()...)
	return errors.Join(errs...)
}

// validate checks the embedded TURN server's settings.
func (c RTCConfig) validate() []error {
	var errs []error
	if c.RelayOnly && !c.TURN && !slices.ContainsFunc(c.ICEServers, func(u string) bool { return strings.HasPrefix(u, "turn") }) {
		errs = append(errs, errors.New("rtc.relay_only needs a TURN server: keep rtc.turn = true or list a turn: URL in rtc.ice_servers"))
	}
	if !c.TURN {
		return errs
	}
	if _, _, err := net.SplitHostPort(c.TURNListen); err != nil {
		errs = append(errs, fmt.Errorf("rtc.turn_listen %q: want host:port, like \":3478\"", c.TURNListen))
	}
	if c.TURNPublicIP != "" {
		if a, err := netip.ParseAddr(c.TURNPublicIP); err != nil || !a.Is4() {
			errs = append(errs, fmt.Errorf("rtc.turn_public_ip %q: want the IPv4 address the internet reaches this server at", c.TURNPublicIP))
		}
	}
	if _, _, err := c.relayPorts(); err != nil {
		errs = append(errs, err)
	}
	if c.TURNCredentialTTL < time.Minute {
		errs = append(errs, fmt.Errorf("rtc.turn_credential_ttl %v: want at least 1m", c.TURNCredentialTTL))
	}
	if c.TURNMaxPerUser < 0 || c.TURNUserMbps < 0 {
		errs = append(errs, errors.New("rtc.turn_max_allocations_per_user and rtc.turn_user_mbps: want 0 (no cap) or more"))
	}
	if _, err := parsePrefixes(c.TURNAllowedPeers); err != nil {
		errs = append(errs, fmt.Errorf("rtc.turn_allowed_peers %w", err))
	}
	return errs
}

// relayPorts parses turn_relay_ports.
func (c RTCConfig) relayPorts() (lo, hi uint16, err error) {
	a, b, ok := strings.Cut(c.TURNRelayPorts, "-")
	x, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	y, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	if !ok || err1 != nil || err2 != nil || x < 1024 || y < x {
		return 0, 0, fmt.Errorf("rtc.turn_relay_ports %q: want MIN-MAX, like \"50000-50199\", from 1024 up", c.TURNRelayPorts)
	}
	return uint16(x), uint16(y), nil
}

// turnSecretFile is where the TURN credentials' HMAC key lives.
func (c Config) turnSecretFile() string {
	if c.RTC.TURNSecretFile != "" {
		return c.RTC.TURNSecretFile
	}
	return c.HTTP.DB + ".turn-secret"
}

// allowedTargets parses allowed_targets.
func (n NotifyConfig) allowedTargets() ([]netip.Prefix, error) {
	ps, err := parsePrefixes(n.AllowedTargets)
	if err != nil {
		return nil, fmt.Errorf("notify.allowed_targets %w", err)
	}
	return ps, nil
}

// parsePrefixes parses addresses and CIDRs; a bare address is a prefix of one.
func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if a, aerr := netip.ParseAddr(s); err != nil && aerr == nil {
			p, err = netip.PrefixFrom(a.WithZone(""), a.BitLen()), nil
		}
		if err != nil || !p.IsValid() {
			return nil, fmt.Errorf("%q: want an address or CIDR such as 192.168.1.20 or 192.168.1.0/24", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (a AuthConfig) admission() (store.Admission, error) {
	switch a.Registration {
	case "invite":
		return store.AdmitInvite, nil
	case "open":
		return store.AdmitOpen, nil
	case "closed":
		return store.AdmitClosed, nil
	}
	return 0, fmt.Errorf("auth.registration %q: want invite, open or closed", a.Registration)
}

// secretFile is where the JWT signing key lives.
func (c Config) secretFile() string {
	if c.Auth.SecretFile != "" {
		return c.Auth.SecretFile
	}
	return c.HTTP.DB + ".secret"
}

// validateTLS checks the certificate settings: files or ACME, not both,
// and nothing half set.
func (h HTTPConfig) validateTLS() []error {
	var errs []error
	if (h.TLSCert == "") != (h.TLSKey == "") {
		errs = append(errs, errors.New("server.tls_cert and server.tls_key: set both (a PEM certificate chain and its key) or neither"))
	}
	if len(h.ACMEDomains) == 0 {
		return errs
	}
	if h.TLSCert != "" || h.TLSKey != "" {
		errs = append(errs, errors.New("server.acme_domains and server.tls_cert/tls_key: choose one, automatic (ACME) certificates or certificate files"))
	}
	for _, d := range h.ACMEDomains {
		if d == "" || strings.ContainsAny(d, "/: ") || net.ParseIP(d) != nil {
			errs = append(errs, fmt.Errorf("server.acme_domains %q: want a DNS name such as mesh.example.org (no scheme, port or IP address)", d))
		}
	}
	if _, _, err := net.SplitHostPort(h.ACMEHTTP); err != nil {
		errs = append(errs, fmt.Errorf("server.acme_http %q: want host:port; the CA calls port 80", h.ACMEHTTP))
	}
	if h.ACMEEmail != "" && !strings.Contains(h.ACMEEmail, "@") {
		errs = append(errs, fmt.Errorf("server.acme_email %q: want an email address, or leave it empty", h.ACMEEmail))
	}
	return errs
}

// TLS reports whether listen serves HTTPS (certificate files or ACME).
func (h HTTPConfig) TLS() bool { return h.TLSCert != "" || len(h.ACMEDomains) > 0 }

// ACME reports whether certificates come from an ACME CA, so that
// acme_http must be served too (see [Server.ServeACME]).
func (h HTTPConfig) ACME() bool { return len(h.ACMEDomains) > 0 }

// acmeCache is where autocert keeps the account key and certificates.
func (c Config) acmeCache() string {
	if c.HTTP.ACMECache != "" {
		return c.HTTP.ACMECache
	}
	return c.HTTP.DB + ".acme"
}

// URL is the address users open: public_url; else https:// with the first
// ACME domain, or https://listen with certificate files; else http://listen.
func (c Config) URL() string {
	switch {
	case c.HTTP.PublicURL != "":
		return c.HTTP.PublicURL
	case c.HTTP.ACME():
		host := c.HTTP.ACMEDomains[0]
		if _, port, err := net.SplitHostPort(c.HTTP.Listen); err == nil && port != "443" {
			host = net.JoinHostPort(host, port)
		}
		return "https://" + host
	case c.HTTP.TLS():
		return "https://" + c.HTTP.Listen
	}
	return "http://" + c.HTTP.Listen
}

func (c Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}
