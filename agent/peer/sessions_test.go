package peer

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mesh/protocol"
)

// clock is a fake time source for [NewSessionCache].
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	fpA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	fpB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func cachedSession(id string, expires time.Time) protocol.P2PSession {
	return protocol.P2PSession{SessionID: id, SessionToken: "tok-" + id, ExpiresAt: expires, Kind: protocol.SessionFile,
		InitiatorDeviceID: "dev-a", TargetDeviceID: "dev-b",
		Endpoints: protocol.Endpoints{Initiator: protocol.Endpoint{Fingerprint: fpA}, Target: protocol.Endpoint{Fingerprint: fpB}}}
}

func TestRedeem(t *testing.T) {
	t.Parallel()
	good := Hello{SessionID: "s1", Token: "tok-s1", DeviceID: "dev-a", Kind: protocol.SessionFile}
	tests := []struct {
		name     string
		hello    func(*Hello)
		fp       string
		advance  time.Duration
		want     Reason // deny reason; "" for success
		consumed bool   // a correct retry is refused afterwards
	}{
		{name: "ok", want: "", consumed: true},
		{name: "unknown", hello: func(h *Hello) { h.SessionID = "s2" }, want: ReasonUnknown},
		{name: "expired", advance: time.Minute, want: ReasonExpired, consumed: true},
		{name: "wrong token", hello: func(h *Hello) { h.Token = "tok-s2" }, want: ReasonToken},
		{name: "empty token", hello: func(h *Hello) { h.Token = "" }, want: ReasonToken},
		{name: "wrong device", hello: func(h *Hello) { h.DeviceID = "dev-c" }, want: ReasonDevice, consumed: true},
		{name: "wrong kind", hello: func(h *Hello) { h.Kind = protocol.SessionTerminal }, want: ReasonKind, consumed: true},
		{name: "wrong certificate", fp: fpB, want: ReasonCertificate, consumed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			c := NewSessionCache(clk.Now)
			s := cachedSession("s1", clk.Now().Add(time.Minute))
			c.Add(s, "alice")
			clk.Advance(tt.advance)
			h := good
			if tt.hello != nil {
				tt.hello(&h)
			}
			p, err := c.Redeem(h, cmpOr(tt.fp, fpA))
			if tt.want == "" {
				if diff := cmp.Diff(Pending{Session: s, FromUser: "alice"}, p); err != nil || diff != "" {
					t.Fatalf("Redeem = %v (-want +got):\n%s", err, diff)
				}
			} else if d, ok := errors.AsType[*DenyError](err); !ok || d.Reason != tt.want {
				t.Fatalf("Redeem = %v, want DenyError %q", err, tt.want)
			}
			_, err = c.Redeem(good, fpA)
			if used := err != nil; used != tt.consumed {
				t.Errorf("after the attempt, Redeem(correct) = %v; want consumed %v", err, tt.consumed)
			}
		})
	}
}

func TestSessionCacheLifetime(t *testing.T) {
	t.Parallel()
	clk := newClock()
	c := NewSessionCache(clk.Now)
	c.Add(cachedSession("s1", clk.Now().Add(time.Minute)), "alice")
	s2 := cachedSession("s2", clk.Now().Add(3*time.Minute))
	s2.Endpoints.Initiator.Fingerprint = fpB
	c.Add(s2, "alice")
	check := func(want ...string) {
		t.Helper()
		got := c.InitiatorFingerprints()
		w := map[string]bool{}
		for _, fp := range want {
			w[fp] = true
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("InitiatorFingerprints (-want +got):\n%s", diff)
		}
	}
	check(fpA, fpB)
	clk.Advance(2 * time.Minute)
	check(fpB)
	if _, err := c.Redeem(Hello{SessionID: "s2", Token: "tok-s2", DeviceID: "dev-a", Kind: "file"}, fpB); err != nil {
		t.Fatal(err)
	}
	check(fpB)         // until expiry, so a replay is told "token already used"
	c.Add(s2, "alice") // announcing again does not revive a used token
	if _, err := c.Redeem(Hello{SessionID: "s2", Token: "tok-s2", DeviceID: "dev-a", Kind: "file"}, fpB); err == nil {
		t.Error("a re-announced used session was redeemed again")
	}
	clk.Advance(2 * time.Minute)
	check()
	clk.Advance(expiredGrace + time.Minute)
	_, err := c.Redeem(Hello{SessionID: "s1", Token: "tok-s1"}, fpA)
	if d, ok := errors.AsType[*DenyError](err); !ok || d.Reason != ReasonUnknown {
		t.Errorf("long-expired session: Redeem = %v, want %q", err, ReasonUnknown)
	}
}

func TestRedeemConcurrent(t *testing.T) {
	t.Parallel()
	c := NewSessionCache(nil)
	c.Add(cachedSession("s1", time.Now().Add(time.Minute)), "alice")
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := c.Redeem(Hello{SessionID: "s1", Token: "tok-s1", DeviceID: "dev-a", Kind: "file"}, fpA); err == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if n := ok.Load(); n != 1 {
		t.Errorf("%d of 16 concurrent redeems succeeded, want 1", n)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

const fpC = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

// unboundSession is what the server announces for a session asked for
// without initiator_device_id: dev-a or dev-c may use it.
func unboundSession(id string, expires time.Time) protocol.P2PSession {
	s := cachedSession(id, expires)
	s.InitiatorDeviceID, s.Endpoints.Initiator = "", protocol.Endpoint{}
	s.Initiators = []protocol.DeviceCert{{DeviceID: "dev-a", Fingerprint: fpA}, {DeviceID: "dev-c", Fingerprint: fpC}}
	return s
}

// TestRedeemUnbound: the first listed device to present its own certificate
// with the token binds the session; nobody uses it after that.
func TestRedeemUnbound(t *testing.T) {
	t.Parallel()
	hello := func(device string) Hello {
		return Hello{SessionID: "s1", Token: "tok-s1", DeviceID: device, Kind: protocol.SessionFile}
	}
	for _, tt := range []struct {
		name, device, fp string
		want             Reason
	}{
		{"listed device", "dev-c", fpC, ""},
		{"the other listed device", "dev-a", fpA, ""},
		{"unlisted device", "dev-x", fpA, ReasonDevice},
		{"another listed device's certificate", "dev-a", fpC, ReasonCertificate},
		{"the target's certificate", "dev-b", fpB, ReasonDevice},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			c := NewSessionCache(clk.Now)
			c.Add(unboundSession("s1", clk.Now().Add(time.Minute)), "alice")
			if diff := cmp.Diff(map[string]bool{fpA: true, fpC: true}, c.InitiatorFingerprints()); diff != "" {
				t.Errorf("InitiatorFingerprints before use (-want +got):\n%s", diff)
			}
			p, err := c.Redeem(hello(tt.device), tt.fp)
			if tt.want != "" {
				if d, ok := errors.AsType[*DenyError](err); !ok || d.Reason != tt.want {
					t.Fatalf("Redeem(%s, %s) = %v, want DenyError %q", tt.device, tt.fp, err, tt.want)
				}
			} else if err != nil || p.Session.InitiatorDeviceID != tt.device || p.Session.Endpoints.Initiator.Fingerprint != tt.fp {
				t.Fatalf("Redeem(%s) = %+v, %v; want the session bound to %s and its certificate", tt.device, p.Session, err, tt.device)
			}
			// Whoever comes next, the token is spent, and both certificates
			// still pass TLS so a second device hears why.
			for _, next := range []struct{ device, fp string }{{"dev-a", fpA}, {"dev-c", fpC}} {
				if _, err := c.Redeem(hello(next.device), next.fp); err == nil {
					t.Errorf("after %s, Redeem(%s) succeeded too", tt.name, next.device)
				} else if d, ok := errors.AsType[*DenyError](err); !ok || d.Reason != ReasonUsed {
					t.Errorf("after %s, Redeem(%s) = %v, want %q", tt.name, next.device, err, ReasonUsed)
				}
			}
			if diff := cmp.Diff(map[string]bool{fpA: true, fpC: true}, c.InitiatorFingerprints()); diff != "" {
				t.Errorf("InitiatorFingerprints after use (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRedeemBoundIgnoresInitiators: a list beside a named initiator widens
// nothing.
func TestRedeemBoundIgnoresInitiators(t *testing.T) {
	t.Parallel()
	c := NewSessionCache(nil)
	s := cachedSession("s1", time.Now().Add(time.Minute))
	s.Initiators = []protocol.DeviceCert{{DeviceID: "dev-c", Fingerprint: fpC}}
	c.Add(s, "alice")
	if got := c.InitiatorFingerprints(); got[fpC] {
		t.Errorf("InitiatorFingerprints = %v: dev-c passes TLS for a session bound to dev-a", got)
	}
	_, err := c.Redeem(Hello{SessionID: "s1", Token: "tok-s1", DeviceID: "dev-c", Kind: protocol.SessionFile}, fpC)
	if d, ok := errors.AsType[*DenyError](err); !ok || d.Reason != ReasonDevice {
		t.Errorf("Redeem(dev-c) of dev-a's session = %v, want %q", err, ReasonDevice)
	}
}
