package server_test

import (
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

func (ts *testServer) login(t testing.TB, user, pw string) string {
	t.Helper()
	return ts.auth(t, "/api/auth/login", map[string]string{"username": user, "password": pw}, http.StatusOK)
}

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, cond func() bool, msg string) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("after %v: %s", d, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawTURN speaks TURN one request at a time over its own socket, with
// long-term credentials, for what pion's client does not let a test ask.
type rawTURN struct {
	t           testing.TB
	conn        net.PacketConn
	server      net.Addr
	l           turnLogin
	realm, nonc string
}

// request sends one request of method with attrs and returns the answer;
// it answers a 401 or 438 with the nonce the server gave, once.
func (r *rawTURN) request(method stun.Method, attrs ...stun.Setter) *stun.Message {
	r.t.Helper()
	for try := 0; try < 2; try++ {
		setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)
		if r.nonc != "" {
			setters = append(setters, stun.NewUsername(r.l.user), stun.NewRealm(r.realm), stun.NewNonce(r.nonc),
				stun.NewLongTermIntegrity(r.l.user, r.realm, r.l.pass))
		}
		m := stun.MustBuild(setters...)
		res := r.roundTrip(m)
		var code stun.ErrorCodeAttribute
		if res.Type.Class == stun.ClassErrorResponse && code.GetFrom(res) == nil && res.Contains(stun.AttrNonce) &&
			(code.Code == stun.CodeUnauthorized || code.Code == stun.CodeStaleNonce) && try == 0 {
			var realm stun.Realm
			var nonce stun.Nonce
			if realm.GetFrom(res) != nil || nonce.GetFrom(res) != nil {
				r.t.Fatalf("%v answered %d with an unreadable realm or nonce", method, code.Code)
			}
			r.realm, r.nonc = realm.String(), nonce.String()
			continue
		}
		return res
	}
	r.t.Fatalf("%v: refused twice for credentials", method)
	return nil
}

func (r *rawTURN) roundTrip(m *stun.Message) *stun.Message {
	r.t.Helper()
	buf := make([]byte, 1500)
	for try := 0; try < 10; try++ {
		if _, err := r.conn.WriteTo(m.Raw, r.server); err != nil {
			r.t.Fatal(err)
		}
		_ = r.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond)) // a timeout resends
		n, _, err := r.conn.ReadFrom(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		} else if err != nil {
			r.t.Fatal(err)
		}
		res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if err := res.Decode(); err != nil || res.TransactionID != m.TransactionID {
			continue
		}
		return res
	}
	r.t.Fatal("no answer from the TURN server")
	return nil
}

// code is an answer's error code, 0 for a success.
func code(m *stun.Message) int {
	var c stun.ErrorCodeAttribute
	if m.Type.Class == stun.ClassSuccessResponse || c.GetFrom(m) != nil {
		return 0
	}
	return int(c.Code)
}

// rawChannelBind allocates with l's credential on a fresh socket and asks
// for a channel to peer; it returns the answer's error code, 0 if bound.
func rawChannelBind(t testing.TB, l turnLogin, peer string) int {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	srv, err := net.ResolveUDPAddr("udp4", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawTURN{t: t, conn: conn, server: srv, l: l}
	udp := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	if res := r.request(stun.MethodAllocate, udp); code(res) != 0 {
		t.Fatalf("raw Allocate answered %d", code(res))
	}
	pa, err := net.ResolveUDPAddr("udp", peer)
	if err != nil {
		t.Fatal(err)
	}
	channel := stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{0x40, 0x00, 0, 0}}
	peerAttr := setterFunc(func(m *stun.Message) error {
		return stun.XORMappedAddress{IP: pa.IP, Port: pa.Port}.AddToAs(m, stun.AttrXORPeerAddress)
	})
	return code(r.request(stun.MethodChannelBind, channel, peerAttr))
}

type setterFunc func(*stun.Message) error

func (f setterFunc) AddTo(m *stun.Message) error { return f(m) }
