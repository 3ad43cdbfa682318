package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"mesh/protocol"
)

// pinTarget makes sure sess, a session given by hand to the low-level
// send-file, pins the target's certificate. A --fingerprint must be well
// formed; without one the pin comes from the server, asked with this
// device's own token, which it answers only for a session of this device's
// user. Dialing without a pin is never an option: only where it comes from
// changes.
func pinTarget(ctx context.Context, cfg Config, sess *protocol.P2PSession) error {
	t := &sess.Endpoints.Target
	switch {
	case t.Fingerprint != "" && !protocol.ValidFingerprint(t.Fingerprint):
		return errors.New("--fingerprint: want the target's \"sha256:…\" from the session answer (endpoints.target.fingerprint), or leave it out to ask the server")
	case t.Fingerprint != "":
		return nil
	case sess.SessionID == "":
		return errors.New("--session-id: want the session_id from the session answer")
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("without --fingerprint the target's pin comes from the server: %w", err)
	}
	var got protocol.P2PSession
	path := "/api/p2p/sessions/" + url.PathEscape(sess.SessionID)
	if err := newClient(cfg.Server, cfg.DeviceToken).call(ctx, http.MethodGet, path, nil, &got); err != nil {
		return &notConnectedError{fmt.Errorf("ask the server for the target's certificate in session %s (or pass --fingerprint): %w", sess.SessionID, err)}
	}
	switch {
	case got.Kind != protocol.SessionFile:
		return fmt.Errorf("session %s is a %q session; send-file needs a \"file\" session", sess.SessionID, got.Kind)
	case !protocol.ValidFingerprint(got.Endpoints.Target.Fingerprint):
		return fmt.Errorf("the server has no certificate for %s, the target of session %s; restart 'mesh agent run' there", got.TargetDeviceID, sess.SessionID)
	}
	t.Fingerprint, sess.TargetDeviceID = got.Endpoints.Target.Fingerprint, got.TargetDeviceID
	return nil
}
