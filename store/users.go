package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// User is an account at rest. Usernames are stored lower-cased, so lookups
// are case-insensitive on every backend.
type User struct {
	ID           int64
	Username     string
	PasswordHash string
	IsAdmin      bool
	CreatedAt    time.Time
	// TokenGen is carried by every login token issued to the user; a
	// password change increments it, which ends every earlier token.
	TokenGen int64
}

// Admission is the server's registration policy for everyone after the first user.
type Admission int

// The registration policies, set by the server's auth.registration
// ("invite", "open", "closed"); they never apply to the first user.
const (
	AdmitInvite Admission = iota // an unused, unexpired invite code is needed
	AdmitOpen                    // anyone may register
	AdmitClosed                  // only an admin adds users
)

// Register creates a user in one transaction: the first user of an empty
// database becomes admin and needs nothing; later ones pass mode, consuming
// inviteCode under [AdmitInvite]. Errors: [ErrConflict] for a taken name,
// [ErrRegistrationClosed], [ErrInviteRequired], [ErrInviteInvalid].
func (s *Store) Register(ctx context.Context, username, passwordHash string, mode Admission, inviteCode string) (User, error) {
	u := User{Username: strings.ToLower(username), PasswordHash: passwordHash, CreatedAt: s.now().UTC()}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
			return err
		}
		u.IsAdmin = n == 0
		if n > 0 {
			switch mode {
			case AdmitClosed:
				return ErrRegistrationClosed
			case AdmitInvite:
				if inviteCode == "" {
					return ErrInviteRequired
				}
				if err := checkInvite(ctx, tx, inviteCode, s.now()); err != nil {
					return err
				}
			}
		}
		if err := insertUser(ctx, tx, &u); err != nil {
			return err
		}
		if n > 0 && mode == AdmitInvite {
			return useInvite(ctx, tx, inviteCode, u.ID, s.now())
		}
		return nil
	})
	if err != nil {
		return User{}, fmt.Errorf("register %q: %w", u.Username, err)
	}
	return u, nil
}

// AddUser creates a user whatever the registration policy (admin CLI).
func (s *Store) AddUser(ctx context.Context, username, passwordHash string, admin bool) (User, error) {
	u := User{Username: strings.ToLower(username), PasswordHash: passwordHash, IsAdmin: admin, CreatedAt: s.now().UTC()}
	if err := s.tx(ctx, func(tx *sql.Tx) error { return insertUser(ctx, tx, &u) }); err != nil {
		return User{}, fmt.Errorf("add user %q: %w", u.Username, err)
	}
	return u, nil
}

func insertUser(ctx context.Context, tx *sql.Tx, u *User) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO users (username, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?)`,
		u.Username, u.PasswordHash, u.IsAdmin, micros(u.CreatedAt))
	if isUnique(err) {
		return ErrConflict
	} else if err != nil {
		return err
	}
	u.ID, err = res.LastInsertId()
	return err
}

const userCols = `id, username, password_hash, is_admin, created_at, token_gen`

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var created int64
	if err := row.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.IsAdmin, &created, &u.TokenGen); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return User{}, ErrNotFound
		}
		return User{}, err
	}
	u.CreatedAt = fromMicros(created)
	return u, nil
}

// UserByName finds a user case-insensitively; [ErrNotFound] if there is none.
func (s *Store) UserByName(ctx context.Context, username string) (User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE username = ?`, strings.ToLower(username)))
	if err != nil {
		return User{}, fmt.Errorf("user %q: %w", username, err)
	}
	return u, nil
}

// UserByID finds a user by id; [ErrNotFound] if there is none.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return User{}, fmt.Errorf("user %d: %w", id, err)
	}
	return u, nil
}

// Users lists every user by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var us []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		us = append(us, u)
	}
	return us, rows.Err()
}

// SetPassword replaces a user's password hash and ends every credential
// issued before: login tokens (TokenGen goes up) and device tokens (their
// hashes are replaced, so the devices stay listed but must log in again).
// A running server learns of it through [Store.CredentialChanges].
// [ErrNotFound] if there is no such user.
func (s *Store) SetPassword(ctx context.Context, username, passwordHash string) error {
	name := strings.ToLower(username)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `UPDATE users SET password_hash = ?, token_gen = token_gen + 1,
			creds_serial = (SELECT COALESCE(MAX(creds_serial), 0) + 1 FROM users), creds_ended_at = ?
			WHERE username = ? RETURNING id`, passwordHash, micros(s.now()), name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		// A device token is only ever looked up by its hash: a random value
		// in its place matches no token, and stays unique.
		_, err = tx.ExecContext(ctx, `UPDATE devices SET token_hash = 'ended:' || lower(hex(randomblob(16))) WHERE user_id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("set password of %q: %w", username, err)
	}
	return nil
}

// CredentialsEnded says when username's credentials were last ended by
// [Store.SetPassword] (the zero time if never); exists is false when there
// is no such user. One indexed read: the TURN server asks it per request.
func (s *Store) CredentialsEnded(ctx context.Context, username string) (at time.Time, exists bool, err error) {
	var us int64
	err = s.r.QueryRowContext(ctx, `SELECT creds_ended_at FROM users WHERE username = ?`, strings.ToLower(username)).Scan(&us)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, fmt.Errorf("credentials of %q: %w", username, err)
	case us == 0:
		return time.Time{}, true, nil
	}
	return fromMicros(us), true, nil
}

// CredentialChange says that a user's credentials were ended (see
// [Store.SetPassword]); Serial orders changes across users.
type CredentialChange struct {
	UserID   int64
	TokenGen int64
	Serial   int64
}

// CredentialChanges lists the changes after serial, oldest first. Polling
// it with the last Serial seen finds what other processes (the admin CLI)
// changed; pass 0 for all, or [Store.LastCredentialChange] to start now.
func (s *Store) CredentialChanges(ctx context.Context, after int64) ([]CredentialChange, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, token_gen, creds_serial FROM users WHERE creds_serial > ? ORDER BY creds_serial`, after)
	if err != nil {
		return nil, fmt.Errorf("credential changes: %w", err)
	}
	defer rows.Close()
	var out []CredentialChange
	for rows.Next() {
		var c CredentialChange
		if err := rows.Scan(&c.UserID, &c.TokenGen, &c.Serial); err != nil {
			return nil, fmt.Errorf("credential changes: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// LastCredentialChange is the newest change's Serial (0 if none).
func (s *Store) LastCredentialChange(ctx context.Context) (int64, error) {
	var v int64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(creds_serial), 0) FROM users`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("last credential change: %w", err)
	}
	return v, nil
}

// CreateInvite makes a single-use invite code valid for ttl. Only its hash is
// stored, so the code is shown once. createdBy is 0 for the admin CLI.
func (s *Store) CreateInvite(ctx context.Context, createdBy int64, ttl time.Duration) (code string, err error) {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	code = hex.EncodeToString(b)
	now := s.now()
	var by any
	if createdBy > 0 {
		by = createdBy
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO invites (code_hash, created_by, created_at, expires_at) VALUES (?, ?, ?, ?)`,
		hashCode(code), by, micros(now), micros(now.Add(ttl)))
	if err != nil {
		return "", fmt.Errorf("create invite: %w", err)
	}
	return code, nil
}

func hashCode(code string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(code)))
	return hex.EncodeToString(sum[:])
}

func checkInvite(ctx context.Context, tx *sql.Tx, code string, now time.Time) error {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM invites WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?`,
		hashCode(code), micros(now)).Scan(&n)
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrInviteInvalid
	}
	return nil
}

func useInvite(ctx context.Context, tx *sql.Tx, code string, userID int64, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE invites SET used_by = ?, used_at = ? WHERE code_hash = ?`, userID, micros(now), hashCode(code))
	return err
}
