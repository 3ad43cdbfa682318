package e2e

import (
	"strings"
	"testing"
)

// TestWebCallRelayed: with [rtc] relay_only the browsers are told to use
// the server's TURN relay only; the call still connects, media flows both
// ways, and both ends of the selected ICE pair are relay candidates.
func TestWebCallRelayed(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	srv := startWebServer(t, "MESH_RTC_RELAY_ONLY=true")
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

	alice.click(`#members li[data-username="bob"] .call-btn`)
	bob.waitSel(`#call-panel[data-state="incoming"]`)
	bob.click("#call-accept")
	for _, tb := range []*tab{alice, bob} {
		checkRelayConfig(tb)
	}
	for _, tb := range []*tab{alice, bob} {
		tb.waitFor("window.meshCall.pc.connectionState connected", `window.meshCall?.pc?.connectionState === 'connected'`)
		tb.waitSel(`#call-panel[data-state="connected"]`)
	}
	for _, tb := range []*tab{alice, bob} {
		checkRelayPair(tb)
		checkInboundMedia(tb)
		tb.waitSel(`#call-path[data-path="relayed"]`)
		if p := eval[string](tb, `window.meshCall.path`); p != "relayed" {
			tb.fail("window.meshCall.path = %q, want relayed", p)
		}
	}

	alice.click("#call-hangup")
	for _, tb := range []*tab{alice, bob} {
		waitCallOver(tb, "#call-hangup")
	}
}

// checkRelayConfig: tb's peer connection was made with iceTransportPolicy
// "relay" and a turn: server.
func checkRelayConfig(tb *tab) {
	tb.t.Helper()
	tb.waitFor("window.meshCall.pc", `window.meshCall?.pc`)
	cfg := eval[struct {
		Policy string   `json:"policy"`
		URLs   []string `json:"urls"`
	}](tb, `(c => ({policy: c.iceTransportPolicy, urls: (c.iceServers || []).flatMap(s => [].concat(s.urls || s.url || []))}))(window.meshCall.pc.getConfiguration())`)
	tb.t.Logf("%s: iceTransportPolicy %q, ICE servers %v", tb.user, cfg.Policy, cfg.URLs)
	if cfg.Policy != "relay" {
		tb.fail("pc.getConfiguration().iceTransportPolicy = %q, want relay", cfg.Policy)
	}
	turn := false
	for _, u := range cfg.URLs {
		turn = turn || strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:")
	}
	if !turn {
		tb.fail("pc.getConfiguration().iceServers has no turn: URL: %v", cfg.URLs)
	}
}

// candidatePair is what the test reads of a selected ICE candidate pair.
type candidatePair struct {
	Local, Remote             string // candidateType: host, srflx, prflx, relay
	LocalAddr, RemoteAddr     string
	LocalURL, RelayProtocol   string // the TURN server the local relay candidate came from, and how
	BytesSent, BytesReceived  float64
	SelectedBy, PairState, ID string
}

// selectedPairJS finds window.meshCall.pc's selected candidate pair in
// getStats, the way the app does: the transport's selectedCandidatePairId,
// else a nominated succeeded pair. It is false while there is none; with
// wantRelay, also while either end is not a relay candidate (a remote
// candidate seen before its signalling arrives is prflx for a while).
func selectedPairJS(wantRelay bool) string {
	answer := `p`
	if wantRelay {
		answer = `p.Local === 'relay' && p.Remote === 'relay' ? p : false`
	}
	return `(async () => { const pc = window.meshCall?.pc; if (!pc || pc.connectionState !== 'connected') return false;
		const stats = await pc.getStats(); let pair = null, by = '';
		stats.forEach(r => { if (r.type === 'transport' && r.selectedCandidatePairId && stats.has(r.selectedCandidatePairId)) { pair = stats.get(r.selectedCandidatePairId); by = 'transport'; } });
		if (!pair) stats.forEach(r => { if (!pair && r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') { pair = r; by = 'nominated'; } });
		if (!pair) return false;
		const l = stats.get(pair.localCandidateId), r = stats.get(pair.remoteCandidateId);
		if (!l || !r) return false;
		const p = {Local: l.candidateType, Remote: r.candidateType,
			LocalAddr: l.address + ':' + l.port + '/' + l.protocol, RemoteAddr: r.address + ':' + r.port + '/' + r.protocol,
			LocalURL: l.url || '', RelayProtocol: l.relayProtocol || '',
			BytesSent: pair.bytesSent || 0, BytesReceived: pair.bytesReceived || 0,
			SelectedBy: by, PairState: pair.state, ID: pair.id};
		return ` + answer + `; })()`
}

// checkRelayPair: on tb, both the local and the remote candidate of the
// selected pair are relay candidates.
func checkRelayPair(tb *tab) {
	tb.t.Helper()
	first := pollFor[candidatePair](tb, "a selected candidate pair in window.meshCall.pc.getStats()", selectedPairJS(false))
	tb.t.Logf("%s: selected pair (%s, %s) local %s %s, remote %s %s, TURN %q over %q",
		tb.user, first.SelectedBy, first.PairState, first.Local, first.LocalAddr, first.Remote, first.RemoteAddr, first.LocalURL, first.RelayProtocol)
	if first.Local == "relay" && first.Remote == "relay" {
		return
	}
	p := pollFor[candidatePair](tb, "selected candidate pair with local and remote candidateType relay", selectedPairJS(true))
	tb.t.Logf("%s: then selected pair local %s %s, remote %s %s", tb.user, p.Local, p.LocalAddr, p.Remote, p.RemoteAddr)
}

// checkInboundMedia: tb receives video bytes and audio packets.
func checkInboundMedia(tb *tab) {
	tb.t.Helper()
	stats := pollFor[struct{ Video, Audio float64 }](tb, "inbound-rtp video bytesReceived > 0 and audio packetsReceived > 0 on window.meshCall.pc",
		`(async () => { const pc = window.meshCall?.pc; if (!pc) return false;
			let video = 0, audio = 0;
			(await pc.getStats()).forEach(r => { if (r.type !== 'inbound-rtp') return;
				if (r.kind === 'video') video = r.bytesReceived; if (r.kind === 'audio') audio = r.packetsReceived; });
			return video > 0 && audio > 0 ? {video, audio} : false; })()`)
	tb.t.Logf("%s received %.0f video bytes, %.0f audio packets", tb.user, stats.Video, stats.Audio)
}
