package server_test

import (
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// A private room one is not in and a room that does not exist get the
// same answer, over REST and over the WebSocket, so ids cannot be probed.
func TestPrivateRoomIDsCannotBeProbed(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	alice, bob := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret2")
	private := ts.createRoom(t, alice, "secret-plans", "private")
	public := ts.createRoom(t, alice, "lobby", "public")
	missing := private + 1000

	for _, path := range []string{"/api/rooms/%d", "/api/rooms/%d/messages"} {
		p, m := strings.Replace(path, "%d", itoa(private), 1), strings.Replace(path, "%d", itoa(missing), 1)
		ap, am := ts.do(t, http.MethodGet, p, nil, bob), ts.do(t, http.MethodGet, m, nil, bob)
		if ap.Status != am.Status || ap.errCode() != am.errCode() ||
			!bytes.Equal(bytes.ReplaceAll(ap.Body, []byte(itoa(private)), []byte("ID")), bytes.ReplaceAll(am.Body, []byte(itoa(missing)), []byte("ID"))) {
			t.Errorf("GET %s as a non-member = %d %s; for a missing room = %d %s; want the same answer", path, ap.Status, ap.Body, am.Status, am.Body)
		} else if ap.Status != http.StatusNotFound {
			t.Errorf("GET %s of a private room as a non-member = %d, want 404", path, ap.Status)
		}
	}
	add := []byte(`{"username":"bob"}`)
	ap, am := ts.do(t, http.MethodPost, "/api/rooms/"+itoa(private)+"/members", add, bob), ts.do(t, http.MethodPost, "/api/rooms/"+itoa(missing)+"/members", add, bob)
	if ap.Status != http.StatusNotFound || ap.Status != am.Status || ap.errCode() != am.errCode() {
		t.Errorf("add member to a private room as a non-member = %d %s, to a missing one = %d %s; want the same 404", ap.Status, ap.Body, am.Status, am.Body)
	}
	// A public room is listed anyway: reading it without joining says so.
	if a := ts.do(t, http.MethodGet, "/api/rooms/"+itoa(public)+"/messages", nil, bob); a.Status != http.StatusForbidden {
		t.Errorf("messages of a public room not joined = %d %s, want 403 (join it first)", a.Status, a.Body)
	}

	c := ts.dial(t, bob)
	for _, typ := range []protocol.Type{protocol.TypeRoomJoin, protocol.TypeRoomSync} {
		var payload func(int64) any = func(id int64) any { return protocol.RoomRef{RoomID: id} }
		if typ == protocol.TypeRoomSync {
			payload = func(id int64) any { return protocol.RoomSync{RoomID: id} }
		}
		ep, em := c.waitError(c.send(typ, payload(private))), c.waitError(c.send(typ, payload(missing)))
		if ep.Code != em.Code || strings.ReplaceAll(ep.Message, itoa(private), "ID") != strings.ReplaceAll(em.Message, itoa(missing), "ID") {
			t.Errorf("%s: private room → %s %q, missing room → %s %q; want the same", typ, ep.Code, ep.Message, em.Code, em.Message)
		}
	}
}

// The Origin check compares scheme, host and port with public_url when it
// is set, and never trusts the request's own Host for a name: a page on a
// name rebound by DNS to this server sends matching Host and Origin.
func TestOriginCheckResistsDNSRebinding(t *testing.T) {
	t.Parallel()
	dial := func(ts *testServer, tok, host, origin string) int {
		t.Helper()
		u := ts.wsURL(tok)
		d := websocket.Dialer{NetDial: func(network, _ string) (net.Conn, error) {
			return net.Dial(network, strings.TrimPrefix(ts.URL, "http://")) // whatever the name, it resolves to us
		}}
		if host != "" {
			_, port, _ := net.SplitHostPort(strings.TrimPrefix(ts.URL, "http://"))
			u = strings.Replace(u, strings.TrimPrefix(ts.URL, "http://"), host+":"+port, 1)
		}
		ws, res, err := d.Dial(u, http.Header{"Origin": {origin}})
		if err == nil {
			ws.Close()
			return http.StatusSwitchingProtocols
		}
		if res == nil {
			t.Fatalf("dial %s: %v", u, err)
		}
		return res.StatusCode
	}
	port := func(ts *testServer) string {
		_, p, _ := net.SplitHostPort(strings.TrimPrefix(ts.URL, "http://"))
		return p
	}

	// No public_url: only the address the browser used, and only an IP or localhost.
	ts := openServer(t)
	tok := ts.register(t, "alice", "secret1")
	p := port(ts)
	for _, tc := range []struct {
		host, origin string
		want         int
	}{
		{"", ts.URL, 101},
		{"localhost", "http://localhost:" + p, 101},
		{"rebind.example", "http://rebind.example:" + p, 403}, // DNS rebinding: Host and Origin agree
		{"", "https://127.0.0.1:" + p, 403},                   // another scheme
		{"", "http://127.0.0.1:1", 403},                       // another port
		{"", "http://evil.example", 403},
	} {
		if got := dial(ts, tok, tc.host, tc.origin); got != tc.want {
			t.Errorf("no public_url: Host %q Origin %q = %d, want %d", tc.host, tc.origin, got, tc.want)
		}
	}

	// With public_url, exactly its scheme, host and port.
	cfg := testConfig(t, t.TempDir())
	cfg.Auth.Registration = "open"
	cfg.HTTP.PublicURL = "https://mesh.example.org"
	cfg.HTTP.AllowedOrigins = []string{"http://desk.example.org:8080"}
	ts2 := startServer(t, cfg)
	tok2 := ts2.register(t, "alice", "secret1")
	for _, tc := range []struct {
		host, origin string
		want         int
	}{
		{"mesh.example.org", "https://mesh.example.org", 101},
		{"mesh.example.org", "https://MESH.example.org:443", 101},
		{"mesh.example.org", "http://mesh.example.org", 403},       // scheme
		{"mesh.example.org", "https://mesh.example.org:8443", 403}, // port
		{"desk.example.org", "http://desk.example.org:8080", 101},
		{"", ts2.URL, 403}, // its own Host is no longer enough
		{"rebind.example", "http://rebind.example:" + port(ts2), 403},
	} {
		if got := dial(ts2, tok2, tc.host, tc.origin); got != tc.want {
			t.Errorf("public_url set: Host %q Origin %q = %d, want %d", tc.host, tc.origin, got, tc.want)
		}
	}
}
