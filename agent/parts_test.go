package agent

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// age sets path's modification (and access) time to d ago; path is a file
// or a directory, never a symlink, which Chtimes would follow.
func age(t *testing.T, path string, d time.Duration) {
	t.Helper()
	when := time.Now().Add(-d)
	if err := os.Chtimes(path, when, when); err != nil {
		t.Fatal(err)
	}
}

func mkfile(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("verified chunks"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// TestDaemonRemovesStalePartsAtStart: `mesh agent run` clears abandoned
// .part files from its inbox when it starts, without a server to talk to.
func TestDaemonRemovesStalePartsAtStart(t *testing.T) {
	t.Parallel()
	inbox := t.TempDir()
	stale, fresh := filepath.Join(inbox, "old.iso.part"), filepath.Join(inbox, "new.iso.part")
	mkfile(t, stale)
	mkfile(t, fresh)
	age(t, stale, 8*24*time.Hour) // older than the 7-day default
	cfg := DefaultConfig()
	cfg.Server, cfg.Username, cfg.DeviceID, cfg.DeviceToken = "http://127.0.0.1:1", "alice", "home", "mdt_test"
	cfg.Inbox, cfg.QUICListen = inbox, "127.0.0.1:0"
	lb := &logBuf{}
	d, err := NewDaemon(cfg, t.TempDir(), slog.New(slog.NewTextHandler(lb, nil)))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, pc) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); exists(t, stale); {
		if time.Now().After(deadline) {
			t.Fatalf("%s still there 10 s after the agent started; log:\n%s", stale, lb)
		}
		time.Sleep(10 * time.Millisecond) // polling the file system: nothing to wait on
	}
	if !exists(t, fresh) {
		t.Errorf("the fresh %s was removed too", fresh)
	}
}

// TestPartSweep: only NAME.part files and TREE.part/ directories directly in
// the inbox, unchanged for longer than the age, go; a symlink named like
// one is never followed, and nothing it points to is touched.
func TestPartSweep(t *testing.T) {
	t.Parallel()
	const maxAge = 7 * 24 * time.Hour
	now := time.Now()
	inbox, outside := t.TempDir(), t.TempDir()
	old := maxAge + time.Hour
	p := func(name string) string { return filepath.Join(inbox, filepath.FromSlash(name)) }
	target := filepath.Join(outside, "precious")
	mkfile(t, filepath.Join(target, "file"))
	age(t, filepath.Join(target, "file"), old)
	age(t, target, old)

	mkfile(t, p("stale.iso.part"))
	age(t, p("stale.iso.part"), old)
	mkfile(t, p("fresh.iso.part")) // being written, or just interrupted
	mkfile(t, p("photo.jpg"))      // a landed file, however old
	age(t, p("photo.jpg"), old)
	mkfile(t, p(".part")) // no NAME before the suffix: not the receiver's
	age(t, p(".part"), old)
	mkfile(t, p("stale-tree.part/a/b.txt"))
	if err := os.Symlink(target, p("stale-tree.part/a/link")); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"stale-tree.part/a/b.txt", "stale-tree.part/a", "stale-tree.part"} {
		age(t, p(q), old)
	}
	then := unix.NsecToTimeval(now.Add(-old).UnixNano())
	if err := unix.Lutimes(p("stale-tree.part/a/link"), []unix.Timeval{then, then}); err != nil {
		t.Fatal(err) // the link's own time counts, and it is old too
	}
	mkfile(t, p("live-tree.part/a/new.txt")) // the newest file inside counts
	for _, q := range []string{"live-tree.part/a", "live-tree.part"} {
		age(t, p(q), old)
	}
	for _, name := range []string{"x.part", "y.part"} { // to an old dir and an old file outside
		dst := map[string]string{"x.part": target, "y.part": filepath.Join(target, "file")}[name]
		if err := os.Symlink(dst, p(name)); err != nil {
			t.Fatal(err)
		}
	}

	lb := &logBuf{}
	sw := &partSweeper{inbox: inbox, maxAge: maxAge, now: func() time.Time { return now }, log: slog.New(slog.NewTextHandler(lb, nil))}
	sw.sweep()
	for name, want := range map[string]bool{
		"stale.iso.part": false, "stale-tree.part": false,
		"fresh.iso.part": true, "photo.jpg": true, ".part": true, "live-tree.part/a/new.txt": true, "x.part": true, "y.part": true,
	} {
		if got := exists(t, p(name)); got != want {
			t.Errorf("after the sweep, %s exists = %t, want %t", name, got, want)
		}
	}
	if !exists(t, filepath.Join(target, "file")) {
		t.Errorf("the sweep removed %s, outside the inbox", filepath.Join(target, "file"))
	}
	for _, name := range []string{"stale.iso.part", "stale-tree.part"} {
		if !strings.Contains(lb.String(), "name="+name) {
			t.Errorf("no log line for removing %s:\n%s", name, lb)
		}
	}
	if n := strings.Count(lb.String(), "abandoned part removed"); n != 2 {
		t.Errorf("%d removals logged, want 2:\n%s", n, lb)
	}
}

// TestPartSweepWaitsForReceives: a sweep does nothing while a receive is
// under way, which might be resuming an old .part.
func TestPartSweepWaitsForReceives(t *testing.T) {
	t.Parallel()
	inbox := t.TempDir()
	part := filepath.Join(inbox, "big.bin.part")
	mkfile(t, part)
	age(t, part, 30*24*time.Hour)
	sw := &partSweeper{inbox: inbox, maxAge: time.Hour, now: time.Now, log: slog.New(slog.DiscardHandler)}
	done := sw.receiving()
	sw.sweep()
	if !exists(t, part) {
		t.Fatal("swept a .part while a receive was under way")
	}
	done()
	sw.sweep()
	if exists(t, part) {
		t.Fatal("the .part survived a sweep after the receive ended")
	}
}
