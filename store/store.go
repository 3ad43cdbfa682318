// Package store owns mesh's persistent state: the SQLite database, its
// embedded migrations and the at-rest row types. It knows nothing of HTTP or
// WebSockets; the server reaches the database only through [Store]'s methods,
// so a second backend can stand behind the same methods later.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Sentinel errors. Callers match them with errors.Is.
var (
	ErrNotFound           = errors.New("not found")
	ErrConflict           = errors.New("already exists")
	ErrRegistrationClosed = errors.New("registration is closed")
	ErrInviteRequired     = errors.New("an invite code is required")
	ErrInviteInvalid      = errors.New("invite code is unknown, used or expired")
	ErrSchemaTooNew       = errors.New("database schema is newer than this binary")
)

// Store is mesh's database. Writes go through one connection (SQLite allows
// one writer; a single pooled writer with immediate transactions never sees
// SQLITE_BUSY), reads through a separate pool. Safe for concurrent use.
type Store struct {
	w   *sql.DB // the only writer: MaxOpenConns(1)
	r   *sql.DB // readers
	now func() time.Time
}

// Options tune [OpenWith]; the zero value is what [Open] uses.
type Options struct {
	Now func() time.Time // clock for stored times and invite expiry; default time.Now
	// AsIs opens an existing database without creating or migrating it:
	// a backup taken by a newer binary must not change the schema under
	// the older server that is running on it.
	AsIs bool
}

// Open opens (creating if needed) the SQLite database at path and applies
// pending migrations. A database written by a newer mesh is refused with
// [ErrSchemaTooNew]. Close releases it.
func Open(ctx context.Context, dbPath string) (*Store, error) {
	return OpenWith(ctx, dbPath, Options{})
}

// OpenWith is [Open] with options.
func OpenWith(ctx context.Context, dbPath string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AsIs {
		if _, err := os.Stat(dbPath); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	} else if err := createPrivate(dbPath); err != nil {
		return nil, err
	}
	w, err := openPool(dbPath, 1)
	if err != nil {
		return nil, err
	}
	r, err := openPool(dbPath, 8)
	if err != nil {
		_ = w.Close() // the open error is the one worth reporting
		return nil, err
	}
	s := &Store{w: w, r: r, now: opts.Now}
	if opts.AsIs {
		return s, nil
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.Close() // the migration error is the one worth reporting
		return nil, fmt.Errorf("open store %s: %w", dbPath, err)
	}
	return s, nil
}

// createPrivate creates a missing database file empty (a valid SQLite
// database) with mode 0600: SQLite would create it 0644 under the usual
// umask, readable by every local user, and it holds password hashes. SQLite
// gives the -wal and -shm files the database file's mode. An existing file
// keeps its mode; the server warns about loose ones at start.
func createPrivate(dbPath string) error {
	f, err := os.OpenFile(dbPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("create database %s: %w", dbPath, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create database %s: %w", dbPath, err)
	}
	return nil
}

// openPool sets pragmas in the DSN: set with Exec they would apply to one
// pooled connection only.
func openPool(dbPath string, conns int) (*sql.DB, error) {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+dbPath+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", dbPath, err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// Close checkpoints the WAL and closes both pools.
func (s *Store) Close() error {
	// A truncating checkpoint leaves a self-contained .db file behind; failing it loses nothing.
	_, _ = s.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return errors.Join(s.r.Close(), s.w.Close())
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.r.PingContext(ctx)
}

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number and _", e.Name())
		}
		b, err := migrationFS.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: want number %d", m.name, i+1)
		}
	}
	return ms, nil
}

// LatestSchema is the schema version this binary writes.
func LatestSchema() int {
	ms, err := loadMigrations()
	if err != nil {
		panic(err) // embedded at build time: a broken set is a programmer error
	}
	return len(ms)
}

func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	var cur int
	if err := s.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&cur); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if cur > len(ms) {
		return fmt.Errorf("%w: database is at version %d, this mesh knows %d; upgrade mesh or restore a backup",
			ErrSchemaTooNew, cur, len(ms))
	}
	for _, m := range ms[cur:] {
		if err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, micros(s.now()))
			return err
		}); err != nil {
			return fmt.Errorf("apply migration %s: %w", m.name, err)
		}
	}
	return nil
}

// SchemaVersion returns the version the database is at.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v)
	return v, err
}

// tx runs fn in one write transaction, committing when fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // fn's error is the one worth reporting
		return err
	}
	return tx.Commit()
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// isUnique reports whether err is a uniqueness violation. Matching the text
// keeps the store free of driver-specific error types.
func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}
