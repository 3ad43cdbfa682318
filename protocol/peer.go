package protocol

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Limits and defaults for the peer-to-peer, call and terminal payloads.
const (
	MinSessionTTL     = 60   // seconds; the shortest p2p session a client may ask for
	MaxSessionTTL     = 180  // seconds; the longest
	DefaultSessionTTL = 120  // seconds; what ttl 0 (absent) means
	MaxCallID         = 64   // bytes of a call_id
	MaxShareID        = 64   // bytes of a terminal share_id
	MaxTerminalSize   = 1000 // columns or rows of a shared terminal
)

// Session kinds, the values of kind in [P2PSessionRequest] and [P2PSession].
const (
	SessionFile     = "file"     // send files to the target device
	SessionTerminal = "terminal" // watch the target device's shared terminal
)

// P2PSessionRequest is the payload of p2p.session.request and the body of
// POST /api/p2p/sessions: a token for InitiatorDeviceID (default: the
// caller's device) to reach TargetDeviceID directly over QUIC. A terminal
// session names the share instead (ShareID); the server knows its device.
type P2PSessionRequest struct {
	Kind              string `json:"kind"`
	TargetDeviceID    string `json:"target_device_id,omitempty"`
	InitiatorDeviceID string `json:"initiator_device_id,omitempty"`
	ShareID           string `json:"share_id,omitempty"` // terminal sessions only
	TTL               int    `json:"ttl,omitempty"`      // seconds; 0 means DefaultSessionTTL
	// Candidates are where the initiator's QUIC socket may be reached, for
	// the target to punch towards; the server adds the address it sees.
	Candidates []Candidate `json:"candidates,omitempty"`
}

// Validate checks kind is [SessionFile] (with target_device_id) or
// [SessionTerminal] (with share_id) and ttl is 0 or
// [MinSessionTTL]–[MaxSessionTTL]. Its errors wrap [ErrMalformed] and read
// in the words of the request, since they are also the HTTP API's answer:
// "ttl 30 is out of range: want 60 to 180 seconds (default 120)".
func (r P2PSessionRequest) Validate() error {
	switch {
	case r.Kind == "":
		return refuse(`kind is required: "file" or "terminal"`)
	case r.Kind != SessionFile && r.Kind != SessionTerminal:
		return refuse(`kind %.40q is not a session kind: want "file" or "terminal"`, r.Kind)
	case r.Kind == SessionTerminal && r.ShareID == "":
		return refuse("share_id is required for a terminal session: name the share to join")
	case r.Kind == SessionTerminal && len(r.ShareID) > MaxShareID:
		return refuse("share_id is %d bytes: the limit is %d", len(r.ShareID), MaxShareID)
	case r.Kind == SessionTerminal && !shareIDChars(r.ShareID):
		return refuse("share_id %q may hold only letters, digits, '-' and '_'", r.ShareID)
	case r.Kind == SessionFile && r.TargetDeviceID == "":
		return refuse("target_device_id is required for a file session: name the device to send to")
	case r.Kind == SessionFile && r.ShareID != "":
		return refuse("share_id is only for terminal sessions: leave it out of a file session")
	case r.TTL != 0 && (r.TTL < MinSessionTTL || r.TTL > MaxSessionTTL):
		return refuse("ttl %d is out of range: want %d to %d seconds (default %d)",
			r.TTL, MinSessionTTL, MaxSessionTTL, DefaultSessionTTL)
	}
	return ValidateCandidates(r.Candidates)
}

// requestError is a request that breaks a rule, said in the request's own
// words: no "malformed frame" prefix, which would name the wrong thing in an
// HTTP answer. It wraps [ErrMalformed] like every payload error.
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }
func (e *requestError) Unwrap() error { return ErrMalformed }

func refuse(format string, args ...any) error {
	return &requestError{fmt.Sprintf(format, args...)}
}

// Endpoint is where a device's QUIC listener is and the fingerprint its
// certificate must have.
type Endpoint struct {
	IP          string `json:"ip"`
	Port        int    `json:"port"`
	Fingerprint string `json:"fingerprint"`
	// Candidates are the addresses the agent may be reached at, best
	// first: its interfaces' (host) and its NAT's mapping as mesh's STUN
	// saw it (srflx), all on the one UDP socket its QUIC uses.
	Candidates []Candidate `json:"candidates,omitempty"`
}

// Candidate types, named as ICE names them. The server's relay over the
// agents' WebSockets needs no address and is always there, so no
// candidate names it.
const (
	CandidateHost  = "host"  // an address of one of the agent's interfaces
	CandidateSrflx = "srflx" // the agent's address as the server's STUN saw it
)

// MaxCandidates bounds the candidates one side may list.
const MaxCandidates = 16

// Candidate is one address an agent's QUIC socket may be reached at.
type Candidate struct {
	Type string `json:"type"`
	Addr string `json:"addr"` // IP:PORT
}

// ValidateCandidates checks a list of candidates from the network. Its
// errors wrap [ErrMalformed].
func ValidateCandidates(cs []Candidate) error {
	if len(cs) > MaxCandidates {
		return refuse("%d candidates: the limit is %d", len(cs), MaxCandidates)
	}
	for _, c := range cs {
		if c.Type != CandidateHost && c.Type != CandidateSrflx {
			return refuse("candidate type %.20q: want %q or %q", c.Type, CandidateHost, CandidateSrflx)
		}
		ap, err := netip.ParseAddrPort(c.Addr)
		if err != nil || ap.Port() == 0 || !ap.Addr().IsValid() || ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() {
			return refuse("candidate address %.60q: want IP:PORT of a unicast address", c.Addr)
		}
	}
	return nil
}

// ICEServer is one STUN or TURN server in the shape of RTCPeerConnection's
// iceServers: GET /api/rtc/config lists them for calls, a [P2PSession]
// for the agent it reaches. A TURN Username is "EXPIRY:USER" (the TURN
// REST convention) and its Credential stops admitting new allocations
// after EXPIRY.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Endpoints holds both ends of a [P2PSession].
type Endpoints struct {
	Initiator Endpoint `json:"initiator"`
	Target    Endpoint `json:"target"`
}

// P2PSession is the payload of p2p.session.created, sent to both devices, and
// the answer to POST /api/p2p/sessions. SessionToken is a secret: it works
// once, for this pair of devices and this kind, until ExpiresAt.
type P2PSession struct {
	SessionID         string    `json:"session_id"`
	SessionToken      string    `json:"session_token"`
	ExpiresAt         time.Time `json:"expires_at"`
	Kind              string    `json:"kind"`
	InitiatorDeviceID string    `json:"initiator_device_id"`
	TargetDeviceID    string    `json:"target_device_id"`
	ShareID           string    `json:"share_id,omitempty"` // terminal sessions: the share to join
	Endpoints         Endpoints `json:"endpoints"`
	// Initiators is set only when InitiatorDeviceID is empty (a session
	// asked for without initiator_device_id): the requester's enrolled
	// devices, any one of which may use the session once with its own
	// certificate; the first to do so binds it. Endpoints.Initiator is
	// then empty.
	Initiators []DeviceCert `json:"initiators,omitempty"`
	// ICEServers are the server's STUN and TURN servers, with TURN
	// credentials of the user whose device gets this copy: each side
	// relays, when it must, as itself.
	ICEServers []ICEServer `json:"ice_servers,omitempty"`
}

// DeviceCert names an enrolled device and its certificate fingerprint.
type DeviceCert struct {
	DeviceID    string `json:"device_id"`
	Fingerprint string `json:"fingerprint"`
}

// Media kinds of a call, the values of [Call].Media.
const (
	MediaAudio = "audio"
	MediaVideo = "video"
)

// Call is the payload of every call.* event, relayed by the server from one
// user's sessions to the other's. Which fields matter depends on the type:
// Media on call.invite, SDP on call.offer and call.answer, Candidate (the
// browser's RTCIceCandidateInit, passed through untouched) on call.ice,
// Reason on call.reject and call.hangup.
type Call struct {
	CallID    string          `json:"call_id"`
	ToUser    string          `json:"to_user"`
	Media     string          `json:"media,omitempty"`
	SDP       string          `json:"sdp,omitempty"`
	Candidate json.RawMessage `json:"candidate,omitempty"`
	Reason    string          `json:"reason,omitempty"`
}

// Validate checks call_id is 1–[MaxCallID] bytes, to_user is set and media,
// if present, is [MediaAudio] or [MediaVideo]. Its errors wrap [ErrMalformed].
func (c Call) Validate() error {
	switch {
	case c.CallID == "" || len(c.CallID) > MaxCallID:
		return invalid("call_id", "must be 1-%d bytes, got %d", MaxCallID, len(c.CallID))
	case c.ToUser == "":
		return invalid("to_user", "is required")
	case c.Media != "" && c.Media != MediaAudio && c.Media != MediaVideo:
		return invalid("media", `must be "audio" or "video", got %q`, c.Media)
	}
	return nil
}

// TerminalOpen is the payload of terminal.open: the sharing agent announces
// share ShareID of Command at Cols×Rows. The server lets the sharer's own
// user and the users in Allow watch it; AllowInput lets them type.
type TerminalOpen struct {
	ShareID    string   `json:"share_id"`
	Command    string   `json:"command,omitempty"`
	Cols       int      `json:"cols"`
	Rows       int      `json:"rows"`
	AllowInput bool     `json:"allow_input,omitempty"`
	Allow      []string `json:"allow,omitempty"`
	// NoWeb refuses browser watchers: the share is for shell joiners only,
	// who reach the sharer directly, and the server never sees its output.
	NoWeb bool `json:"no_web,omitempty"`
}

// Validate checks share_id and the size. Its errors wrap [ErrMalformed].
func (t TerminalOpen) Validate() error {
	if err := shareID(t.ShareID); err != nil {
		return err
	}
	return size(t.Cols, t.Rows)
}

// TerminalResize is the payload of terminal.resize: the shared terminal is
// now Cols×Rows.
type TerminalResize struct {
	ShareID string `json:"share_id"`
	Cols    int    `json:"cols"`
	Rows    int    `json:"rows"`
}

// Validate checks share_id and the size. Its errors wrap [ErrMalformed].
func (t TerminalResize) Validate() error {
	if err := shareID(t.ShareID); err != nil {
		return err
	}
	return size(t.Cols, t.Rows)
}

// TerminalExit is the payload of terminal.exit: the shared program ended
// with Code (or the sharer stopped, with Reason); the share is over.
type TerminalExit struct {
	ShareID string `json:"share_id"`
	Code    int    `json:"code"`
	Reason  string `json:"reason,omitempty"`
}

// Validate checks share_id. Its errors wrap [ErrMalformed].
func (t TerminalExit) Validate() error { return shareID(t.ShareID) }

// TerminalRef is the payload of terminal.watch and terminal.unwatch.
type TerminalRef struct {
	ShareID string `json:"share_id"`
}

// Validate checks share_id. Its errors wrap [ErrMalformed].
func (t TerminalRef) Validate() error { return shareID(t.ShareID) }

// TerminalViewers is the payload of terminal.viewers: who watches ShareID now.
type TerminalViewers struct {
	ShareID string   `json:"share_id"`
	Viewers []string `json:"viewers"`
}

// Validate checks share_id. Its errors wrap [ErrMalformed].
func (t TerminalViewers) Validate() error { return shareID(t.ShareID) }

// Limits of a [TransferStart].
const (
	MaxStartPaths = 64
	MaxPathLen    = 4096
)

// TransferStart is the payload of transfer.start: the web app asks the
// agent on FromDevice (one of the user's devices, running `mesh agent run`)
// to send Paths, absolute paths on that machine, to ToDevice. The agent
// sends only from its [agent] send_dirs, and reports the outcome as a
// transfer.report like any transfer.
type TransferStart struct {
	FromDevice string   `json:"from_device"`
	ToDevice   string   `json:"to_device"`
	Paths      []string `json:"paths"`
	RefID      string   `json:"ref_id,omitempty"` // in the server's acceptance: the request's id
}

// Validate checks both devices are named and differ in more than case,
// and there are 1 to [MaxStartPaths] absolute paths. Its errors wrap
// [ErrMalformed].
func (t TransferStart) Validate() error {
	switch {
	case t.FromDevice == "" || t.ToDevice == "":
		return invalid("from_device", "and to_device are required")
	case strings.EqualFold(t.FromDevice, t.ToDevice): // device ids ignore case
		return invalid("to_device", "must differ from from_device")
	case len(t.Paths) == 0 || len(t.Paths) > MaxStartPaths:
		return invalid("paths", "must list 1-%d paths, got %d", MaxStartPaths, len(t.Paths))
	}
	for _, p := range t.Paths {
		if !strings.HasPrefix(p, "/") || len(p) > MaxPathLen || strings.ContainsRune(p, 0) {
			return invalid("paths", "must be absolute paths on the sending machine, got %q", p)
		}
	}
	return nil
}

// DeviceRevoked is the payload of device.revoked, sent to the owner's
// sessions (the revoked agent's included, just before it is disconnected).
type DeviceRevoked struct {
	DeviceID string `json:"device_id"`
}

// shareID checks a share id: it goes into URLs and command lines, so it is
// letters, digits, '-' and '_' only.
func shareID(id string) error {
	if id == "" || len(id) > MaxShareID {
		return invalid("share_id", "must be 1-%d bytes, got %d", MaxShareID, len(id))
	}
	if !shareIDChars(id) {
		return invalid("share_id", "may hold only letters, digits, '-' and '_', got %q", id)
	}
	return nil
}

// shareIDChars reports whether id holds only letters, digits, '-' and '_'.
func shareIDChars(id string) bool {
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func size(cols, rows int) error {
	if cols < 1 || cols > MaxTerminalSize || rows < 1 || rows > MaxTerminalSize {
		return invalid("cols", "and rows must be 1-%d, got %dx%d", MaxTerminalSize, cols, rows)
	}
	return nil
}
