package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The web tests drive the real web app in headless Chromium (chromedp)
// against a real `mesh serve` on loopback. They find things only by the ids
// and attributes of docs/web-contract.md; every wait names the contract id
// it waits for, so a missing one fails in webWait with its name.

const (
	webWait     = 20 * time.Second       // the longest one step may take
	webInterval = 200 * time.Millisecond // how often a wait looks again
)

// browserSlots bounds the Chromium instances that run at once: each is a
// few hundred MB and a lot of CPU.
var browserSlots = make(chan struct{}, 2)

// chromiumPath finds Chromium. Without it the test is skipped, unless CI is
// set: there it must be installed.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/usr/bin/chromium"); err == nil && !fi.IsDir() {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no /usr/bin/chromium and no chromium on PATH: install chromium (apt-get install -y chromium)")
	}
	t.Skip("no Chromium (/usr/bin/chromium or chromium on PATH); with CI set this fails")
	return ""
}

// browser is one headless Chromium; each user gets a browser context of it.
type browser struct {
	t    *testing.T
	ctx  context.Context
	tabs []*tab // for failure reports
}

// newBrowser starts Chromium with the flags of BROWSER-TESTS.md. It waits
// for a free slot first. The browser stops before t's temporary
// directories are removed (t.Cleanup runs last-registered first).
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	browserSlots <- struct{}{}
	t.Cleanup(func() { <-browserSlots })
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("use-fake-device-for-media-stream", true),  // fake camera and microphone
		chromedp.Flag("use-fake-ui-for-media-stream", true),      // grant the permission prompt
		chromedp.Flag("allow-loopback-in-peer-connection", true), // ICE candidates on a host with only lo
		// One list: a repeated Flag replaces the earlier value.
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"), // no DNS leaves the machine
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("mute-audio", true),
		chromedp.WindowSize(1280, 800), // the size of the README's screenshots
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser and binds it to this context's
	// lifetime, so it gets no timeout of its own.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium %s: %v", path, err)
	}
	return &browser{t: t, ctx: ctx}
}

// tab is one user's page, in a browser context of its own (its own
// sessionStorage, so its own token).
type tab struct {
	b       *browser
	t       *testing.T
	user    string // who uses it, for messages
	base    string // the server's URL
	ctx     context.Context
	cancel  context.CancelFunc
	console *syncBuffer
}

// newUserTab opens base in a new browser context for user.
func newUserTab(t *testing.T, b *browser, base, user string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel) // before the browser's: registered later
	tb := &tab{b: b, t: t, user: user, base: base, ctx: ctx, cancel: cancel, console: &syncBuffer{}}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab for %s: %v", user, err)
	}
	b.tabs = append(b.tabs, tb)
	msgs := chromedp.Console(ctx) // subscribes now; the goroutine only reads
	go func() {
		for m, err := range msgs {
			if err != nil {
				return // the tab closed
			}
			fmt.Fprintf(tb.console, "%s\n", m)
		}
	}()
	tb.do("open "+base, chromedp.Navigate(base+"/"))
	return tb
}

// close closes the tab, as a user closing the window.
func (tb *tab) close() {
	tb.cancel()
	for i, o := range tb.b.tabs {
		if o == tb {
			tb.b.tabs = append(tb.b.tabs[:i], tb.b.tabs[i+1:]...)
			break
		}
	}
}

// do runs steps within webWait; what says what the user was doing.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	run(tb, what, chromedp.Steps(steps...))
}

// run runs one action within webWait and returns its value.
func run[T any](tb *tab, what string, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, webWait)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.fail("%s: %v", what, err)
	}
	return v
}

// eval evaluates a JavaScript expression (awaiting a promise) in the page.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	return run(tb, "evaluate "+expr, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// pollFor waits until expr (which may be a promise) is truthy and returns
// its value; what says what is awaited, in the contract's terms.
func pollFor[T any](tb *tab, what, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, webWait+5*time.Second) // the poll's own timeout ends it first
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Poll[T](expr,
		chromedp.WithPollingInterval(webInterval), chromedp.WithPollingTimeout(webWait)))
	switch {
	case errors.Is(err, chromedp.ErrPollingTimeout):
		tb.fail("waited %v for %s", webWait, what)
	case err != nil:
		tb.fail("waiting for %s: %v", what, err)
	}
	return v
}

// waitFor waits until the expression is true.
func (tb *tab) waitFor(what, expr string) {
	tb.t.Helper()
	pollFor[bool](tb, what, "!!("+expr+")")
}

// waitSel waits until sel matches an element.
func (tb *tab) waitSel(sel string) {
	tb.t.Helper()
	tb.waitFor(sel, "document.querySelector("+js(sel)+")")
}

// waitVisible waits until sel matches a rendered element.
func (tb *tab) waitVisible(sel string) {
	tb.t.Helper()
	tb.waitFor(sel+" (visible)", visibleJS(sel))
}

// waitGone waits until nothing matches sel.
func (tb *tab) waitGone(what, sel string) {
	tb.t.Helper()
	tb.waitFor(what, "document.querySelector("+js(sel)+") === null")
}

func visibleJS(sel string) string {
	return "(e => !!e && e.getClientRects().length > 0 && !e.disabled)(document.querySelector(" + js(sel) + "))"
}

// click waits until sel is visible and enabled, then clicks it with the
// mouse. The app may render the element anew between the look-up and the
// click, so a failed click is tried again until webWait.
func (tb *tab) click(sel string) {
	tb.t.Helper()
	tb.waitVisible(sel)
	deadline := time.Now().Add(webWait)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, webWait)
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || tb.ctx.Err() != nil {
			tb.fail("click %s: %v", sel, err)
		}
		tb.waitVisible(sel) // it was replaced; wait for the new one
	}
}

// typeInto empties the field sel and types text into it with key events,
// as a user does; the field keeps the focus.
func (tb *tab) typeInto(sel, text string) {
	tb.t.Helper()
	tb.waitVisible(sel)
	eval[chromedp.Void](tb, "document.querySelector("+js(sel)+").value = ''")
	tb.do(fmt.Sprintf("type %q into %s", text, sel), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// pressEnter presses Enter in the focused element.
func (tb *tab) pressEnter() {
	tb.t.Helper()
	tb.keyboard("\r")
}

// keyboard types s into the focused element as a keyboard does: for each
// key a keyDown that carries its text, and a keyUp. A page's keydown
// handler can then stop the text, as it does for a real keyboard. (SendKeys
// and KeyEvent send the text as a char event of its own, which no keydown
// handler can stop: Enter adds a newline, and xterm.js reads every key
// twice.) "\r" is Enter.
func (tb *tab) keyboard(s string) {
	tb.t.Helper()
	tb.do(fmt.Sprintf("type %q", s), chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, r := range s {
			down := input.DispatchKeyEventParams{Type: kb.KeyDown, Key: string(r), Text: string(r), UnmodifiedText: string(r)}
			if k, ok := kb.Keys[r]; ok {
				down.Key, down.Code, down.WindowsVirtualKeyCode, down.NativeVirtualKeyCode = k.Key, k.Code, k.Windows, k.Native
				if k.Shift {
					down.Modifiers = int64(kb.ModifierShift)
				}
			}
			up := down
			up.Type, up.Text, up.UnmodifiedText = kb.KeyUp, "", ""
			for _, p := range []input.DispatchKeyEventParams{down, up} {
				if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, p); err != nil {
					return err
				}
			}
		}
		return nil
	}))
}

// text is sel's textContent, trimmed; "" when nothing matches.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return strings.TrimSpace(eval[string](tb, "document.querySelector("+js(sel)+")?.textContent ?? ''"))
}

// route goes to a hash route such as "#/devices".
func (tb *tab) route(hash string) {
	tb.t.Helper()
	eval[chromedp.Void](tb, "location.hash = "+js(hash))
	tb.waitFor("location.hash "+hash, "location.hash === "+js(hash))
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a string always marshals
	}
	return string(b)
}

// authenticate fills #auth-form and presses button (#login-btn or
// #register-btn), then waits for #me and an online #conn-status.
func (tb *tab) authenticate(user, password, button string) {
	tb.t.Helper()
	tb.waitVisible("#auth-form")
	tb.typeInto("#username", user)
	tb.typeInto("#password", password)
	tb.click(button)
	tb.waitFor("#me to show "+user+" after "+button, "document.querySelector('#me')?.textContent.trim() === "+js(user))
	tb.waitSel(`#conn-status[data-state="online"]`)
}

func (tb *tab) register(user, password string) { tb.authenticate(user, password, "#register-btn") }
func (tb *tab) login(user, password string)    { tb.authenticate(user, password, "#login-btn") }

// openDirect opens the direct room with other through #dm-user and #dm-btn
// and returns its id.
func (tb *tab) openDirect(other string) string {
	tb.t.Helper()
	tb.typeInto("#dm-user", other)
	tb.click("#dm-btn")
	id := pollFor[string](tb, `#room-list li[data-room-id][aria-current="true"] with .room-name `+other+` after #dm-btn`,
		`(() => { const li = document.querySelector('#room-list li[data-room-id][aria-current="true"]');
			return li && (li.querySelector('.room-name')?.textContent ?? '').includes(`+js(other)+`) ? li.dataset.roomId : ''; })()`)
	tb.waitFor("location.hash #/chat/"+id, "location.hash === "+js("#/chat/"+id))
	return id
}

// send types text into #composer and sends it with Enter or #send-btn.
func (tb *tab) send(text string, enter bool) {
	tb.t.Helper()
	tb.typeInto("#composer", text)
	if enter {
		tb.pressEnter()
	} else {
		tb.click("#send-btn")
	}
	tb.waitFor("#composer to empty after sending "+fmt.Sprintf("%q", text), "document.querySelector('#composer')?.value === ''")
}

// waitMessage waits for a .message in #messages from from whose .text is
// exactly text, and returns its data-seq.
func (tb *tab) waitMessage(from, text string) string {
	tb.t.Helper()
	return pollFor[string](tb, fmt.Sprintf("#messages .message[data-seq] from %s with .text %q", from, text),
		`(() => { for (const m of document.querySelectorAll('#messages .message[data-seq]')) {
			if (m.querySelector('.text')?.textContent === `+js(text)+` && (m.querySelector('.from')?.textContent ?? '').includes(`+js(from)+`)) return m.dataset.seq;
		} return ''; })()`)
}

// seqs lists data-seq of the messages in #messages, in document order.
func (tb *tab) seqs() []int64 {
	tb.t.Helper()
	return eval[[]int64](tb, `[...document.querySelectorAll('#messages .message[data-seq]')].map(m => Number(m.dataset.seq))`)
}
