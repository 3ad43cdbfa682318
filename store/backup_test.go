package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"mesh/store"
)

// dirNames lists the names in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// allMessages reads every message of a room in seq order.
func allMessages(t *testing.T, s *store.Store, roomID int64) []store.Message {
	t.Helper()
	var all []store.Message
	for {
		ms, more, err := s.MessagesAfter(context.Background(), roomID, int64(len(all)), store.MaxMessagesAfter)
		if err != nil {
			t.Fatalf("MessagesAfter(%d, %d): %v", roomID, len(all), err)
		}
		all = append(all, ms...)
		if !more {
			return all
		}
	}
}

// TestBackupWhileWriting copies the database while another Store on the same
// file (the running server) keeps appending, as `mesh backup` does.
func TestBackupWhileWriting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, path := newTestDB(t)
	u := addUsers(t, srv, "alice")[0]
	room := createRoom(t, srv, "General", store.VisibilityPublic, u.ID)
	batch := make([]store.NewMessage, 500) // enough rows that the copy takes a while
	for b := range 4 {
		for i := range batch {
			batch[i] = store.NewMessage{RoomID: room.ID, UserID: u.ID, Text: strings.Repeat("x", 200), ClientMsgID: fmt.Sprint("seed", b, "-", i)}
		}
		if _, err := srv.AppendMessages(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}

	var stored atomic.Int64 // messages committed so far
	stored.Store(int64(4 * len(batch)))
	stop, done := make(chan struct{}), make(chan error)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, _, err := srv.AppendMessage(ctx, room.ID, u.ID, fmt.Sprint("live ", i), fmt.Sprint("live", i)); err != nil {
				done <- fmt.Errorf("append during backup: %w", err)
				return
			}
			stored.Add(1)
		}
	}()

	cmd, err := store.Open(ctx, path) // the backup command's own Store
	if err != nil {
		t.Fatal(err)
	}
	defer cmd.Close()
	dst := filepath.Join(t.TempDir(), "backup.db")
	before := stored.Load()
	info, err := cmd.Backup(ctx, dst)
	during := stored.Load() - before
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	after := stored.Load()
	if err != nil {
		t.Fatalf("Backup(%s): %v", dst, err)
	}
	t.Logf("backup of %d bytes while %d messages were appended", info.Size, during)

	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.BackupInfo{Path: dst, Size: fi.Size(), Schema: store.LatestSchema()}); info != want {
		t.Errorf("Backup(%s) = %+v, want %+v", dst, info, want)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode = %#o, want 0600", fi.Mode().Perm())
	}
	if got := dirNames(t, filepath.Dir(dst)); !slices.Equal(got, []string{"backup.db"}) {
		t.Errorf("backup directory holds %q, want only backup.db", got)
	}

	// The copy is the database at one moment: a prefix of the room's
	// messages, each as the server stored it, and last_seq agreeing.
	orig := allMessages(t, srv, room.ID)
	cp, err := store.Open(ctx, dst)
	if err != nil {
		t.Fatalf("open backup: %v", err)
	}
	defer cp.Close()
	got := allMessages(t, cp, room.ID)
	if n := int64(len(got)); n < before || n > after {
		t.Errorf("backup holds %d messages, want between %d and %d", n, before, after)
	}
	if diff := cmp.Diff(orig[:min(len(got), len(orig))], got); diff != "" {
		t.Errorf("backup is not a prefix of the original (-original +backup):\n%s", diff)
	}
	if r, err := cp.Room(ctx, room.ID); err != nil || r.LastSeq != int64(len(got)) {
		t.Errorf("backup room = %+v, %v; want last_seq %d", r, err, len(got))
	}

	// The original keeps working.
	if m := appendMsg(t, srv, room.ID, u.ID, "after the backup", ""); m.Seq != after+1 {
		t.Errorf("append after backup: seq %d, want %d", m.Seq, after+1)
	}
}

func TestBackupRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestDB(t)
	dir := t.TempDir()
	for _, name := range []string{"full.db", "empty.db"} {
		writeFile(t, filepath.Join(dir, name), map[string]string{"full.db": "keep me", "empty.db": ""}[name])
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	tests := []struct {
		name string
		ctx  context.Context
		dst  string
		want string // in the error
	}{
		{"existing file", ctx, filepath.Join(dir, "full.db"), "full.db exists; pick a new name or remove it"},
		{"existing empty file", ctx, filepath.Join(dir, "empty.db"), "empty.db exists; pick a new name or remove it"},
		{"existing directory", ctx, dir, "exists; pick a new name or remove it"},
		{"missing directory", ctx, filepath.Join(dir, "nope", "b.db"), "directory " + filepath.Join(dir, "nope") + " does not exist"},
		{"canceled", canceled, filepath.Join(dir, "b.db"), "context canceled"},
	}
	for _, tc := range tests {
		if _, err := s.Backup(tc.ctx, tc.dst); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Backup(%s) = %v, want an error containing %q", tc.name, tc.dst, err, tc.want)
		}
	}
	// Nothing added, nothing overwritten, no temporary files left.
	if got := dirNames(t, dir); !slices.Equal(got, []string{"empty.db", "full.db"}) {
		t.Errorf("after refusals the directory holds %q, want only empty.db and full.db", got)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "full.db")); err != nil || string(b) != "keep me" {
		t.Errorf("full.db = %q, %v; want it untouched", b, err)
	}
}

func TestBackupOfClosedStoreLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), "mesh.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := s.Backup(ctx, filepath.Join(dir, "b.db")); err == nil {
		t.Fatal("Backup of a closed store succeeded")
	}
	if got := dirNames(t, dir); len(got) != 0 {
		t.Errorf("after a failed backup the directory holds %q, want nothing", got)
	}
}

// TestBackupOddFileName: characters that mean something in a SQLite URI
// reach the file system as they are.
func TestBackupOddFileName(t *testing.T) {
	t.Parallel()
	s, _ := newTestDB(t)
	addUsers(t, s, "alice")
	dir := t.TempDir()
	const name = "file:my backup?mode=memory#1%20.db"
	if _, err := s.Backup(context.Background(), filepath.Join(dir, name)); err != nil {
		t.Fatalf("Backup(%q): %v", name, err)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{name}) {
		t.Errorf("backup directory holds %q, want only %q", got, name)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestOpenCreatesPrivateFiles: a new database, its -wal and its -shm are
// 0600 whatever the umask allows; an existing file keeps its mode.
func TestOpenCreatesPrivateFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, path := newTestDB(t)
	addUsers(t, s, "alice") // a write, so the WAL has content
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %#o, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}

	old := filepath.Join(t.TempDir(), "old.db")
	writeFile(t, old, "")
	if err := os.Chmod(old, 0o640); err != nil {
		t.Fatal(err)
	}
	s2, err := store.Open(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, p := range []string{old, old + "-wal"} {
		if fi, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
		} else if fi.Mode().Perm() != 0o640 {
			t.Errorf("%s of an existing 0640 database: mode %#o, want 0640 kept", filepath.Base(p), fi.Mode().Perm())
		}
	}
}

// TestBackupLeavesSchemaAlone: a backup opens the database as it is. One
// written by a newer mesh (version 999 here) is copied, not refused, and
// not touched: the running server may be of another version than the
// binary taking the backup.
func TestBackupLeavesSchemaAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "mesh.db")
	s, err := store.Open(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ExecForTest(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES (999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(ctx, src); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer database: %v, want ErrSchemaTooNew", err)
	}
	s, err = store.OpenWith(ctx, src, store.Options{AsIs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info, err := s.Backup(ctx, filepath.Join(dir, "copy.db"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Schema != 999 {
		t.Errorf("backup schema %d, want 999 (as the source is)", info.Schema)
	}
	if _, err := store.OpenWith(ctx, filepath.Join(dir, "missing.db"), store.Options{AsIs: true}); err == nil {
		t.Error("AsIs open of a missing database succeeded; it must not create one")
	} else if _, statErr := os.Stat(filepath.Join(dir, "missing.db")); statErr == nil {
		t.Error("AsIs open created missing.db")
	}
}
