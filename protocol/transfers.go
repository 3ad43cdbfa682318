package protocol

import "unicode/utf8"

// Transfer outcomes, the values of [TransferReport].Outcome.
const (
	OutcomeOK       = "ok"       // the receiver confirmed the BLAKE3
	OutcomeMismatch = "mismatch" // the receiver's BLAKE3 differed
	OutcomeFailed   = "failed"   // the connection or a disk failed; Reason says how
	OutcomeCanceled = "canceled" // a side gave up
)

// Sides of a transfer, the values of [TransferReport].Side.
const (
	SideSender   = "sender"
	SideReceiver = "receiver"
)

// Paths of a transfer, the values of [TransferReport].Path: how the two
// agents reached each other.
const (
	PathDirect = "direct" // direct, on the same network
	PathNAT    = "nat"    // direct, through a NAT
	PathRelay  = "relay"  // through the server's relay
)

// MaxReason is the longest [TransferReport].Reason, in bytes.
const MaxReason = 1024

// TransferReport is the payload of transfer.report: an agent's account of
// one p2p session's transfer, for its user's history. Both sides may
// report the same session: the receiver always, the sender when the send
// failed (the receiver may never have heard of it, or be gone).
type TransferReport struct {
	SessionID  string `json:"session_id"`
	FromDevice string `json:"from_device"`
	ToDevice   string `json:"to_device"`
	Name       string `json:"name"`
	Size       int64  `json:"size"`             // bytes
	BLAKE3     string `json:"blake3,omitempty"` // 64 lowercase hex digits
	DurationMS int64  `json:"duration_ms"`
	Outcome    string `json:"outcome"`
	Direct     bool   `json:"direct"` // peer to peer, not relayed
	Reason     string `json:"reason,omitempty"`
	// Side is who reports: [SideSender] or [SideReceiver]; empty means the
	// receiver, as agents that predate the field only reported from there.
	Side string `json:"side,omitempty"`
	// Path is how the agents reached each other: [PathDirect], [PathNAT] or
	// [PathRelay]; empty when the side never connected, or predates the field.
	Path string `json:"path,omitempty"`
}

// Validate checks session_id is set, size and duration_ms are not negative,
// blake3 if present is 64 lowercase hex digits, outcome is one of the
// Outcome constants, side one of the Side constants or empty, path one of
// the Path constants or empty, and reason
// UTF-8 of at most [MaxReason] bytes. Its errors wrap [ErrMalformed].
func (r TransferReport) Validate() error {
	switch {
	case r.SessionID == "":
		return invalid("session_id", "is required")
	case r.Size < 0:
		return invalid("size", "must be 0 or more bytes, got %d", r.Size)
	case r.DurationMS < 0:
		return invalid("duration_ms", "must be 0 or more, got %d", r.DurationMS)
	case r.BLAKE3 != "" && !isLowerHex(r.BLAKE3, 64):
		return invalid("blake3", "must be 64 lowercase hex digits, got %q", r.BLAKE3)
	case r.Side != "" && r.Side != SideSender && r.Side != SideReceiver:
		return invalid("side", `must be "sender" or "receiver" (or left out for the receiver), got %.40q`, r.Side)
	case r.Path != "" && r.Path != PathDirect && r.Path != PathNAT && r.Path != PathRelay:
		return invalid("path", `must be "direct", "nat" or "relay" (or left out), got %.40q`, r.Path)
	case len(r.Reason) > MaxReason || !utf8.ValidString(r.Reason):
		return invalid("reason", "must be UTF-8 of at most %d bytes, got %d bytes", MaxReason, len(r.Reason))
	}
	switch r.Outcome {
	case OutcomeOK, OutcomeMismatch, OutcomeFailed, OutcomeCanceled:
		return nil
	}
	return invalid("outcome", `must be "ok", "mismatch", "failed" or "canceled", got %q`, r.Outcome)
}
