package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// TestWebCall: a 1:1 audio/video call connects between two browsers, media
// flows, and hanging up ends it on both sides; a rejected call ends too.
func TestWebCall(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	srv := startWebServer(t)
	apiToken(t, srv.url, "alice")
	apiToken(t, srv.url, "bob")
	alice := newUserTab(t, b, srv.url, "alice")
	bob := newUserTab(t, b, srv.url, "bob")
	alice.login("alice", "secret1")
	bob.login("bob", "secret1")
	if ra, rb := alice.openDirect("bob"), bob.openDirect("alice"); ra != rb {
		t.Fatalf("alice's direct room with bob is %s, bob's with alice %s", ra, rb)
	}
	alice.waitSel(`#members li[data-username="bob"] .presence.online`)
	alice.send("got a minute? calling you", false)
	bob.waitMessage("alice", "got a minute? calling you")

	alice.click(`#members li[data-username="bob"] .call-btn`)
	bob.waitSel(`#call-panel[data-state="incoming"]`)
	alice.waitSel(`#call-panel[data-state="outgoing"]`)
	if p := bob.text("#call-peer"); !strings.Contains(p, "alice") {
		bob.fail("#call-peer = %q, want alice", p)
	}
	bob.click("#call-accept")
	for _, tb := range []*tab{alice, bob} {
		tb.waitFor("window.meshCall.pc.connectionState connected", `window.meshCall?.pc?.connectionState === 'connected'`)
		tb.waitSel(`#call-panel[data-state="connected"]`)
		tb.waitFor("#call-duration mm:ss", `/^\d+:\d\d$/.test(document.querySelector('#call-duration')?.textContent.trim() ?? '')`)
	}
	checkCallMedia(alice, bob)
	bob.screenshot("call.png")
	for _, btn := range []string{"#call-mute", "#call-camera"} {
		alice.click(btn)
		alice.waitSel(btn + `[aria-pressed="true"]`)
		alice.click(btn)
		alice.waitSel(btn + `[aria-pressed="false"]`)
	}

	alice.click("#call-hangup")
	for _, tb := range []*tab{alice, bob} {
		waitCallOver(tb, "#call-hangup")
	}

	// A second call, rejected.
	alice.click(`#members li[data-username="bob"] .call-btn`)
	bob.waitSel(`#call-panel[data-state="incoming"]`)
	bob.click("#call-reject")
	for _, tb := range []*tab{alice, bob} {
		waitCallOver(tb, "#call-reject")
	}
}

// checkCallMedia: the callee receives audio and video, and both sides see
// the other's video play in #remote-video.
func checkCallMedia(caller, callee *tab) {
	callee.t.Helper()
	stats := pollFor[struct{ Video, Audio float64 }](callee, "inbound-rtp video bytesReceived > 0 and audio packetsReceived > 0 on window.meshCall.pc",
		`(async () => { const pc = window.meshCall?.pc; if (!pc) return false;
			let video = 0, audio = 0;
			(await pc.getStats()).forEach(r => { if (r.type !== 'inbound-rtp') return;
				if (r.kind === 'video') video = r.bytesReceived; if (r.kind === 'audio') audio = r.packetsReceived; });
			return video > 0 && audio > 0 ? {video, audio} : false; })()`)
	callee.t.Logf("callee received %.0f video bytes, %.0f audio packets", stats.Video, stats.Audio)
	for _, tb := range []*tab{callee, caller} {
		tb.waitFor("#remote-video playing: videoWidth > 0 and currentTime advancing",
			`(v => { if (!v || v.videoWidth === 0) return false;
				if (v.meshTestT0 === undefined) { v.meshTestT0 = v.currentTime; return false; }
				return v.currentTime > v.meshTestT0 + 0.2; })(document.querySelector('#remote-video'))`)
		if m := eval[[]bool](tb, `['#local-video', '#remote-video'].map(s => document.querySelector(s)?.muted)`); len(m) != 2 || !m[0] || m[1] {
			tb.fail("#local-video, #remote-video muted = %v, want true, false", m)
		}
	}
}

// waitCallOver waits for #call-panel ended or idle and no live peer connection.
func waitCallOver(tb *tab, after string) {
	tb.t.Helper()
	tb.waitFor(`#call-panel[data-state] ended or idle and window.meshCall.pc null or closed after `+after,
		`(() => { const s = document.querySelector('#call-panel')?.dataset.state, pc = window.meshCall?.pc;
			return (s === 'ended' || s === 'idle') && (!pc || pc.connectionState === 'closed'); })()`)
}

// TestWebDevices: #/devices lists the user's devices with their presence;
// revoking one (after confirm()) removes it, on the server too. Also the
// theme, the transfers view and logging out.
func TestWebDevices(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	srv := startWebServer(t)
	tok := apiToken(t, srv.url, "alice")
	var enrolled struct {
		DeviceID string `json:"device_id"`
	}
	postJSON(t, srv.url+"/api/devices", tok, `{"device_id":"old-laptop","fingerprint":"sha256:`+strings.Repeat("ab", 32)+`"}`, &enrolled)
	desk := newMachine(t, "desk")
	desk.login(t, srv.url, "alice")
	desk.run(t, srv.url, tok)

	alice := newUserTab(t, b, srv.url, "alice")
	alice.login("alice", "secret1")
	alice.click("#nav-devices")
	alice.waitFor("location.hash #/devices", "location.hash === '#/devices'")
	alice.waitSel(`#device-list li[data-device-id="desk"] .presence.online`)
	alice.waitSel(`#device-list li[data-device-id="old-laptop"] .presence.offline`)
	alice.waitSel(`#device-list li[data-device-id="old-laptop"] .last-seen`)
	alice.waitFor(`#enrol-help "mesh agent login --server `+srv.url+` --username alice"`,
		`(h => h.includes('mesh agent login') && h.includes('--server') && h.includes(`+js(srv.url)+`) && h.includes('--username') && h.includes('alice'))(document.querySelector('#enrol-help')?.textContent ?? '')`)

	eval[chromedp.Void](alice, `window.confirm = m => { window.meshTestConfirm = String(m); return true; }`)
	alice.click(`#device-list li[data-device-id="old-laptop"] .revoke-btn`)
	alice.waitGone(`#device-list li[data-device-id="old-laptop"] to go after .revoke-btn`, `#device-list li[data-device-id="old-laptop"]`)
	if asked := eval[string](alice, `window.meshTestConfirm ?? ''`); asked == "" {
		alice.fail(".revoke-btn revoked without asking confirm()")
	}
	alice.waitSel(`#device-list li[data-device-id="desk"]`)

	var l struct {
		Devices []struct {
			DeviceID string `json:"device_id"`
		} `json:"devices"`
	}
	getJSON(t, srv.url+"/api/devices", tok, &l)
	var ids []string
	for _, d := range l.Devices {
		ids = append(ids, d.DeviceID)
	}
	if slices.Contains(ids, "old-laptop") || !slices.Contains(ids, "desk") {
		t.Fatalf("GET /api/devices after the revoke lists %v, want desk and not old-laptop", ids)
	}

	checkShell(alice)
}

// checkShell: #theme-toggle, the transfers' empty state, and #logout-btn.
func checkShell(alice *tab) {
	alice.t.Helper()
	// #theme-toggle switches the colours, and back.
	const colours = `[document.documentElement, document.body, document.querySelector('#me')].map(e => e && (getComputedStyle(e).backgroundColor + ' ' + getComputedStyle(e).color)).join('; ')`
	dark := eval[string](alice, colours)
	alice.click("#theme-toggle")
	alice.waitFor("#theme-toggle to change the colours from "+dark, colours+" !== "+js(dark))
	alice.click("#theme-toggle")
	alice.waitFor("#theme-toggle to bring back the colours "+dark, colours+" === "+js(dark))

	alice.click("#nav-transfers")
	alice.waitFor("location.hash #/transfers", "location.hash === '#/transfers'")
	alice.waitVisible("#transfers-empty")
	alice.click("#logout-btn")
	alice.waitVisible("#auth-form")
	if tok := eval[*string](alice, `sessionStorage.getItem('mesh.token')`); tok != nil {
		alice.fail("sessionStorage mesh.token = %q after #logout-btn, want none", *tok)
	}
}

// TestWebTerminal: the browser watches a live share-terminal session.
func TestWebTerminal(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	srv := startWebServer(t)
	tok := apiToken(t, srv.url, "alice")
	laptop := newMachine(t, "laptop")
	laptop.login(t, srv.url, "alice")
	sh := laptop.start(t, "agent", "share-terminal", "--", "sh")
	id := sh.shareID(t)
	waitShared(t, srv.url, tok, id)

	alice := newUserTab(t, b, srv.url, "alice")
	alice.login("alice", "secret1")
	alice.click("#nav-terminals")
	alice.click(`#terminal-list li[data-share-id="` + id + `"] a[href="#/terminal/` + id + `"]`)
	alice.waitFor("location.hash #/terminal/"+id, "location.hash === "+js("#/terminal/"+id))
	alice.waitSel(`#terminal-view[data-share-id="` + id + `"]`)
	alice.waitFor(`#terminal-status "read-only"`, `document.querySelector('#terminal-status')?.textContent.includes('read-only')`)
	sh.waitOutput(t, "(browser)") // the browser watches: what follows is live, not the replay

	sh.typeIn(t, "echo web-$((40+2))\n")
	alice.waitFor("window.meshTerm.text() to show web-42", `window.meshTerm?.text().includes('web-42')`)

	sh.typeIn(t, "exit 3\n")
	if code := sh.exit(t); code != 3 {
		t.Fatalf("share-terminal exit code %d, want 3", code)
	}
	alice.waitFor(`#terminal-status "ended" with exit code 3`,
		`(s => s.includes('ended') && s.includes('3'))(document.querySelector('#terminal-status')?.textContent ?? '')`)

	// On an --allow-input share, what the browser types runs in the shell.
	sh = laptop.start(t, "agent", "share-terminal", "--allow-input", "--", "sh")
	id = sh.shareID(t)
	waitShared(t, srv.url, tok, id)
	alice.route("#/terminal/" + id)
	alice.waitSel(`#terminal-view[data-share-id="` + id + `"]`)
	alice.waitFor(`#terminal-status "you may type"`, `document.querySelector('#terminal-status')?.textContent.includes('you may type')`)
	sh.waitOutput(t, "(browser)")
	alice.click("#terminal-view")
	alice.keyboard("echo typed-$((6*7))\r")
	sh.waitOutput(t, "typed-42")
	alice.waitFor("window.meshTerm.text() to show typed-42", `window.meshTerm?.text().includes('typed-42')`)
	sh.typeIn(t, "exit\n")
	if code := sh.exit(t); code != 0 {
		t.Fatalf("share-terminal exit code %d, want 0", code)
	}
}

// waitShared waits until the server lists the share: share-terminal prints
// its id before it has told the server.
func waitShared(t *testing.T, base, tok, id string) {
	t.Helper()
	eventually(t, webWait, func() bool {
		var l struct {
			Terminals []struct {
				ShareID string `json:"share_id"`
			} `json:"terminals"`
		}
		getJSON(t, base+"/api/terminals", tok, &l)
		for _, s := range l.Terminals {
			if s.ShareID == id {
				return true
			}
		}
		return false
	}, "GET /api/terminals never listed share %s", id)
}

// TestWebTransferStart: from the transfers page, alice has her laptop send
// a file from its send_dirs to her home machine; the report appears.
func TestWebTransferStart(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	srv := startWebServer(t)
	tok := apiToken(t, srv.url, "alice")
	shared := t.TempDir()
	file := filepath.Join(shared, "notes.txt")
	if err := os.WriteFile(file, []byte("from the browser\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	laptop, home := newMachine(t, "laptop"), newMachine(t, "home")
	laptop.env = append(laptop.env, "MESH_AGENT_SEND_DIRS="+shared)
	for _, m := range []machine{laptop, home} {
		m.login(t, srv.url, "alice")
		m.run(t, srv.url, tok)
	}

	alice := newUserTab(t, b, srv.url, "alice")
	alice.login("alice", "secret1")
	alice.click("#nav-transfers")
	alice.waitSel(`#start-from option[value="laptop"]`)
	alice.waitSel(`#start-to option[value="home"]`)
	eval[chromedp.Void](alice, `document.querySelector('#start-from').value = 'laptop';
		document.querySelector('#start-to').value = 'home';
		document.querySelector('#start-paths').value = `+js(file))
	alice.click("#start-btn")
	alice.waitFor("#start-status to say laptop is sending", `document.querySelector('#start-status').textContent.includes('laptop is sending')`)
	alice.waitFor("the transfer in #transfer-list",
		`[...document.querySelectorAll('#transfer-list li')].some(li => li.querySelector('.name')?.textContent === 'notes.txt' && li.querySelector('.outcome')?.classList.contains('outcome-ok'))`)
	if b, err := os.ReadFile(filepath.Join(home.inbox(), "notes.txt")); err != nil || string(b) != "from the browser\n" {
		t.Fatalf("home's inbox: %q, %v", b, err)
	}
}
