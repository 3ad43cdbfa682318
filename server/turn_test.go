package server_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	pion "github.com/pion/turn/v4"

	"mesh/protocol"
	"mesh/server"
)

// rtcAnswer is GET /api/rtc/config as a client reads it.
type rtcAnswer struct {
	ICEServers []struct {
		URLs       []string `json:"urls"`
		Username   string   `json:"username"`
		Credential string   `json:"credential"`
	} `json:"ice_servers"`
	ICETransportPolicy string     `json:"ice_transport_policy"`
	ExpiresAt          *time.Time `json:"expires_at"`
	TURN               *struct {
		Enabled      bool   `json:"enabled"`
		Allocations  int    `json:"allocations"`
		BytesRelayed int64  `json:"bytes_relayed"`
		PublicIP     string `json:"public_ip"`
		Check        *struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"check"`
	} `json:"turn"`
}

func (ts *testServer) rtc(t testing.TB, token string) rtcAnswer {
	t.Helper()
	a := ts.do(t, "GET", "/api/rtc/config", nil, token)
	var r rtcAnswer
	if a.Status != 200 || json.Unmarshal(a.Body, &r) != nil {
		t.Fatalf("GET /api/rtc/config = %d %s", a.Status, a.Body)
	}
	return r
}

// turnLogin is one user's TURN server address and credential, as the
// server hands them out.
type turnLogin struct{ addr, user, pass string }

func (ts *testServer) turnLogin(t testing.TB, token string) turnLogin {
	t.Helper()
	for _, s := range ts.rtc(t, token).ICEServers {
		for _, u := range s.URLs {
			if rest, ok := strings.CutPrefix(u, "turn:"); ok && strings.HasSuffix(rest, "?transport=udp") {
				return turnLogin{strings.TrimSuffix(rest, "?transport=udp"), s.Username, s.Credential}
			}
		}
	}
	t.Fatal("GET /api/rtc/config lists no turn: URL over UDP")
	return turnLogin{}
}

// turnClient is a real TURN client (pion's) over its own UDP socket.
func turnClient(t testing.TB, l turnLogin) *pion.Client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := pion.NewClient(&pion.ClientConfig{STUNServerAddr: l.addr, TURNServerAddr: l.addr, Conn: conn,
		Username: l.user, Password: l.pass, Realm: "mesh", LoggerFactory: quietPion(), RTO: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); _ = conn.Close() })
	return c
}

// allocate makes an allocation, failing the test if it cannot.
func allocate(t testing.TB, l turnLogin) net.PacketConn {
	t.Helper()
	_, relay := allocation(t, l)
	return relay
}

// allocation is allocate with the client that holds the allocation.
func allocation(t testing.TB, l turnLogin) (*pion.Client, net.PacketConn) {
	t.Helper()
	c := turnClient(t, l)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate as %s: %v", l.user, err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	return c, relay
}

// relayRead reads one datagram from relay, or fails after d.
func relayRead(t testing.TB, relay net.PacketConn, d time.Duration) ([]byte, net.Addr, error) {
	t.Helper()
	buf := make([]byte, 1500)
	_ = relay.SetReadDeadline(time.Now().Add(d)) // an expired read says so
	n, from, err := relay.ReadFrom(buf)
	return buf[:n], from, err
}

func turnServer(t *testing.T, set func(*server.Config)) *testServer {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.Auth.Registration = "open"
	if set != nil {
		set(&cfg)
	}
	// One clock: credentials are issued by the server's, password changes
	// are stamped by the store's.
	return startServerClock(t, cfg, true)
}

// TestTURNAllocateAndRelay: a user's credential from GET /api/rtc/config
// makes an allocation on the relay address; two users' allocations reach
// each other through the server's own relay addresses, both ways; STUN
// binding answers; the admin sees the bytes relayed.
func TestTURNAllocateAndRelay(t *testing.T) {
	t.Parallel()
	ts := turnServer(t, nil)
	root := ts.register(t, "root", "secret1") // the first user is the admin
	alice, bob := ts.turnLogin(t, ts.register(t, "alice", "secret1")), ts.turnLogin(t, ts.register(t, "bob", "secret1"))
	if !strings.HasSuffix(alice.user, ":alice") {
		t.Errorf("alice's TURN username %q, want EXPIRY:alice", alice.user)
	}
	c := turnClient(t, alice)
	mapped, err := c.SendBindingRequest()
	if err != nil || !strings.HasPrefix(mapped.String(), "127.0.0.1:") {
		t.Errorf("STUN binding = %v, %v; want this client's 127.0.0.1 address", mapped, err)
	}
	ra, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate as alice: %v", err)
	}
	defer ra.Close()
	rb := allocate(t, bob)
	for _, r := range []net.PacketConn{ra, rb} {
		a := r.LocalAddr().(*net.UDPAddr)
		if a.IP.String() != "127.0.0.1" || a.Port < 50000 || a.Port > 50199 {
			t.Errorf("relay address %v, want 127.0.0.1 and a port in 50000-50199", a)
		}
	}
	if _, err := ra.WriteTo([]byte("hello bob"), rb.LocalAddr()); err != nil {
		t.Fatalf("alice relays to bob: %v", err)
	}
	// Bob permits alice's relay only once he writes to it; TURN drops what
	// arrived before, so alice says it again until bob hears her.
	if _, err := rb.WriteTo([]byte("hello alice"), ra.LocalAddr()); err != nil {
		t.Fatalf("bob relays to alice: %v", err)
	}
	got, from, err := relayRead(t, ra, 5*time.Second)
	if err != nil || string(got) != "hello alice" || from.String() != rb.LocalAddr().String() {
		t.Fatalf("alice read %q from %v, %v; want hello alice from %v", got, from, err, rb.LocalAddr())
	}
	var heard bool
	for i := 0; i < 20 && !heard; i++ {
		_, _ = ra.WriteTo([]byte("hello bob"), rb.LocalAddr())
		got, _, err := relayRead(t, rb, 250*time.Millisecond)
		heard = err == nil && string(got) == "hello bob"
	}
	if !heard {
		t.Fatal("bob never heard alice through the relay")
	}
	if r := ts.rtc(t, root); r.TURN == nil || r.TURN.Allocations != 2 || r.TURN.BytesRelayed == 0 {
		t.Errorf("admin sees turn %+v, want 2 allocations and bytes relayed", r.TURN)
	}
}

// TestTURNRefusesCredentials: an expired credential, one naming another
// user, a tampered one, one issued before a password change and one of a
// deleted user make no allocation; a fresh one does.
func TestTURNRefusesCredentials(t *testing.T) {
	t.Parallel()
	ts := turnServer(t, nil)
	tokA, tokC := ts.register(t, "alice", "secret1"), ts.register(t, "carol", "secret1")
	ts.register(t, "dave", "secret1")
	alice, carol := ts.turnLogin(t, tokA), ts.turnLogin(t, tokC)
	daveOld := ts.turnLogin(t, ts.login(t, "dave", "secret1"))
	expiry, _, _ := strings.Cut(alice.user, ":")
	ts.Clock.Advance(3 * time.Second) // issued well before the password change below

	refused := map[string]turnLogin{
		"another user's":           {alice.addr, expiry + ":dave", alice.pass},
		"tampered expiry":          {alice.addr, fmt.Sprint(mustAtoi(t, expiry)+3600) + ":alice", alice.pass},
		"wrong password":           {alice.addr, alice.user, "AAAA" + alice.pass[4:]},
		"not EXPIRY:USER":          {alice.addr, "alice", alice.pass},
		"before a password change": alice,
		"of a deleted user":        carol,
	}
	if a := ts.do(t, "POST", "/api/me/password", []byte(`{"current":"secret1","new":"secret2"}`), tokA); a.Status != 200 && a.Status != 204 {
		t.Fatalf("POST /api/me/password = %d %s", a.Status, a.Body)
	}
	deleteUser(t, ts, "carol")
	ts.Clock.Advance(time.Second) // a credential issued in the second of a change is refused too
	for name, l := range refused {
		if relay, err := turnClient(t, l).Allocate(); err == nil {
			relay.Close()
			t.Errorf("Allocate with a credential %s (%s) worked, want it refused", name, l.user)
		}
	}
	tokA = ts.login(t, "alice", "secret2")
	fresh := allocate(t, ts.turnLogin(t, tokA))
	_ = fresh

	ts.Clock.Advance(time.Hour + time.Second) // past the default turn_credential_ttl
	if relay, err := turnClient(t, ts.turnLogin(t, ts.login(t, "dave", "secret1"))).Allocate(); err != nil {
		t.Errorf("dave's fresh credential: %v, want an allocation", err)
	} else {
		relay.Close()
	}
	if relay, err := turnClient(t, daveOld).Allocate(); err == nil {
		relay.Close()
		t.Errorf("Allocate with an expired credential worked, want it refused")
	}
}

func mustAtoi(t testing.TB, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// deleteUser removes a user row the way an admin tool would; mesh has no
// delete command yet.
func deleteUser(t testing.TB, ts *testServer, name string) {
	t.Helper()
	db, err := sql.Open("sqlite", ts.Cfg.HTTP.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`PRAGMA busy_timeout = 5000; DELETE FROM users WHERE username = ?`, name); err != nil {
		t.Fatalf("delete user %s: %v", name, err)
	}
}

// TestTURNRefusesPrivatePeers: a permission or a channel to loopback, a
// private or link-local address (a cloud's metadata service) or ::1 is
// refused; a public peer is permitted; the admin's turn_allowed_peers opens
// a LAN.
// TestTURNOwnAddressOnlyRelays: the relay address is permitted as a peer
// so that relayed callers meet, but only its relay ports: a datagram to
// another port of the server's own address (its DNS, its database, any
// UDP service) is dropped.
// TestTURNQuota: a user holds at most turn_max_allocations_per_user
// allocations; another user is not affected, and a freed one counts again.
// TestTURNEndsAllocations: a password change ends the user's allocations
// at once (the relay stops carrying their datagrams); so does deleting the
// user; other users' allocations stay.
func TestTURNEndsAllocations(t *testing.T) {
	t.Parallel()
	ts := turnServer(t, nil)
	root := ts.register(t, "root", "secret1")
	tokA := ts.register(t, "alice", "secret1")
	tokC := ts.register(t, "carol", "secret1")
	bob := allocate(t, ts.turnLogin(t, ts.register(t, "bob", "secret1")))
	alice := allocate(t, ts.turnLogin(t, tokA))
	allocate(t, ts.turnLogin(t, tokC))
	if n := ts.rtc(t, root).TURN.Allocations; n != 3 {
		t.Fatalf("%d allocations, want 3", n)
	}
	if a := ts.do(t, "POST", "/api/me/password", []byte(`{"current":"secret1","new":"secret2"}`), tokA); a.Status >= 300 {
		t.Fatalf("POST /api/me/password = %d %s", a.Status, a.Body)
	}
	start := time.Now()
	eventually(t, 10*time.Second, func() bool { return ts.rtc(t, root).TURN.Allocations == 2 }, "alice's allocation outlived her password change")
	t.Logf("alice's allocation ended %v after her password change", time.Since(start).Round(10*time.Millisecond))
	_, _ = bob.WriteTo([]byte("still there?"), alice.LocalAddr())
	if got, _, err := relayRead(t, alice, 300*time.Millisecond); err == nil {
		t.Errorf("alice's ended allocation still relays: read %q", got)
	}
	deleteUser(t, ts, "carol")
	eventually(t, 10*time.Second, func() bool { return ts.rtc(t, root).TURN.Allocations == 1 }, "carol's allocation outlived her account")
}

// TestTURNBandwidthCap: a user's relayed traffic is capped at
// turn_user_mbps; what is over is dropped, not queued.
// TestSessionCarriesTURNCredentials: a p2p session reaches each device
// with TURN credentials of the device's own user, which allocate.
func TestSessionCarriesTURNCredentials(t *testing.T) {
	t.Parallel()
	ts := turnServer(t, nil)
	atok, btok := ts.register(t, "alice", "secret1"), ts.register(t, "bob", "secret1")
	if a := ts.do(t, "POST", "/api/rooms/direct", mustJSON(t, map[string]string{"username": "bob"}), atok); a.Status >= 300 {
		t.Fatalf("POST /api/rooms/direct = %d %s", a.Status, a.Body)
	}
	laptopTok := ts.enroll(t, atok, "laptop", fp('1'))
	laptop := ts.agent(t, laptopTok, 5001, fp('1'))
	nas := ts.agent(t, ts.enroll(t, btok, "nas", fp('2')), 5002, fp('2'))
	a := ts.do(t, "POST", "/api/p2p/sessions", []byte(`{"kind":"file","target_device_id":"nas"}`), laptopTok)
	if a.Status != 201 {
		t.Fatalf("POST /api/p2p/sessions = %d %s", a.Status, a.Body)
	}
	turnOf := func(b []byte) turnLogin {
		var s struct {
			ICEServers []struct {
				URLs                 []string
				Username, Credential string
			} `json:"ice_servers"`
		}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		for _, srv := range s.ICEServers {
			if len(srv.URLs) > 0 && strings.HasPrefix(srv.URLs[0], "turn:") {
				return turnLogin{strings.TrimSuffix(strings.TrimPrefix(srv.URLs[0], "turn:"), "?transport=udp"), srv.Username, srv.Credential}
			}
		}
		t.Fatalf("session %s has no TURN server", b)
		return turnLogin{}
	}
	for _, c := range []struct {
		copy, user string
		l          turnLogin
	}{
		{"the answer", "alice", turnOf(a.Body)},
		{"the laptop's event", "alice", turnOf(laptop.waitFor(protocol.TypeP2PSessionCreated).Payload)},
		{"bob's nas's event", "bob", turnOf(nas.waitFor(protocol.TypeP2PSessionCreated).Payload)},
	} {
		if !strings.HasSuffix(c.l.user, ":"+c.user) {
			t.Errorf("%s has TURN username %q, want EXPIRY:%s", c.copy, c.l.user, c.user)
		}
		allocate(t, c.l)
	}
}

// TestTURNOverTCP: the same port speaks TURN over TCP, for networks that
// let only TCP out; the relay itself is UDP.
func TestTURNOverTCP(t *testing.T) {
	t.Parallel()
	ts := turnServer(t, nil)
	l := ts.turnLogin(t, ts.register(t, "alice", "secret1"))
	bob := allocate(t, ts.turnLogin(t, ts.register(t, "bob", "secret1")))
	tcp, err := net.Dial("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	c, err := pion.NewClient(&pion.ClientConfig{STUNServerAddr: l.addr, TURNServerAddr: l.addr, Conn: pion.NewSTUNConn(tcp),
		Username: l.user, Password: l.pass, Realm: "mesh", LoggerFactory: quietPion()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate over TCP: %v", err)
	}
	defer relay.Close()
	_, _ = bob.WriteTo([]byte("open"), relay.LocalAddr())
	var heard bool
	for i := 0; i < 20 && !heard; i++ {
		if _, err := relay.WriteTo([]byte("over tcp"), bob.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		got, _, err := relayRead(t, bob, 250*time.Millisecond)
		heard = err == nil && string(got) == "over tcp"
	}
	if !heard {
		t.Fatal("bob never heard alice's TCP allocation")
	}
}

func quietPion() logging.LoggerFactory {
	logs := logging.NewDefaultLoggerFactory()
	logs.DefaultLogLevel = logging.LogLevelDisabled
	return logs
}

// TestTURNCallOutlivesCredential: past its credential's expiry an
// allocation still takes permissions (a call in progress goes on), while
// the same credential no longer makes a new allocation.
func TestTURNCallOutlivesCredential(t *testing.T) {
	t.Parallel()
	ts := turnServer(t, nil)
	l := ts.turnLogin(t, ts.register(t, "alice", "secret1"))
	c, _ := allocation(t, l)
	ts.Clock.Advance(2 * time.Hour)
	peer, _ := net.ResolveUDPAddr("udp", "198.51.100.7:5000")
	if err := c.CreatePermission(peer); err != nil {
		t.Errorf("CreatePermission on a live allocation after its credential expired: %v, want it granted", err)
	}
	if r, err := turnClient(t, l).Allocate(); err == nil {
		r.Close()
		t.Error("a new allocation with the expired credential worked, want it refused")
	}
}
