package store_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"mesh/store"
)

// TestDeviceIDsIgnoreCase checks device ids compare the way usernames do:
// one id in any case is one device, whoever asks and whatever they ask.
func TestDeviceIDsIgnoreCase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestDB(t)
	alice, err := s.AddUser(ctx, "alice", "h", false)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := s.AddUser(ctx, "bob", "h", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnrollDevice(ctx, "alice-laptop", alice.ID, "t1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnrollDevice(ctx, "ALICE-LAPTOP", bob.ID, "t2", ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("bob enrols ALICE-LAPTOP while alice has alice-laptop: err = %v, want ErrConflict", err)
	}
	d, err := s.DeviceByID(ctx, "Alice-Laptop")
	if err != nil || d.ID != "alice-laptop" || d.UserID != alice.ID {
		t.Fatalf("DeviceByID(Alice-Laptop) = %+v, %v, want alice's alice-laptop", d, err)
	}
	if err := s.TouchDevice(ctx, "ALICE-laptop", "sha256:x"); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.DeviceByID(ctx, "alice-laptop"); d.Fingerprint != "sha256:x" {
		t.Errorf("TouchDevice in another case did not reach the device: fingerprint %q", d.Fingerprint)
	}

	// Enrolling again in another case is the same device: the token
	// rotates and the id takes the new spelling, which the agent now uses.
	if _, err := s.EnrollDevice(ctx, "Alice-Laptop", alice.ID, "t3", ""); err != nil {
		t.Fatalf("alice enrols Alice-Laptop again: %v", err)
	}
	ds, err := s.Devices(ctx, alice.ID)
	if err != nil || len(ds) != 1 || ds[0].ID != "Alice-Laptop" {
		t.Fatalf("alice's devices after enrolling again = %+v, %v, want one, Alice-Laptop", ds, err)
	}
	if _, err := s.DeviceByToken(ctx, "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old token after re-enrolment: err = %v, want ErrNotFound", err)
	}

	if _, err := s.RevokeDevice(ctx, bob.ID, "alice-laptop"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob revokes alice's device: err = %v, want ErrNotFound", err)
	}
	gone, err := s.RevokeDevice(ctx, alice.ID, "ALICE-LAPTOP")
	if err != nil || gone.ID != "Alice-Laptop" {
		t.Fatalf("RevokeDevice(ALICE-LAPTOP) = %+v, %v, want Alice-Laptop revoked", gone, err)
	}
	if _, err := s.DeviceByID(ctx, "alice-laptop"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeviceByID after revoke: err = %v, want ErrNotFound", err)
	}
	if _, err := s.EnrollDevice(ctx, "ALICE-LAPTOP", bob.ID, "t4", ""); err != nil {
		t.Errorf("bob enrols ALICE-LAPTOP once it is free: %v", err)
	}
}

// TestDeviceKeyMigration opens a database from before device ids were
// compared case-insensitively, holding ids that differ only in case: the
// migration must not fail on them. The first enrolled keeps its id; the
// later ones are revoked, as enrolling them now would be refused.
func TestDeviceKeyMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "mesh.db")
	db := oldSchemaDB(t, p, "_device_keys.sql")
	for _, q := range []string{
		`INSERT INTO users (id, username, password_hash, created_at) VALUES (1, 'alice', 'h', 0), (2, 'bob', 'h', 0)`,
		`INSERT INTO devices (id, user_id, token_hash, created_at, last_seen) VALUES
			('ALICE-LAPTOP', 2, 'tb', 200, 200),
			('alice-laptop', 1, 'ta', 100, 100),
			('Alice-Laptop', 1, 'tc', 300, 300),
			('Server', 2, 'ts', 50, 50)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, p)
	if err != nil {
		t.Fatalf("Open a database with ids differing only in case: %v", err)
	}
	defer s.Close()
	for tok, want := range map[string]string{"ta": "alice-laptop", "ts": "Server", "tb": "", "tc": ""} {
		d, err := s.DeviceByToken(ctx, tok)
		switch {
		case want == "" && !errors.Is(err, store.ErrNotFound):
			t.Errorf("token %s of a later duplicate: device %+v, err %v, want revoked", tok, d, err)
		case want != "" && (err != nil || d.ID != want):
			t.Errorf("token %s: device %+v, err %v, want %s kept", tok, d, err, want)
		}
	}
	if d, err := s.DeviceByID(ctx, "server"); err != nil || d.ID != "Server" {
		t.Errorf("DeviceByID(server) after migration = %+v, %v, want Server", d, err)
	}
	if _, err := s.EnrollDevice(ctx, "Alice-LAPTOP", 2, "t9", ""); !errors.Is(err, store.ErrConflict) {
		t.Errorf("bob enrols Alice-LAPTOP after migration: err = %v, want ErrConflict", err)
	}
}

// oldSchemaDB creates the database at p as it was before the migration
// whose file name ends in suffix, and returns it open without the store.
func oldSchemaDB(t *testing.T, p, suffix string) *sql.DB {
	t.Helper()
	ctx := context.Background()
	entries, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasSuffix(name, suffix) {
			return db
		}
		b, err := os.ReadFile(filepath.Join("migrations", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, string(b)); err != nil {
			t.Fatalf("apply %s: %v", name, err)
		}
		v, _ := strconv.Atoi(strings.SplitN(name, "_", 2)[0]) // names are checked by store.Open
		if _, err := db.ExecContext(ctx, `INSERT INTO schema_version VALUES (?, ?, 0)`, v, name); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("no migration *%s", suffix)
	return nil
}
