package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

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
