package server

import (
	"sync"
	"time"
)

// throttle counts failed logins per key in a sliding window. It keeps only
// failure times, so memory is bounded by attackers' failures in one window.
type throttle struct {
	window time.Duration
	mu     sync.Mutex // guards fails
	fails  map[string][]time.Time
}

func newThrottle(window time.Duration) *throttle {
	return &throttle{window: window, fails: make(map[string][]time.Time)}
}

// wait returns how long key must wait before another attempt, 0 if it may
// try now, given that limit failures within the window block it.
func (t *throttle) wait(key string, limit int, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	fs := t.prune(key, now)
	if len(fs) < limit {
		return 0
	}
	// Blocked until enough of the oldest failures leave the window.
	return fs[len(fs)-limit].Add(t.window).Sub(now)
}

// fail records one failure for key.
func (t *throttle) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fails[key] = append(t.prune(key, now), now)
	if len(t.fails) > 4096 {
		for k := range t.fails {
			t.prune(k, now)
		}
	}
}

// reset forgets key's failures (after a successful login).
func (t *throttle) reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.fails, key)
}

// prune drops failures older than the window; t.mu must be held.
func (t *throttle) prune(key string, now time.Time) []time.Time {
	fs := t.fails[key]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) >= t.window {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(t.fails, key)
		return nil
	}
	t.fails[key] = fs
	return fs
}
