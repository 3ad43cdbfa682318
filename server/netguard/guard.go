// Package netguard keeps connections the server makes on a user's behalf
// (pushes to targets users set, TURN relays to peers users name) off the
// server's own networks: loopback, private, link-local and the like, unless
// the admin allows them.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrForbiddenAddress matches a connection a [Guard] refused: the address
// is on the server's own networks.
var ErrForbiddenAddress = errors.New("address on the server's own networks")

// AddressError is a connection a [Guard] refused. It matches
// [ErrForbiddenAddress].
type AddressError struct {
	Addr netip.Addr
	Kind string // loopback, private, shared (CGNAT), link-local, multicast, unspecified or reserved
}

func (e *AddressError) Error() string {
	return fmt.Sprintf("%s is on the server's own networks (%s)", e.Addr, e.Kind)
}

// Is makes errors.Is(err, ErrForbiddenAddress) true for every AddressError.
func (e *AddressError) Is(target error) bool { return target == ErrForbiddenAddress }

// Guard keeps pushes to targets users set off the server's own networks,
// so that a user cannot make the server probe its loopback or LAN. It
// checks every address the transport actually connects to, after DNS, so a
// name that resolves (or later re-resolves) to 127.0.0.1 is caught too.
type Guard struct {
	// AllowPrivate also permits loopback, private (RFC 1918, unique-local
	// fc00::/7) and shared (100.64.0.0/10, tailnets) addresses: for a
	// Gotify or a TURN peer on the LAN. Link-local, multicast, unspecified and reserved
	// addresses stay refused.
	AllowPrivate bool
	// Allowed are permitted whatever they are.
	Allowed []netip.Prefix
	// Resolver looks up names; nil means net.DefaultResolver. Tests set it.
	Resolver *net.Resolver
}

const kindShared = "shared (CGNAT)"

// Blocks netip's predicates do not cover: shared address space (RFC 6598),
// and RFC 6890's special-purpose blocks, no place for a target a user may
// name.
var (
	shared   = netip.MustParsePrefix("100.64.0.0/10")
	reserved = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),      // "this network"; 0.0.0.0 reaches the host itself
		netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
		netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
		netip.MustParsePrefix("240.0.0.0/4"),    // reserved, and the broadcast address
		netip.MustParsePrefix("::/96"),          // IPv4-compatible (deprecated), :: and ::1 aside
		netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	}
	nat64 = netip.MustParsePrefix("64:ff9b::/96") // well-known NAT64: judged by the IPv4 address it embeds
)

// Check reports whether g permits connecting to a; its error is an
// [*AddressError].
func (g Guard) Check(a netip.Addr) error {
	a = a.Unmap().WithZone("") // ::ffff:127.0.0.1 is 127.0.0.1; a zone only picks the interface
	for _, p := range g.Allowed {
		if p.Contains(a) {
			return nil
		}
	}
	kind := classify(a)
	if kind == "" || g.AllowPrivate && (kind == "loopback" || kind == "private" || kind == kindShared) {
		return nil
	}
	return &AddressError{Addr: a, Kind: kind}
}

// classify names a's kind when it is not a public unicast address.
func classify(a netip.Addr) string {
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	switch {
	case !a.IsValid():
		return "reserved"
	case a.IsLoopback():
		return "loopback"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsPrivate():
		return "private"
	case shared.Contains(a):
		return kindShared
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast():
		return "multicast"
	}
	for _, p := range reserved {
		if p.Contains(a) {
			return "reserved"
		}
	}
	return ""
}

// CheckHost is the check that needs no DNS, for an early answer when a
// target is saved: host (a URL's host, without port) is refused if it is
// an address g refuses, or "localhost" or a name under .localhost (RFC
// 6761: always loopback). Other names are checked when connecting.
func (g Guard) CheckHost(host string) error {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return g.Check(netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	}
	if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return g.Check(a)
	}
	return nil
}

// Transport is an HTTP transport whose every connection g has checked. It
// never uses a proxy from HTTP_PROXY and the like: the proxy, not this
// check, would pick the address connected to.
func (g Guard) Transport() *http.Transport {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Resolver: g.Resolver, Control: g.control}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = d.DialContext
	return t
}

// control runs after DNS, once per address tried, before connecting.
func (g Guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil { // net dials IP:port here; anything else is not ours to allow
		return fmt.Errorf("%w: unreadable address %q", ErrForbiddenAddress, address)
	}
	return g.Check(ap.Addr())
}
