package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"mesh/server/netguard"
	"mesh/server/notify/gotify"
	"mesh/store"
)

// Push kinds, and the priority each gets on the phone (Gotify: 0–10).
const (
	pushKindDM      = "dm"
	pushKindMention = "mention"
	pushKindCall    = "call"
	pushKindFile    = "file"
	pushKindTest    = "test"
)

var pushPriority = map[string]int{pushKindCall: 10, pushKindDM: 8, pushKindMention: 7, pushKindFile: 5, pushKindTest: 5}

// pushKinds are the kinds a user may turn off.
var pushKinds = []string{pushKindDM, pushKindMention, pushKindCall, pushKindFile}

const (
	pushTimeout     = 10 * time.Second // one request to Gotify
	maxPushAttempts = 10
	maxRetryWait    = 10 * time.Minute
	pushBatch       = 64
)

// pusher drains the persisted outbox: a push is stored first, then sent by
// a worker, so chat never waits on Gotify and a restart resumes what was
// pending. Per user, a token bucket limits pushes; what it holds back is
// coalesced when it falls due.
type pusher struct {
	cfg     NotifyConfig
	store   *store.Store
	log     *slog.Logger
	guard   netguard.Guard
	trusted gotify.Client // for the admin's [notify.gotify]
	guarded gotify.Client // for users' own targets: never the server's own networks
	wake    chan struct{} // a push was queued

	mu     sync.Mutex // guards limits
	limits map[int64]*rate.Limiter
}

func newPusher(cfg NotifyConfig, st *store.Store, log *slog.Logger) *pusher {
	allowed, _ := cfg.allowedTargets() // checked by Validate
	g := netguard.Guard{AllowPrivate: cfg.AllowPrivateTargets, Allowed: allowed, Resolver: cfg.Resolver}
	// Its own transport: a connection pooled for the trusted client must
	// not carry a user's push past the guard.
	guarded := gotify.Client{HTTP: &http.Client{Timeout: pushTimeout, Transport: g.Transport()}}
	return &pusher{cfg: cfg, store: st, log: log, guard: g, guarded: guarded, wake: make(chan struct{}, 1), limits: make(map[int64]*rate.Limiter)}
}

// route is where one user's pushes go.
type route struct {
	gotify.Target
	own bool // the user's own target, not the server's
}

// send pushes m along r, through the guard unless r is the admin's.
func (p *pusher) send(ctx context.Context, r route, m gotify.Message) (int64, error) {
	c := &p.trusted
	if r.own {
		c = &p.guarded
	}
	return c.Send(ctx, r.Target, m)
}

func (p *pusher) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// target is where userID's pushes go: their own Gotify, else the server's.
func (p *pusher) target(ctx context.Context, userID int64) (route, store.NotifySettings, error) {
	set, err := p.store.NotifySettings(ctx, userID)
	if err != nil {
		return route{}, set, err
	}
	if set.GotifyURL != "" && set.GotifyToken != "" {
		return route{gotify.Target{URL: set.GotifyURL, Token: set.GotifyToken}, true}, set, nil
	}
	g := p.cfg.Gotify
	if g.URL == "" {
		return route{}, set, nil
	}
	tok := g.Token
	if g.TokenFile != "" {
		b, err := os.ReadFile(g.TokenFile)
		if err != nil {
			return route{}, set, fmt.Errorf("notify.gotify.token_file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	return route{gotify.Target{URL: g.URL, Token: tok}, false}, set, nil
}

// enqueue stores a push for userID unless they turned kind off, muted the
// room, or have nowhere to send it. It never sends.
func (p *pusher) enqueue(ctx context.Context, pu store.Push) {
	t, set, err := p.target(ctx, pu.UserID)
	if err != nil {
		p.log.Warn("push not queued", "user_id", pu.UserID, "err", err)
		return
	}
	if t.URL == "" || slices.Contains(set.KindsOff, pu.Kind) {
		return
	}
	if pu.RoomID != 0 {
		muted, err := p.store.MutedRooms(ctx, pu.UserID)
		if err != nil || slices.Contains(muted, pu.RoomID) {
			return
		}
	}
	pu.Priority = pushPriority[pu.Kind]
	if added, err := p.store.EnqueuePush(ctx, pu); err != nil {
		p.log.Error("queue push", "user_id", pu.UserID, "kind", pu.Kind, "err", err)
	} else if added {
		p.poke()
	}
}

// run sends due pushes until ctx is done, starting with every push left
// pending by the last run.
func (p *pusher) run(ctx context.Context) {
	defer p.guarded.HTTP.CloseIdleConnections()
	if err := p.store.ResumePushes(ctx); err != nil {
		p.log.Error("resume pushes", "err", err)
	}
	for {
		p.drain(ctx)
		wait := 30 * time.Second
		if next, err := p.store.NextPushAt(ctx); err == nil && !next.IsZero() {
			wait = min(wait, max(time.Until(next), 10*time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-p.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// drain sends what is due, a user at a time on up to Workers goroutines.
func (p *pusher) drain(ctx context.Context) {
	for ctx.Err() == nil {
		users, err := p.store.DuePushUsers(ctx, pushBatch)
		if err != nil {
			p.log.Error("read push outbox", "err", err)
			return
		}
		if len(users) == 0 {
			return
		}
		sem := make(chan struct{}, p.cfg.Workers)
		var wg sync.WaitGroup
		for _, u := range users {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				p.sendUser(ctx, u)
			})
		}
		wg.Wait()
		if len(users) < pushBatch {
			return
		}
	}
}

func (p *pusher) limiter(userID int64) *rate.Limiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.limits[userID]
	if l == nil {
		// A burst of one: the first push goes at once, and whatever comes
		// within the next 1/n minute waits and goes as one.
		l = rate.NewLimiter(rate.Every(time.Minute/time.Duration(p.cfg.MaxPerMinute)), 1)
		p.limits[userID] = l
	}
	return l
}

// sendUser sends one user's due pushes: messages from one room that piled
// up go as one push, and the rate limit holds back what it must.
func (p *pusher) sendUser(ctx context.Context, userID int64) {
	pending, err := p.store.PendingPushes(ctx, userID)
	if err != nil || len(pending) == 0 {
		return
	}
	t, _, err := p.target(ctx, userID)
	if err != nil || t.URL == "" {
		p.record(p.store.FinishPushes(ctx, store.PushFailed, "no Gotify target any more", pushIDs(pending)...))
		return
	}
	lim := p.limiter(userID)
	for _, group := range coalesce(pending) {
		// Chat is what floods a phone: it alone is rate-limited. A call or
		// a received file goes at once.
		chat := group[0].Kind == pushKindDM || group[0].Kind == pushKindMention
		if chat {
			if tokens := lim.TokensAt(time.Now()); tokens < 1 {
				wait := time.Duration((1 - tokens) / float64(lim.Limit()) * float64(time.Second))
				if err := p.store.DelayPushes(ctx, wait, pushIDs(group)...); err != nil {
					p.log.Error("delay pushes", "user_id", userID, "err", err)
				}
				continue
			}
		}
		if p.sendGroup(ctx, t, group) && chat {
			lim.Allow() // only delivered pushes count against the limit
		}
	}
}

// sendGroup sends one push (for a coalesced group, a summary), records the
// outcome for every push in the group, and reports whether it went out.
func (p *pusher) sendGroup(ctx context.Context, t route, group []store.Push) bool {
	first, ids := group[len(group)-1], pushIDs(group) // the newest speaks for the rest
	msg := gotify.Message{Title: first.Title, Message: first.Message, Priority: first.Priority, ClickURL: first.ClickURL}
	if len(group) > 1 {
		msg.Title = fmt.Sprintf("%d new messages%s", len(group), roomSuffix(first.Title))
		msg.Message = "latest: " + first.Message
	}
	_, err := p.send(ctx, t, msg)
	switch {
	case err == nil:
		p.record(p.store.FinishPushes(ctx, store.PushMerged, "", ids[:len(ids)-1]...))
		p.record(p.store.FinishPushes(ctx, store.PushSent, "", first.ID))
		p.record(p.store.SetNotifyError(ctx, first.UserID, "")) // a push got through: clear an old failure
		return true
	case errors.Is(err, gotify.ErrRejected):
		p.log.Warn("push refused by Gotify; not retrying", "user_id", first.UserID, "err", err)
		p.record(p.store.FinishPushes(ctx, store.PushFailed, err.Error(), ids...))
		p.record(p.store.SetNotifyError(ctx, first.UserID, failureText(err)))
	default:
		for _, pu := range group {
			if pu.Attempts+1 >= maxPushAttempts {
				p.record(p.store.FinishPushes(ctx, store.PushFailed, err.Error(), pu.ID))
				p.record(p.store.SetNotifyError(ctx, pu.UserID, fmt.Sprintf("gave up after %d attempts: %v", maxPushAttempts, err)))
				continue
			}
			p.record(p.store.RetryPush(ctx, pu.ID, retryWait(p.cfg.RetryMin, pu.Attempts), err.Error()))
		}
		p.log.Info("push failed; will retry", "user_id", first.UserID, "attempt", first.Attempts+1, "err", err)
	}
	return false
}

// record logs a failure to update the outbox: the push itself is settled,
// and the worker goes on with the next.
func (p *pusher) record(err error) {
	if err != nil {
		p.log.Error("update push outbox", "err", err)
	}
}

// retryWait is base·2^attempts, capped, with ±50% jitter so a Gotify that
// comes back is not hit by every retry at once.
func retryWait(base time.Duration, attempts int) time.Duration {
	d := base << min(attempts, 20)
	if d <= 0 || d > maxRetryWait {
		d = maxRetryWait
	}
	return d/2 + rand.N(d)
}

// coalesce groups pushes: chat pushes from the same room and kind go
// together, anything else alone; groups keep the order of their newest.
func coalesce(due []store.Push) [][]store.Push {
	var groups [][]store.Push
	at := map[string]int{}
	for _, pu := range due {
		if pu.RoomID == 0 || (pu.Kind != pushKindDM && pu.Kind != pushKindMention) {
			groups = append(groups, []store.Push{pu})
			continue
		}
		k := fmt.Sprint(pu.Kind, pu.RoomID)
		if i, ok := at[k]; ok {
			groups[i] = append(groups[i], pu)
			continue
		}
		at[k] = len(groups)
		groups = append(groups, []store.Push{pu})
	}
	return groups
}

// failureText is what a user reads about a push that will not go through
// as it is: what was refused, and what to change.
func failureText(err error) string {
	if errors.Is(err, netguard.ErrForbiddenAddress) {
		return err.Error() + "; " + privateHint
	}
	return "Gotify refused the push: " + err.Error()
}

// privateHint says how a target on the server's own networks can be allowed.
const privateHint = "set a Gotify URL on the internet, or ask the admin to allow it with [notify] allow_private_targets = true (or its address in allowed_targets)"

// roomSuffix turns a title "alice in #general" into " in #general".
func roomSuffix(title string) string {
	if _, room, ok := strings.Cut(title, " in #"); ok {
		return " in #" + room
	}
	if title != "" {
		return " from " + title
	}
	return ""
}

func pushIDs(ps []store.Push) []int64 {
	ids := make([]int64, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}
