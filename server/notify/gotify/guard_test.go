package gotify_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mesh/server/notify/gotify"
	"mesh/server/notify/gotify/gotifytest"
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
		err := gotify.Guard{}.Check(a)
		var ae *gotify.AddressError
		switch {
		case tt.kind == "" && err != nil:
			t.Errorf("Check(%s) = %v, want nil", a, err)
		case tt.kind != "" && (!errors.As(err, &ae) || ae.Kind != tt.kind || !errors.Is(err, gotify.ErrForbiddenAddress)):
			t.Errorf("Check(%s) = %v, want an AddressError of kind %q", a, err, tt.kind)
		}
		if err := (gotify.Guard{AllowPrivate: true}).Check(a); (err == nil) != tt.permittedWithLAN {
			t.Errorf("with AllowPrivate, Check(%s) = %v, want permitted %v", a, err, tt.permittedWithLAN)
		}
		if err := (gotify.Guard{Allowed: lan}).Check(a); (err == nil) != tt.permittedByPrefix {
			t.Errorf("with Allowed %v, Check(%s) = %v, want permitted %v", lan, a, err, tt.permittedByPrefix)
		}
	}
}

func TestGuardCheckHost(t *testing.T) {
	t.Parallel()
	for host, refused := range map[string]bool{
		"localhost": true, "LocalHost.": true, "gotify.localhost": true, "127.0.0.1": true, "::1": true,
		"fe80::1%eth0": true, "10.0.0.1": true, "0.0.0.0": true,
		"push.example.org": false, "1.1.1.1": false, "localhost.example.org": false, "2001:db8::1": false,
	} {
		if err := (gotify.Guard{}).CheckHost(host); (err != nil) != refused {
			t.Errorf("CheckHost(%q) = %v, want refused %v", host, err, refused)
		}
	}
	if err := (gotify.Guard{AllowPrivate: true}).CheckHost("localhost"); err != nil {
		t.Errorf("with AllowPrivate, CheckHost(localhost) = %v, want nil", err)
	}
}

// loopbackGotify is a Gotify stand-in on 127.0.0.1 that counts every
// connection made to it, answered or not.
func loopbackGotify(t *testing.T) (port string, conns *atomic.Int32) {
	t.Helper()
	conns = new(atomic.Int32)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"id":3}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, _ = net.SplitHostPort(srv.Listener.Addr().String())
	return port, conns
}

// TestGuardedSend: through a guarded transport, a target on loopback is
// refused before any connection, whatever names it (a literal address,
// localhost, a name whose DNS answer is 127.0.0.1), and is not retried; the
// admin's allowance makes it reachable.
func TestGuardedSend(t *testing.T) {
	t.Parallel()
	rebind := gotifytest.Resolver(t, netip.MustParseAddr("127.0.0.1"))
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, tt := range []struct {
		name    string
		guard   gotify.Guard
		host    string
		reached bool
	}{
		{"literal", gotify.Guard{}, "127.0.0.1", false},
		{"localhost", gotify.Guard{}, "localhost", false},
		{"name resolving to loopback", gotify.Guard{Resolver: rebind}, "gotify.rebind.test", false},
		{"allowed private", gotify.Guard{AllowPrivate: true, Resolver: rebind}, "gotify.rebind.test", true},
		{"allowed prefix", gotify.Guard{Allowed: loopback}, "127.0.0.1", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			port, conns := loopbackGotify(t)
			url := fmt.Sprintf("http://%s/", net.JoinHostPort(tt.host, port))
			c := gotify.Client{HTTP: &http.Client{Timeout: 10 * time.Second, Transport: tt.guard.Transport()}}
			id, err := c.Send(t.Context(), gotify.Target{URL: url, Token: "Aapplication-token"}, gotify.Message{Message: "m"})
			if tt.reached {
				if err != nil || id != 3 || conns.Load() == 0 {
					t.Fatalf("Send to %s = %d, %v after %d connections; want it delivered", url, id, err, conns.Load())
				}
				return
			}
			checkClass(t, err, true)
			if !errors.Is(err, gotify.ErrForbiddenAddress) || !strings.Contains(err.Error(), "127.0.0.1 is on the server's own networks (loopback)") {
				t.Errorf("Send to %s = %v; want it refused as a loopback address", url, err)
			}
			if n := conns.Load(); n != 0 {
				t.Errorf("Send to %s: the loopback listener got %d connections, want 0", url, n)
			}
		})
	}
}

func TestGuardTransportUsesNoProxy(t *testing.T) {
	t.Parallel()
	if tr := (gotify.Guard{}).Transport(); tr.Proxy != nil || tr.DialContext == nil {
		t.Errorf("Guard.Transport() has Proxy %v, DialContext %v; want no proxy, the guard's dialer", tr.Proxy != nil, tr.DialContext != nil)
	}
}
