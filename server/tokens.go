package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"mesh/store"
)

// AccessToken is a signed user JWT. It never appears in logs.
type AccessToken string

// LogValue hides the token from slog.
func (AccessToken) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// signingKey is the HS256 secret. It never appears in logs.
type signingKey []byte

// LogValue hides the key from slog.
func (signingKey) LogValue() slog.Value { return slog.StringValue("REDACTED") }

const issuer = "mesh"

// errBadToken covers every way a presented token can be wrong; the client
// only learns that it must log in again.
var errBadToken = errors.New("invalid or expired token")

// loadOrCreateKey reads a secret key (what names it in errors: "token
// key") from path, creating it (0600) with 32 random bytes on first start
// so that what it signs survives restarts.
func loadOrCreateKey(path, what string, log *slog.Logger) (signingKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, 32)
		_, _ = rand.Read(key) // crypto/rand.Read never fails on supported platforms
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create %s %s: %w", what, path, err)
		}
		if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
			_ = f.Close() // the write error is the one worth reporting
			return nil, fmt.Errorf("write %s %s: %w", what, path, err)
		}
		if err := errors.Join(f.Sync(), f.Close()); err != nil {
			return nil, fmt.Errorf("write %s %s: %w", what, path, err)
		}
		log.Info("created "+what, "path", path)
		return key, nil
	} else if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("%s %s: want at least 64 hex digits; delete it to make a new one (%s)", what, path, consequence(what))
	}
	return key, nil
}

// consequence says what deleting a key does, for the error that asks to.
func consequence(what string) string {
	if what == "token key" {
		return "every user logs in again"
	}
	return "calls relayed now drop and reconnect"
}

// claims are a login token's: the standard ones, and the user's token
// generation when it was issued. A token whose generation is not the
// user's current one was ended (a password change); tokens from before
// generations existed carry 0, which is what every user started with.
type claims struct {
	jwt.RegisteredClaims
	Gen int64 `json:"gen,omitempty"`
}

// issue signs a token for user u's current generation, valid for ttl from now.
func (k signingKey) issue(u store.User, now time.Time, ttl time.Duration) (AccessToken, error) {
	claims := claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    issuer,
		Subject:   strconv.FormatInt(u.ID, 10),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}, Gen: u.TokenGen}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(k))
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return AccessToken(s), nil
}

// verify checks signature (HS256 only: alg pinned, so "none" and RS/HS
// confusion fail), issuer, iat and exp, and returns the user id and the
// token's generation, which the caller compares with the user's.
func (k signingKey) verify(tok string, now time.Time) (id, gen int64, err error) {
	var claims claims
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(issuer),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if _, err := p.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return []byte(k), nil }); err != nil {
		return 0, 0, fmt.Errorf("%w: %w", errBadToken, err)
	}
	id, err = strconv.ParseInt(claims.Subject, 10, 64)
	if err != nil || id <= 0 {
		return 0, 0, fmt.Errorf("%w: subject %q", errBadToken, claims.Subject)
	}
	return id, claims.Gen, nil
}
