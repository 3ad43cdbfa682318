package e2e

import (
	"strings"
	"testing"
)

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
		tb.waitSel(`#call-path[data-path="direct"]`) // loopback needs no relay
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
