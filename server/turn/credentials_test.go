package turn

import (
	"strings"
	"testing"
	"time"

	pion "github.com/pion/turn/v4"
)

// TestCredentialIsTheRESTConvention: mesh's credential is the one pion's
// own TURN REST helper (what coturn's use-auth-secret checks) makes.
func TestCredentialIsTheRESTConvention(t *testing.T) {
	t.Parallel()
	secret := "4f1c0ffee"
	now := time.Now()
	c := NewCredential([]byte(secret), "alice", now, time.Hour)
	user, pass, err := pion.GenerateLongTermTURNRESTCredentials(secret, "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c.Username != user || c.Password != pass {
		// pion reads the clock itself: a second may have ticked in between.
		if c2 := NewCredential([]byte(secret), "alice", time.Now(), time.Hour); c2.Username != user || c2.Password != pass {
			t.Errorf("NewCredential = %q %q, pion's convention %q %q", c.Username, c.Password, user, pass)
		}
	}
	if !c.Expires.Equal(now.Add(time.Hour).Truncate(time.Second)) || c.Expires.After(now.Add(time.Hour)) {
		t.Errorf("Expires %v, want %v rounded down to the second", c.Expires, now.Add(time.Hour))
	}
	got, exp, err := parseUsername(c.Username)
	if err != nil || got != "alice" || !exp.Equal(c.Expires) {
		t.Errorf("parseUsername(%q) = %q, %v, %v", c.Username, got, exp, err)
	}
}

func TestParseUsernameRefuses(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "alice", ":alice", "123:", "-5:alice", "0:alice", "12x:alice", "99999999999999999999:alice"} {
		if u, _, err := parseUsername(s); err == nil {
			t.Errorf("parseUsername(%q) = %q, want an error", s, u)
		}
	}
}

// FuzzParseUsername: the username arrives from the network in every
// authenticated TURN request.
func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{"1796422479:alice", "1:a", ":", "x:y:z", "1796422479:ali:ce"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		user, exp, err := parseUsername(s)
		if err != nil {
			return
		}
		if user == "" || exp.Unix() <= 0 || !strings.HasSuffix(s, ":"+user) {
			t.Fatalf("parseUsername(%q) = %q, %v", s, user, exp)
		}
	})
}
