package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// BackupInfo describes a copy written by [Store.Backup].
type BackupInfo struct {
	Path   string // where the copy is
	Size   int64  // bytes
	Schema int    // schema version of the copy, equal to the source's
}

// Backup writes a consistent copy of the database to dst while others keep
// using it, and checks the copy. It refuses a dst that exists. The copy is
// SQLite's VACUUM INTO a temporary file in dst's directory, made 0600,
// fsynced, checked with PRAGMA integrity_check and for the source's schema
// version, and only then linked into place and its directory fsynced, so a
// crash or a failed check never leaves a partial file under dst (at worst a
// temporary dst.tmp* file). The copy is the database as of one moment: one
// read transaction, which does not block the server's writer (WAL) but keeps
// the WAL from being checkpointed past it until the copy is done.
func (s *Store) Backup(ctx context.Context, dst string) (BackupInfo, error) {
	info := BackupInfo{Path: dst}
	if err := refuseExisting(dst); err != nil {
		return info, err
	}
	tmp, err := createTemp(dst)
	if err != nil {
		return info, err
	}
	schema, err := s.backupTo(ctx, tmp)
	if err != nil {
		removeTemp(tmp)
		return info, fmt.Errorf("backup to %s: %w", dst, err)
	}
	if err := publish(tmp, dst); err != nil {
		removeTemp(tmp)
		return info, err
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return info, fmt.Errorf("backup to %s: %w", dst, err)
	}
	info.Size, info.Schema = fi.Size(), schema
	return info, nil
}

func refuseExisting(dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("backup: %s exists; pick a new name or remove it", dst)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup to %s: %w", dst, err)
	}
	return nil
}

// createTemp makes an empty 0600 file next to dst. VACUUM INTO accepts an
// empty file and keeps its mode, so the copy is never readable by others.
// The name is absolute: SQLite would read a relative "file:…" as a URI.
func createTemp(dst string) (string, error) {
	dir := filepath.Dir(dst)
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("backup to %s: %w", dst, err)
	}
	f, err := os.CreateTemp(abs, filepath.Base(dst)+".tmp*")
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("backup to %s: directory %s does not exist; create it first", dst, dir)
	} else if err != nil {
		return "", fmt.Errorf("backup to %s: %w", dst, err)
	}
	if err := f.Close(); err != nil {
		removeTemp(f.Name())
		return "", fmt.Errorf("backup to %s: %w", dst, err)
	}
	return f.Name(), nil
}

// backupTo fills the empty file tmp with a copy, fsyncs and checks it, and
// returns its schema version.
func (s *Store) backupTo(ctx context.Context, tmp string) (int, error) {
	// Migrations run only when a Store opens, so the version cannot change
	// between this read and the copy.
	want, err := s.SchemaVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	// A reader connection: VACUUM INTO only reads the source, and the DSN's
	// busy_timeout covers the rare moments a WAL reader must wait.
	if _, err := s.r.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		return 0, fmt.Errorf("vacuum into %s: %w", tmp, err)
	}
	if err := syncPath(tmp); err != nil {
		return 0, err
	}
	return want, checkCopy(ctx, tmp, want)
}

// checkCopy opens the copy read-only and immutable (nobody else has it, so
// no locks and no -wal/-shm files) and checks its integrity and schema version.
func checkCopy(ctx context.Context, path string, want int) error {
	u := url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro&immutable=1"} // path is absolute
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return fmt.Errorf("open copy: %w", err)
	}
	defer db.Close() // read-only: closing cannot lose anything
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("check copy: %w", err)
	}
	var problems []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return fmt.Errorf("check copy: %w", err)
		}
		problems = append(problems, p)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("check copy: %w", err)
	}
	if len(problems) != 1 || problems[0] != "ok" {
		return fmt.Errorf("copy failed its integrity check: %s", strings.Join(problems, "; "))
	}
	var got int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&got); err != nil {
		return fmt.Errorf("read schema version of copy: %w", err)
	}
	if got != want {
		return fmt.Errorf("copy is at schema version %d, the database at %d", got, want)
	}
	return nil
}

// publish gives tmp the name dst without replacing anything: a hard link
// fails if dst appeared meanwhile, where a rename would overwrite it.
func publish(tmp, dst string) error {
	err := os.Link(tmp, dst)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("backup: %s appeared during the backup; pick a new name or remove it", dst)
	} else if err != nil {
		// Some file systems (FAT, some FUSE) have no hard links.
		if err := refuseExisting(dst); err != nil {
			return err
		}
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("backup to %s: %w", dst, err)
		}
	} else if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("backup to %s: remove %s: %w", dst, tmp, err)
	}
	return syncPath(filepath.Dir(dst))
}

// syncPath fsyncs a file or a directory.
func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return nil
}

// removeTemp deletes a temporary copy and anything SQLite left beside it.
func removeTemp(tmp string) {
	for _, p := range []string{tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"} {
		_ = os.Remove(p) // best effort on a failure path; most of these never exist
	}
}
