package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mesh/store"
)

func TestSessionByID(t *testing.T) {
	t.Parallel()
	s, _ := newTestDB(t)
	ctx := context.Background()
	u, err := s.AddUser(ctx, "alice", "hash", false)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	want := store.P2PSession{ID: "s1", TokenHash: store.HashToken("mst_x"), Kind: "file", UserID: u.ID,
		TargetDevice: "device-b", CreatedAt: now, ExpiresAt: now.Add(2 * time.Minute)} // no initiator device
	if err := s.RecordSession(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.SessionByID(ctx, "s1")
	if diff := cmp.Diff(want, got); err != nil || diff != "" {
		t.Fatalf("SessionByID = %v (-want +got):\n%s", err, diff)
	}
	if _, err := s.SessionByID(ctx, "s2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SessionByID(unknown) = %v, want ErrNotFound", err)
	}
}
