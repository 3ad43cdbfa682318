package turn

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the TURN REST convention names HMAC-SHA1; HMAC keeps it sound
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Credential is a time-limited TURN login in the TURN REST API convention
// (draft-uberti-behave-turn-rest, coturn's use-auth-secret): Username is
// "EXPIRY:USER" with EXPIRY in Unix seconds, Password is
// base64(HMAC-SHA1(secret, Username)). A coturn given the same secret
// accepts it too.
type Credential struct {
	Username string
	Password string
	Expires  time.Time
}

// NewCredential issues user's credential valid for ttl from now. The
// expiry is rounded down to the second, so that Expires-ttl is never after
// the moment of issue: [Server] refuses a credential issued before the
// user's credentials were ended, and an old one must never pass for new.
func NewCredential(secret []byte, user string, now time.Time, ttl time.Duration) Credential {
	exp := now.Add(ttl).Truncate(time.Second)
	name := strconv.FormatInt(exp.Unix(), 10) + ":" + user
	return Credential{Username: name, Password: password(secret, name), Expires: exp}
}

func password(secret []byte, username string) string {
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(username)) // a hash.Hash never fails to write
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

var errUsername = errors.New(`want "EXPIRY:USER"`)

// parseUsername splits "EXPIRY:USER".
func parseUsername(name string) (user string, expires time.Time, err error) {
	exp, user, ok := strings.Cut(name, ":")
	if !ok || user == "" {
		return "", time.Time{}, fmt.Errorf("TURN username %q: %w", name, errUsername)
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || sec <= 0 {
		return "", time.Time{}, fmt.Errorf("TURN username %q: %w", name, errUsername)
	}
	return user, time.Unix(sec, 0), nil
}
