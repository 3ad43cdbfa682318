package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSeedP2PFlow is the seed's peer-to-peer flow as written: a user's
// token asks for a session without naming an initiator device, then the
// low-level send-file, without --fingerprint, sends from one of the user's
// enrolled devices. Another user's device can neither learn the pin nor use
// the session, and the user's second device finds the token used.
func TestSeedP2PFlow(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{env: []string{"MESH_AUTH_BCRYPT_COST=4", "MESH_AUTH_REGISTRATION=open"}})
	t.Cleanup(func() { srv.stop(t) })
	tok := apiToken(t, srv.url, "alice")
	apiToken(t, srv.url, "bob")
	devA, tablet, devB, bobs := newMachine(t, "device-a"), newMachine(t, "tablet"), newMachine(t, "device-b"), newMachine(t, "bobs-pc")
	for _, m := range []machine{devA, tablet, devB} {
		m.login(t, srv.url, "alice")
	}
	bobs.login(t, srv.url, "bob")
	devB.run(t, srv.url, tok)

	var sess sessionAnswer
	postJSON(t, srv.url+"/api/p2p/sessions", tok, `{"kind":"file","target_device_id":"device-b","ttl":120}`, &sess)
	f := filepath.Join(t.TempDir(), "seed.bin")
	writeRandom(t, f, 1<<20+3)
	seed := []string{"--session-id", sess.SessionID, "--peer-addr", fmt.Sprintf("%s:%d", sess.Endpoints.Target.IP, sess.Endpoints.Target.Port),
		"--token", sess.SessionToken, "--file", f}

	if out, err := bobs.send(t, seed...); err == nil || !strings.Contains(out, "no p2p session") {
		t.Fatalf("bob's device asked for the pin of alice's session: %v\n%s\nwant a refusal saying there is no such session", err, out)
	}
	withPin := append(append([]string(nil), seed...), "--fingerprint", sess.Endpoints.Target.Fingerprint)
	if out, err := bobs.send(t, withPin...); err == nil || !strings.Contains(out, "refused this device's certificate") {
		t.Fatalf("bob's device used alice's session: %v\n%s\nwant the target to refuse its certificate", err, out)
	}

	out, err := devA.send(t, seed...)
	if err != nil {
		t.Fatalf("seed send-file from device-a: %v\n%s", err, out)
	}
	want := fileHash(t, f)
	if got := fileHash(t, filepath.Join(devB.inbox(), "seed.bin")); got != want || !strings.Contains(out, "blake3:"+want) {
		t.Fatalf("received seed.bin hash %s, want %s; send-file said:\n%s", got, want, out)
	}

	if out, err := tablet.send(t, seed...); err == nil || !strings.Contains(out, "token already used") {
		t.Fatalf("alice's second device reused the token: %v\n%s\nwant \"token already used\"", err, out)
	}

	// The receiver reports the device that bound the session as the sender
	// (refused senders may report their failures beside it).
	var l struct {
		Transfers []struct {
			SessionID  string `json:"session_id"`
			FromDevice string `json:"from_device"`
			Outcome    string `json:"outcome"`
		}
	}
	var ok []string // senders of the seed session's successful transfers
	eventually(t, 10*time.Second, func() bool {
		l.Transfers, ok = nil, nil
		getJSON(t, srv.url+"/api/transfers", tok, &l)
		for _, tr := range l.Transfers {
			if tr.SessionID == sess.SessionID && tr.Outcome == "ok" {
				ok = append(ok, tr.FromDevice)
			}
		}
		return len(ok) > 0
	}, "transfers reported: %+v, want the seed session's", &l)
	if len(ok) != 1 || ok[0] != "device-a" {
		t.Fatalf("transfers reported: %+v, want one ok from device-a", l)
	}
}
