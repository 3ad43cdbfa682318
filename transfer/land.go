package transfer

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// finishFile checks sum, the whole-file hash of a file whose data is all in
// f, against the one the sender's end frame gave (it.BLAKE3), then makes it
// durable and lands it, or deletes it on a mismatch or if the sender saw
// the file change while it read it (changed). It closes f and returns the
// acknowledgement. It runs on the sink's goroutine.
func (rc *receiver) finishFile(it *item, f *os.File, sum [32]byte, changed bool) (ackMsg, error) {
	got := hex.EncodeToString(sum[:])
	a := ackMsg{Type: typeAck, Index: it.index, Status: StatusOK, Name: it.top.as}
	if it.rest != "" {
		a.Name += "/" + it.rest
	}
	if got != it.BLAKE3 || changed {
		f.Close() // being deleted
		if err := os.Remove(it.disk); err != nil {
			return a, err
		}
		it.top.failed = true
		a.Status, a.Reason = StatusMismatch, "whole-file blake3 is "+got
		if changed {
			a.Reason = "the file changed on the sender while it was read"
		}
	} else {
		// A lone file is made durable before its rename. A tree's files are
		// not synced one by one: the tree is renamed into place only when
		// complete, after one flush of the file system (finishTrees), so a
		// file's own fsync would buy nothing a crash could use.
		var serr error
		if it.top.kind == kindFile || !haveSyncFS {
			serr = f.Sync()
		}
		err := errors.Join(serr, f.Chmod(rc.r.landMode(it.Mode)), f.Close())
		if err != nil {
			return a, fmt.Errorf("finish %s: %w", it.disk, err)
		}
		if it.top.kind == kindFile {
			if a.Name, err = rc.landFile(it.top); err != nil {
				return a, err
			}
		}
	}
	rc.status[it] = a
	return a, nil
}

// landFile moves a verified lone file from NAME.part to its name, never over
// an existing file: a hard link fails if the name is taken, and then the
// next free copy name is tried.
func (rc *receiver) landFile(t *top) (string, error) {
	return rc.moveOut(t, func(dst string) error {
		err := os.Link(t.work, dst)
		if err == nil || errors.Is(err, fs.ErrExist) {
			if err == nil {
				err = os.Remove(t.work)
			}
			return err
		}
		return renameNew(t.work, dst) // no hard links on this file system
	})
}

// moveOut tries move on the landing name of t, then on the later copy names
// not taken by this transfer while it fails with fs.ErrExist. It returns the name used.
func (rc *receiver) moveOut(t *top, move func(dst string) error) (string, error) {
	for n := t.copy; n <= maxCopies; n++ {
		c := copyName(t.name, n, t.kind == kindDir)
		if n != t.copy && (len(c)+len(partSuffix) > MaxComponent || rc.reserved[c] || rc.reserved[c+partSuffix]) {
			continue
		}
		switch err := move(filepath.Join(rc.r.Inbox, c)); {
		case err == nil:
			rc.reserved[c] = true
			return c, nil
		case !errors.Is(err, fs.ErrExist):
			return "", fmt.Errorf("land %s: %w", t.work, err)
		}
	}
	return "", fmt.Errorf("land %s: no free name", t.work)
}

// renameNew renames src to dst unless dst exists (then the error wraps
// fs.ErrExist). Between the check and the rename another process could
// create dst; for a directory, rename(2) then fails unless dst is empty.
func renameNew(src, dst string) error {
	if kind, err := lstatKind(dst); err != nil {
		return err
	} else if kind != "" {
		return fs.ErrExist
	}
	return os.Rename(src, dst)
}

// finishTrees lands every directory tree whose files all verified: it
// makes the trees' files and directories durable (one syncfs(2) for them
// all, where there is one), applies the directory modes, renames TREE.part
// to its name and syncs the inbox. A tree with a failed file stays
// TREE.part, so a rerun resumes it.
func (rc *receiver) finishTrees() error {
	dirs := map[*top][]*item{}
	for _, it := range rc.items {
		if it.refused == "" && it.Kind == kindDir && it.rest != "" {
			dirs[it.top] = append(dirs[it.top], it)
		}
	}
	flushed := false
	for _, t := range rc.tops {
		if t.kind != kindDir {
			continue
		}
		if t.failed {
			rc.renamed = append(rc.renamed, landing{Name: t.as, As: t.as + partSuffix})
			continue
		}
		ds := dirs[t]
		slices.SortStableFunc(ds, func(a, b *item) int {
			return strings.Count(b.rest, "/") - strings.Count(a.rest, "/")
		})
		if err := rc.flushTree(t, ds, &flushed); err != nil {
			return err
		}
		for _, d := range ds {
			if err := os.Chmod(d.disk, rc.r.landMode(d.Mode)); err != nil {
				return fmt.Errorf("finish %s: %w", d.disk, err)
			}
		}
		as, err := rc.moveOut(t, func(dst string) error { return renameNew(t.work, dst) })
		if err != nil {
			return err
		}
		if as != t.as {
			rc.renamed = append(rc.renamed, landing{Name: t.as, As: as})
		}
		if t.listed {
			if err := os.Chmod(filepath.Join(rc.r.Inbox, as), rc.r.landMode(t.mode)); err != nil {
				return fmt.Errorf("finish %s: %w", as, err)
			}
		}
	}
	return syncDir(rc.r.Inbox)
}

// flushTree makes tree t's data durable before it is renamed: one syncfs
// of the inbox's file system covers every tree of the transfer (flushed
// records that it ran); without syncfs, each directory of t (ds, deepest
// first, then t's own) is synced, its files having been synced as they
// finished.
func (rc *receiver) flushTree(t *top, ds []*item, flushed *bool) error {
	if haveSyncFS {
		if !*flushed {
			*flushed = true
			return syncFS(rc.r.Inbox)
		}
		return nil
	}
	for _, d := range ds {
		if err := syncDir(d.disk); err != nil {
			return err
		}
	}
	return syncDir(t.work)
}

// syncDir makes a directory's entries durable.
func syncDir(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return nil
}
