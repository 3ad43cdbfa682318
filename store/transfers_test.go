package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"mesh/store"
)

// TestPutTransferMergesBySession: reports of one session, even at the same
// moment, make one transfer per user; merge sees what is stored so far.
func TestPutTransferMergesBySession(t *testing.T) {
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
	var wg sync.WaitGroup
	for i := range 8 { // eight reports of s1 at once, as two sides might
		wg.Go(func() {
			_, err := s.PutTransfer(ctx, alice.ID, "s1", func(tr *store.Transfer) {
				tr.Size++
				tr.Name = "big.iso"
				if i%2 == 0 {
					tr.Sender = store.TransferSide{Outcome: "failed", Reason: fmt.Sprint("sender ", i)}
				} else {
					tr.Receiver = store.TransferSide{Outcome: "failed", Reason: fmt.Sprint("receiver ", i)}
				}
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := s.PutTransfer(ctx, bob.ID, "s1", func(tr *store.Transfer) { tr.Outcome = "ok" }); err != nil {
		t.Fatal(err)
	}
	second, err := s.PutTransfer(ctx, alice.ID, "s2", func(tr *store.Transfer) {
		if tr.ID != 0 || tr.UserID != alice.ID || tr.SessionID != "s2" {
			t.Errorf("a new session's transfer starts as %+v", tr)
		}
		tr.Outcome, tr.Reason, tr.FromDevice = "failed", "receiver unreachable", "laptop"
	})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := s.Transfers(ctx, alice.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].ID != second.ID || ts[1].SessionID != "s1" || ts[1].Size != 8 ||
		!strings.HasPrefix(ts[1].Sender.Reason, "sender ") || !strings.HasPrefix(ts[1].Receiver.Reason, "receiver ") {
		t.Fatalf("alice's transfers = %+v; want s2, then s1 merged from all 8 reports", ts)
	}
	want := store.Transfer{ID: second.ID, UserID: alice.ID, SessionID: "s2", FromDevice: "laptop", Outcome: "failed",
		Reason: "receiver unreachable"}
	if diff := cmp.Diff(want, ts[0], cmpopts.IgnoreFields(store.Transfer{}, "CreatedAt")); diff != "" {
		t.Errorf("s2 read back (-want +got):\n%s", diff)
	}
	if bs, err := s.Transfers(ctx, bob.ID, 10); err != nil || len(bs) != 1 || bs[0].Outcome != "ok" {
		t.Errorf("bob's transfers = %+v, %v; want his own s1 only", bs, err)
	}
}

// TestTransferSidesMigration: transfers stored before sides were known
// become the receiver's reports, except the web app's refused starts,
// which the sending agent reported.
func TestTransferSidesMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "mesh.db")
	db := schemaBefore(t, p, "_transfer_sides.sql")
	for _, q := range []string{
		`INSERT INTO users (id, username, password_hash, created_at) VALUES (1, 'alice', 'h', 0)`,
		`INSERT INTO transfers (user_id, session_id, from_device, to_device, name, size, blake3, duration_ms, outcome, direct, created_at)
			VALUES (1, 'abc', 'laptop', 'home', 'a.txt', 3, '', 5, 'ok', 1, 100),
			       (1, 'start-0123', 'laptop', 'home', 'b.txt', 0, '', 0, 'failed', 0, 200)`,
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
		t.Fatal(err)
	}
	defer s.Close()
	ts, err := s.Transfers(ctx, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]store.TransferSide{}
	for _, tr := range ts {
		got[tr.SessionID] = [2]store.TransferSide{tr.Sender, tr.Receiver}
	}
	want := map[string][2]store.TransferSide{
		"abc":        {{}, {Outcome: "ok"}},
		"start-0123": {{Outcome: "failed"}, {}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sides after the migration (-want +got):\n%s", diff)
	}
}

// schemaBefore creates the database at p with every migration before the
// one whose file name ends in suffix, and returns it open without the store.
func schemaBefore(t *testing.T, p, suffix string) *sql.DB {
	t.Helper()
	entries, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() }) // closed already when the test opens the store
	if _, err := db.Exec(`CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
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
		v, _ := strconv.Atoi(strings.SplitN(name, "_", 2)[0]) // store.Open checks the names
		if _, err := db.Exec(string(b)); err != nil {
			t.Fatalf("apply %s: %v", name, err)
		}
		if _, err := db.Exec(`INSERT INTO schema_version VALUES (?, ?, 0)`, v, name); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("no migration *%s", suffix)
	return nil
}

// TestTransferPath: a transfer stored before paths were known reads back
// with none; the merged path and each side's are stored and updated.
func TestTransferPath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "mesh.db")
	db := schemaBefore(t, p, "_transfer_path.sql")
	if _, err := db.ExecContext(ctx, `INSERT INTO users (id, username, password_hash, created_at) VALUES (1, 'alice', 'h', 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO transfers (user_id, session_id, from_device, to_device, name, size, blake3,
		duration_ms, outcome, direct, receiver_outcome, created_at) VALUES (1, 'old', 'laptop', 'home', 'a.txt', 3, '', 5, 'ok', 1, 'ok', 100)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(session string, merge func(*store.Transfer)) {
		t.Helper()
		if _, err := s.PutTransfer(ctx, 1, session, merge); err != nil {
			t.Fatal(err)
		}
	}
	put("relayed", func(tr *store.Transfer) { // inserted
		tr.Sender = store.TransferSide{Outcome: "failed", Reason: "reset", Path: "relay"}
		tr.Path = "relay"
	})
	put("relayed", func(tr *store.Transfer) { // updated
		tr.Receiver = store.TransferSide{Outcome: "ok", Path: "nat"}
		tr.Path = "nat"
	})
	ts, err := s.Transfers(ctx, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	type paths struct{ Path, Sender, Receiver string }
	got := map[string]paths{}
	for _, tr := range ts {
		got[tr.SessionID] = paths{tr.Path, tr.Sender.Path, tr.Receiver.Path}
	}
	want := map[string]paths{"old": {}, "relayed": {"nat", "relay", "nat"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paths read back (-want +got):\n%s", diff)
	}
}
