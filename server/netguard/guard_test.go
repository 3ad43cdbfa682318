package netguard_test

import (
	"errors"
	"net/netip"
	"testing"

	"mesh/server/netguard"
)

func TestGuardCheck(t *testing.T) {
	t.Parallel()
	lan := []netip.Prefix{netip.MustParsePrefix("192.168.1.5/32"), netip.MustParsePrefix("169.254.10.0/24")}
	tests := []struct {
		addr              string
		kind              string // "" = public: always permitted
		permittedWithLAN  bool   // with AllowPrivate
		permittedByPrefix bool   // with Allowed = lan
	}{
		{"1.1.1.1", "", true, true},
		{"2606:4700::1111", "", true, true},
		{"64:ff9b::808:808", "", true, true}, // NAT64 of 8.8.8.8
		{"127.0.0.1", "loopback", true, false},
		{"127.5.5.5", "loopback", true, false},
		{"::1", "loopback", true, false},
		{"::ffff:127.0.0.1", "loopback", true, false},
		{"64:ff9b::7f00:1", "loopback", true, false}, // NAT64 of 127.0.0.1
		{"10.1.2.3", "private", true, false},
		{"172.16.0.1", "private", true, false},
		{"192.168.1.5", "private", true, true},
		{"192.168.1.6", "private", true, false},
		{"fd00::1", "private", true, false},
		{"100.64.0.1", "shared (CGNAT)", true, false},
		{"169.254.169.254", "link-local", false, false},
		{"169.254.10.5", "link-local", false, true},
		{"fe80::1", "link-local", false, false},
		{"fe80::1%eth0", "link-local", false, false},
		{"224.0.0.1", "multicast", false, false},
		{"ff02::1", "multicast", false, false},
		{"0.0.0.0", "unspecified", false, false},
		{"::", "unspecified", false, false},
		{"0.1.2.3", "reserved", false, false},
		{"255.255.255.255", "reserved", false, false},
		{"::7f00:1", "reserved", false, false}, // IPv4-compatible 127.0.0.1
	}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		err := netguard.Guard{}.Check(a)
		var ae *netguard.AddressError
		switch {
		case tt.kind == "" && err != nil:
			t.Errorf("Check(%s) = %v, want nil", a, err)
		case tt.kind != "" && (!errors.As(err, &ae) || ae.Kind != tt.kind || !errors.Is(err, netguard.ErrForbiddenAddress)):
			t.Errorf("Check(%s) = %v, want an AddressError of kind %q", a, err, tt.kind)
		}
		if err := (netguard.Guard{AllowPrivate: true}).Check(a); (err == nil) != tt.permittedWithLAN {
			t.Errorf("with AllowPrivate, Check(%s) = %v, want permitted %v", a, err, tt.permittedWithLAN)
		}
		if err := (netguard.Guard{Allowed: lan}).Check(a); (err == nil) != tt.permittedByPrefix {
			t.Errorf("with Allowed %v, Check(%s) = %v, want permitted %v", lan, a, err, tt.permittedByPrefix)
		}
	}
}

func TestGuardCheckHost(t *testing.T) {
	t.Parallel()
	for host, refused := range map[string]bool{
		"localhost": true, "LocalHost.": true, "netguard.localhost": true, "127.0.0.1": true, "::1": true,
		"fe80::1%eth0": true, "10.0.0.1": true, "0.0.0.0": true,
		"push.example.org": false, "1.1.1.1": false, "localhost.example.org": false, "2001:db8::1": false,
	} {
		if err := (netguard.Guard{}).CheckHost(host); (err != nil) != refused {
			t.Errorf("CheckHost(%q) = %v, want refused %v", host, err, refused)
		}
	}
	if err := (netguard.Guard{AllowPrivate: true}).CheckHost("localhost"); err != nil {
		t.Errorf("with AllowPrivate, CheckHost(localhost) = %v, want nil", err)
	}
}

func TestGuardTransportUsesNoProxy(t *testing.T) {
	t.Parallel()
	if tr := (netguard.Guard{}).Transport(); tr.Proxy != nil || tr.DialContext == nil {
		t.Errorf("Guard.Transport() has Proxy %v, DialContext %v; want no proxy, the guard's dialer", tr.Proxy != nil, tr.DialContext != nil)
	}
}
