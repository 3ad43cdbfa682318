package agent

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// partSweepEvery is how often the daemon looks for abandoned .part files,
// besides once when it starts.
const partSweepEvery = time.Hour

// partSuffix marks what an unfinished transfer left in the inbox: a lone
// file's NAME.part, a tree's TREE.part/.
const partSuffix = ".part"

// partSweeper removes abandoned .part files and directories from an inbox:
// a send that never finished leaves one behind, and only a rerun of the
// same send would resume it. It never runs while a receive is under way,
// so a .part being resumed is never pulled from under it.
type partSweeper struct {
	inbox  string
	maxAge time.Duration // <= 0 keeps every .part
	now    func() time.Time
	log    *slog.Logger

	mu     sync.Mutex // guards active; held for a whole sweep
	active int        // receives under way
}

// run sweeps now and then every partSweepEvery until ctx is done.
func (p *partSweeper) run(ctx context.Context) {
	if p.maxAge <= 0 {
		return
	}
	t := time.NewTicker(partSweepEvery)
	defer t.Stop()
	for {
		p.sweep()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// receiving marks a receive under way until the returned func is called.
func (p *partSweeper) receiving() (done func()) {
	p.mu.Lock()
	p.active++
	p.mu.Unlock()
	return sync.OnceFunc(func() {
		p.mu.Lock()
		p.active--
		p.mu.Unlock()
	})
}

// sweep removes every NAME.part file and TREE.part/ directory directly in
// the inbox whose newest modification (for a directory, of anything in it)
// is older than maxAge, and logs each. Symlinks and anything else are left
// alone and never followed. It skips the round while a receive is under way.
func (p *partSweeper) sweep() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.active > 0 {
		p.log.Debug("part sweep skipped: a receive is under way")
		return
	}
	entries, err := os.ReadDir(p.inbox)
	if err != nil {
		p.log.Warn("part sweep: cannot read the inbox", "inbox", p.inbox, "err", err)
		return
	}
	cutoff := p.now().Add(-p.maxAge)
	for _, e := range entries {
		name := e.Name()
		if len(name) <= len(partSuffix) || !strings.HasSuffix(name, partSuffix) || !(e.Type().IsRegular() || e.IsDir()) {
			continue // DirEntry types come from lstat: a symlink is neither
		}
		path := filepath.Join(p.inbox, name)
		newest, err := newestMod(path)
		if err != nil {
			p.log.Warn("part sweep: cannot read it", "name", name, "err", err)
			continue
		}
		if !newest.Before(cutoff) {
			continue
		}
		if err := os.RemoveAll(path); err != nil { // RemoveAll removes symlinks inside, never what they point to
			p.log.Warn("part sweep: cannot remove it", "name", name, "err", err)
			continue
		}
		p.log.Info("abandoned part removed", "name", name, "unchanged_for", p.now().Sub(newest).Round(time.Minute),
			"part_max_age", p.maxAge)
	}
}

// newestMod is path's modification time or, for a directory, the newest of
// everything under it (symlinks' own times, not their targets').
func newestMod(path string) (time.Time, error) {
	var newest time.Time
	err := filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info() // lstat: WalkDir never follows symlinks
		if err != nil {
			return err
		}
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
		return nil
	})
	return newest, err
}
