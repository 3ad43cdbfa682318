package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"mesh/store"
)

func newTestDB(t *testing.T) (*store.Store, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mesh.db")
	s, err := store.Open(context.Background(), p)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, p
}

func TestRegisterPolicies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestDB(t)

	first, err := s.Register(ctx, "Alice", "h1", store.AdmitClosed, "")
	if err != nil {
		t.Fatalf("first Register: %v", err)
	}
	if !first.IsAdmin || first.Username != "alice" {
		t.Fatalf("first user = %+v, want admin alice", first)
	}
	tests := []struct {
		name, user, invite string
		mode               store.Admission
		want               error
	}{
		{"closed", "bob", "", store.AdmitClosed, store.ErrRegistrationClosed},
		{"invite missing", "bob", "", store.AdmitInvite, store.ErrInviteRequired},
		{"invite unknown", "bob", "nope", store.AdmitInvite, store.ErrInviteInvalid},
		{"name taken case-insensitively", "ALICE", "", store.AdmitOpen, store.ErrConflict},
		{"open", "carol", "", store.AdmitOpen, nil},
	}
	for _, tc := range tests {
		u, err := s.Register(ctx, tc.user, "h", tc.mode, tc.invite)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Register(%q) err = %v, want %v", tc.name, tc.user, err, tc.want)
		}
		if err == nil && u.IsAdmin {
			t.Errorf("%s: later user became admin", tc.name)
		}
	}
}

func TestInviteSingleUseAndExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := store.OpenWith(ctx, filepath.Join(t.TempDir(), "m.db"), store.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	admin, err := s.Register(ctx, "admin", "h", store.AdmitInvite, "")
	if err != nil {
		t.Fatal(err)
	}
	code, err := s.CreateInvite(ctx, admin.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(ctx, "bob", "h", store.AdmitInvite, code); err != nil {
		t.Fatalf("Register with fresh invite: %v", err)
	}
	if _, err := s.Register(ctx, "carol", "h", store.AdmitInvite, code); !errors.Is(err, store.ErrInviteInvalid) {
		t.Fatalf("reused invite: err = %v, want ErrInviteInvalid", err)
	}
	code2, err := s.CreateInvite(ctx, 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if _, err := s.Register(ctx, "carol", "h", store.AdmitInvite, code2); !errors.Is(err, store.ErrInviteInvalid) {
		t.Fatalf("expired invite: err = %v, want ErrInviteInvalid", err)
	}
	// A refused registration must not burn the name.
	if _, err := s.UserByName(ctx, "carol"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UserByName(carol) err = %v, want ErrNotFound", err)
	}
}

func TestConcurrentFirstRegistrationMakesOneAdmin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestDB(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Errors are expected for all but the first under AdmitClosed.
			_, _ = s.Register(ctx, "user"+string(rune('a'+i)), "h", store.AdmitClosed, "")
		}()
	}
	wg.Wait()
	us, err := s.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != 1 || !us[0].IsAdmin {
		t.Fatalf("users after racing first registrations = %+v, want exactly one admin", us)
	}
}

func TestReopenKeepsUsersAndRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "mesh.db")
	s, err := store.Open(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUser(ctx, "alice", "h", true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword(ctx, "ALICE", "h2"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword(ctx, "ghost", "h2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetPassword(ghost) err = %v, want ErrNotFound", err)
	}
	s.Close()

	s, err = store.Open(ctx, p)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	u, err := s.UserByName(ctx, "alice")
	if err != nil || u.PasswordHash != "h2" {
		t.Fatalf("after reopen UserByName = %+v, %v", u, err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != store.LatestSchema() {
		t.Fatalf("SchemaVersion = %d, %v, want %d", v, err, store.LatestSchema())
	}
	if err := s.ExecForTest(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES (999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := store.Open(ctx, p); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("open newer schema: err = %v, want ErrSchemaTooNew", err)
	}
}

// TestCredentialsEnded: a user's credentials were never ended until a
// password change, which stamps its time; an unknown user does not exist.
func TestCredentialsEnded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 12, 4, 10, 0, 0, 123456000, time.UTC)
	s, err := store.OpenWith(ctx, filepath.Join(t.TempDir(), "mesh.db"), store.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.AddUser(ctx, "alice", "h", false); err != nil {
		t.Fatal(err)
	}
	if at, ok, err := s.CredentialsEnded(ctx, "ALICE"); err != nil || !ok || !at.IsZero() {
		t.Errorf("CredentialsEnded(alice) before = %v, %v, %v; want zero, true", at, ok, err)
	}
	if err := s.SetPassword(ctx, "alice", "h2"); err != nil {
		t.Fatal(err)
	}
	if at, ok, err := s.CredentialsEnded(ctx, "alice"); err != nil || !ok || !at.Equal(now) {
		t.Errorf("CredentialsEnded(alice) after a password change = %v, %v, %v; want %v, true", at, ok, err, now)
	}
	if _, ok, err := s.CredentialsEnded(ctx, "ghost"); err != nil || ok {
		t.Errorf("CredentialsEnded(ghost) = %v, %v; want false", ok, err)
	}
}
