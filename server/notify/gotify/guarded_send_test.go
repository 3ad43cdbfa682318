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

	"mesh/server/netguard"
	"mesh/server/notify/gotify"
	"mesh/server/notify/gotify/gotifytest"
)

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
		guard   netguard.Guard
		host    string
		reached bool
	}{
		{"literal", netguard.Guard{}, "127.0.0.1", false},
		{"localhost", netguard.Guard{}, "localhost", false},
		{"name resolving to loopback", netguard.Guard{Resolver: rebind}, "gotify.rebind.test", false},
		{"allowed private", netguard.Guard{AllowPrivate: true, Resolver: rebind}, "gotify.rebind.test", true},
		{"allowed prefix", netguard.Guard{Allowed: loopback}, "127.0.0.1", true},
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
			if !errors.Is(err, netguard.ErrForbiddenAddress) || !strings.Contains(err.Error(), "127.0.0.1 is on the server's own networks (loopback)") {
				t.Errorf("Send to %s = %v; want it refused as a loopback address", url, err)
			}
			if n := conns.Load(); n != 0 {
				t.Errorf("Send to %s: the loopback listener got %d connections, want 0", url, n)
			}
		})
	}
}
