package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestWebChat: two users register in the browser, chat both ways in their
// direct room, see each other's presence and typing, and a message that
// looks like HTML stays text.
func TestWebChat(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	srv := startWebServer(t)
	alice := newUserTab(t, b, srv.url, "alice")
	bob := newUserTab(t, b, srv.url, "bob")
	alice.register("alice", "secret1")
	bob.register("bob", "secret1")

	// Bob sits in a room of his own, so alice's direct room arrives unread.
	bob.typeInto("#new-room-name", "lobby")
	bob.click("#create-room-btn")
	lobby := pollFor[string](bob, `#room-list li[aria-current="true"] .room-name "lobby" after #create-room-btn`,
		`(li => li?.querySelector('.room-name')?.textContent.includes('lobby') ? li.dataset.roomId : '')(document.querySelector('#room-list li[data-room-id][aria-current="true"]'))`)
	bob.waitFor("location.hash #/chat/"+lobby, "location.hash === "+js("#/chat/"+lobby))

	room := alice.openDirect("bob")
	alice.send("hi bob", false)
	alice.waitMessage("alice", "hi bob")
	li := `#room-list li[data-room-id="` + room + `"]`
	bob.waitFor(li+` .room-name "alice" with .unread "1"`,
		`(li => li && li.querySelector('.room-name')?.textContent.includes('alice') && li.querySelector('.unread')?.textContent.trim() === '1')(document.querySelector(`+js(li)+`))`)
	bob.click(li + " .room-name")
	bob.waitSel(li + `[aria-current="true"]`)
	bob.waitMessage("alice", "hi bob")
	bob.waitFor(li+" .unread empty or hidden once read",
		`(u => !u || u.textContent.trim() === '' || u.getClientRects().length === 0)(document.querySelector(`+js(li+" .unread")+`))`)

	// Typing shows on the other side; Enter sends.
	bob.typeInto("#composer", "hi alice")
	alice.waitFor(`#typing "bob is typing…"`, `document.querySelector('#typing')?.textContent.includes('bob is typing')`)
	bob.pressEnter()
	bob.waitFor("#composer to empty after Enter", "document.querySelector('#composer')?.value === ''")
	alice.waitMessage("bob", "hi alice")
	bob.waitMessage("bob", "hi alice")
	for _, tb := range []*tab{alice, bob} {
		if s := tb.seqs(); len(s) != 2 || s[0] >= s[1] {
			tb.fail("#messages .message[data-seq] = %v, want the two messages in seq order", s)
		}
	}

	checkMembers(alice, bob)
	checkMembers(bob, alice)
	checkRichText(alice, bob)
	alice.screenshot("chat.png")
	checkMarkupIsText(alice, bob)

	// Alice joins bob's public room from #public-rooms.
	alice.click(`#public-rooms li[data-room-id="` + lobby + `"] .join-btn`)
	alice.waitSel(`#room-list li[data-room-id="` + lobby + `"]`)

	// Bob closes his window: alice sees him go offline.
	bob.close()
	alice.click(li + " .room-name")
	alice.waitSel(`#members li[data-username="bob"] .presence.offline`)
}

// checkMembers: me sees other online in #members, with a .call-btn that
// me's own entry lacks.
func checkMembers(me, other *tab) {
	me.t.Helper()
	me.waitSel(`#members li[data-username="` + other.user + `"] .presence.online`)
	me.waitSel(`#members li[data-username="` + other.user + `"] .call-btn`)
	me.waitSel(`#members li[data-username="` + me.user + `"]`)
	if eval[bool](me, `!!document.querySelector('#members li[data-username="`+me.user+`"] .call-btn')`) {
		me.fail("#members li[data-username=%s] has a .call-btn: one cannot call oneself", me.user)
	}
}

// checkRichText: the app makes links and @mentions with DOM calls.
func checkRichText(alice, bob *tab) {
	alice.t.Helper()
	link := "docs at https://example.com/a?b=1 ok"
	alice.send(link, true)
	seq := bob.waitMessage("alice", link)
	if href := eval[string](bob, `document.querySelector('#messages .message[data-seq="`+seq+`"] .text a')?.href ?? ''`); href != "https://example.com/a?b=1" {
		bob.fail(".message[data-seq=%s] .text a href = %q, want https://example.com/a?b=1", seq, href)
	}
	alice.send("@bob look", true)
	seq = bob.waitMessage("alice", "@bob look")
	if !eval[bool](bob, `(m => m.classList.contains('mention') || !!m.querySelector('.mention'))(document.querySelector('#messages .message[data-seq="`+seq+`"]'))`) {
		bob.fail(".message[data-seq=%s] mentions @bob but has no class mention on it or inside", seq)
	}
	if tm := bob.text(`#messages .message[data-seq="` + seq + `"] .time`); tm == "" {
		bob.fail(".message[data-seq=%s] .time is empty", seq)
	}
}

// checkMarkupIsText: a message that looks like HTML renders as its text
// and runs nothing, on either side.
func checkMarkupIsText(alice, bob *tab) {
	alice.t.Helper()
	for _, raw := range []string{`<script>window.pwned=1</script>`, `<img src=x onerror="window.pwned=2">`} {
		alice.send(raw, true)
		seq := bob.waitMessage("alice", raw)
		got := eval[struct {
			Text     string
			Elements int
		}](bob, `(t => ({text: t.textContent, elements: t.querySelectorAll('*').length}))(document.querySelector('#messages .message[data-seq="`+seq+`"] .text'))`)
		if got.Text != raw || got.Elements != 0 {
			bob.fail(".message[data-seq=%s] .text = %q with %d elements, want the raw text %q and no elements", seq, got.Text, got.Elements, raw)
		}
	}
	for _, tb := range []*tab{alice, bob} {
		if v := eval[string](tb, "typeof window.pwned"); v != "undefined" {
			tb.fail("typeof window.pwned = %q after markup in messages: the page ran it", v)
		}
	}
}

// TestWebHistory: a room with more history than a page; scrolling up and
// #load-older bring it all back, in order, down to seq 1. Also the login
// view's errors, and the reconnect after the server restarts.
func TestWebHistory(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	srv := startWebServer(t, "MESH_SERVER_WS_RATE=100000", "MESH_SERVER_WS_BURST=100000")
	tok := apiToken(t, srv.url, "alice")
	room := apiRoom(t, srv.url, tok, "history")
	const n = 450 // more than two of the largest pages (200): one for the scroll, one for the button
	seedMessages(t, srv.url, tok, room, n)

	alice := newUserTab(t, b, srv.url, "alice")
	alice.waitVisible("#auth-form")
	alice.typeInto("#username", "alice")
	alice.typeInto("#password", "not-the-password")
	if e := alice.text("#auth-error"); e != "" {
		alice.fail("#auth-error = %q before any attempt, want it empty", e)
	}
	alice.click("#login-btn")
	alice.waitFor("#auth-error to say why after a wrong password", "document.querySelector('#auth-error')?.textContent.trim()")
	alice.login("alice", "secret1")
	alice.click(fmt.Sprintf(`#room-list li[data-room-id="%d"] .room-name`, room))
	alice.waitFor(fmt.Sprintf("location.hash #/chat/%d", room), fmt.Sprintf("location.hash === '#/chat/%d'", room))
	loadAllHistory(alice, n)

	// The server goes away: #conn-status says so; it comes back: the app
	// reconnects by itself and works.
	srv.stopAndLog(t)
	alice.waitSel(`#conn-status[data-state="offline"]`)
	srv.restart(t)
	alice.waitSel(`#conn-status[data-state="online"]`)
	alice.send("back again", true)
	if seq := alice.waitMessage("alice", "back again"); seq != strconv.Itoa(n+1) {
		alice.fail("the message after the reconnect has data-seq %s, want %d", seq, n+1)
	}

	// A token the server refuses leads back to the login view, with a
	// message. (Set it while logged out, so no request of the running
	// session meets it before the reload.)
	alice.click("#logout-btn")
	alice.waitVisible("#auth-form")
	eval[chromedp.Void](alice, `sessionStorage.setItem('mesh.token', 'refused')`)
	alice.do("reload", chromedp.Reload())
	alice.waitVisible("#auth-form")
	alice.waitFor("#auth-error to say why the refused token ended the session", "document.querySelector('#auth-error')?.textContent.trim()")
}

// loadAllHistory scrolls up once, then clicks #load-older until seq 1 is
// in #messages, and checks it holds 1..n once each, in order.
func loadAllHistory(tb *tab, n int) {
	tb.t.Helper()
	tb.waitSel(fmt.Sprintf(`#messages .message[data-seq="%d"]`, n))
	low := slices.Min(tb.seqs())
	if low == 1 {
		tb.fail("the first page already holds seq 1 of %d: there is no older history to load", n)
	}
	// older waits for a message older than low, doing first (JavaScript)
	// each time it looks.
	older := func(what, first string) {
		tb.t.Helper()
		low = int64(pollFor[float64](tb, fmt.Sprintf("messages older than seq %d after %s", low, what),
			`(() => { `+first+`; const s = Math.min(...[...document.querySelectorAll('#messages .message[data-seq]')].map(m => Number(m.dataset.seq)));
				return s < `+strconv.FormatInt(low, 10)+` ? s : 0; })()`))
	}
	// Scrolling #messages (or the box that scrolls it) to the top loads more.
	older("scrolling #messages to the top", `for (let e = document.querySelector('#messages'); e; e = e.parentElement) {
		const o = getComputedStyle(e).overflowY;
		if ((o === 'auto' || o === 'scroll') && e.scrollHeight > e.clientHeight) { e.scrollTop = 0; break; } }`)
	clicks := 0
	for ; low > 1; clicks++ {
		if clicks == 30 {
			tb.fail("after 30 clicks on #load-older the oldest message is seq %d, want 1", low)
		}
		tb.click("#load-older")
		older("#load-older", "")
	}
	if clicks == 0 {
		tb.fail("scrolling loaded all %d messages; #load-older was never needed", n)
	}
	got := tb.seqs()
	for i, s := range got {
		if s != int64(i+1) || len(got) != n {
			tb.fail("#messages holds seqs %v…, want 1..%d each once in order (position %d has %d)", got[:min(len(got), 10)], n, i, s)
		}
	}
	if txt := tb.text(`#messages .message[data-seq="1"] .text`); txt != "history 1" {
		tb.fail(`.message[data-seq=1] .text = %q, want "history 1"`, txt)
	}
}
