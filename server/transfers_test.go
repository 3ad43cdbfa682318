package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"mesh/protocol"
)

// listedTransfer is one entry of GET /api/transfers as a client reads it.
type listedTransfer struct {
	SessionID string `json:"session_id"`
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason"`
	Sender    *side  `json:"sender"`
	Receiver  *side  `json:"receiver"`
}

type side struct {
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
}

func listTransfers(t *testing.T, ts *testServer, tok string) []listedTransfer {
	t.Helper()
	a := ts.do(t, "GET", "/api/transfers", nil, tok)
	var l struct{ Transfers []listedTransfer }
	if a.Status != 200 || json.Unmarshal(a.Body, &l) != nil {
		t.Fatalf("GET /api/transfers = %d %s", a.Status, a.Body)
	}
	return l.Transfers
}

// reported sends each report on c, then a hello: its welcome means the
// server has handled them all, in order.
func reported(c *wsClient, reports ...any) {
	for _, r := range reports {
		c.send(protocol.TypeTransferReport, r)
	}
	c.send(protocol.TypeSystemHello, protocol.Hello{})
	c.waitFor(protocol.TypeSystemWelcome)
}

// TestTransferReportsOfBothSides: a send the sender reports as failed is
// listed with its reason; when the receiver reports the same session too,
// the list shows one transfer with what each side said, and a receiver's
// confirmation beats a sender's late failure.
func TestTransferReportsOfBothSides(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok := ts.register(t, "alice", "secret1")
	btok := ts.register(t, "bob", "secret1")
	laptop := ts.agent(t, ts.enroll(t, atok, "laptop", fp('1')), 0, fp('1'))
	home := ts.agent(t, ts.enroll(t, atok, "home", fp('2')), 5000, fp('2'))
	rep := func(session, side, outcome, reason, name string, size int64) map[string]any {
		return map[string]any{"session_id": session, "from_device": "laptop", "to_device": "home", "name": name,
			"size": size, "duration_ms": 1200, "outcome": outcome, "direct": true, "reason": reason, "side": side}
	}
	const unreachable = "receiver unreachable: no answer from 203.0.113.5:5000"
	reported(laptop,
		rep("s-never", "sender", "failed", unreachable, "notes.txt", 0),
		rep("s-killed", "sender", "failed", "send to home: receiver stopped answering; rerun", "big.iso", 40<<20))
	reported(home,
		rep("s-killed", "receiver", "failed", "receive: read chunk: timeout", "big.iso", 38<<20),
		rep("s-late", "receiver", "ok", "", "photo.jpg", 5))
	reported(laptop, rep("s-late", "sender", "failed", "read summary: connection lost", "photo.jpg", 5))

	want := []listedTransfer{{
		SessionID: "s-late", Name: "photo.jpg", Size: 5, Outcome: "ok",
		Sender: &side{"failed", "read summary: connection lost"}, Receiver: &side{Outcome: "ok"},
	}, {
		SessionID: "s-killed", Name: "big.iso", Size: 38 << 20, Outcome: "failed", Reason: "receive: read chunk: timeout",
		Sender:   &side{"failed", "send to home: receiver stopped answering; rerun"},
		Receiver: &side{"failed", "receive: read chunk: timeout"},
	}, {
		SessionID: "s-never", Name: "notes.txt", Outcome: "failed", Reason: unreachable, Sender: &side{"failed", unreachable},
	}}
	if diff := cmp.Diff(want, listTransfers(t, ts, atok)); diff != "" {
		t.Errorf("alice's transfers (-want +got):\n%s", diff)
	}
	if got := listTransfers(t, ts, btok); len(got) != 0 {
		t.Errorf("bob sees alice's transfers: %+v", got)
	}
}

// TestTransferPathOfBothSides: each side's path is listed with it, and the
// transfer's path is the receiver's if it said, else the sender's.
func TestTransferPathOfBothSides(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok := ts.register(t, "alice", "secret1")
	laptop := ts.agent(t, ts.enroll(t, atok, "laptop", fp('1')), 0, fp('1'))
	home := ts.agent(t, ts.enroll(t, atok, "home", fp('2')), 5000, fp('2'))
	rep := func(session, side, outcome, path string) protocol.TransferReport {
		r := protocol.TransferReport{SessionID: session, FromDevice: "laptop", ToDevice: "home", Name: "a.txt",
			Outcome: outcome, Side: side, Path: path, Direct: path != protocol.PathRelay}
		if outcome != protocol.OutcomeOK {
			r.Reason = "reset"
		}
		return r
	}
	reported(laptop, rep("s-relay", "sender", "failed", "relay"), rep("s-both", "sender", "failed", "relay"),
		rep("s-unsaid", "sender", "failed", ""))
	reported(home, rep("s-both", "receiver", "ok", "nat"), rep("s-lan", "receiver", "ok", "direct"),
		rep("s-unsaid", "receiver", "failed", ""))

	a := ts.do(t, "GET", "/api/transfers", nil, atok)
	var l struct {
		Transfers []struct {
			SessionID string            `json:"session_id"`
			Path      *string           `json:"path"` // present even when empty
			Sender    map[string]string `json:"sender"`
			Receiver  map[string]string `json:"receiver"`
		}
	}
	if a.Status != 200 || json.Unmarshal(a.Body, &l) != nil {
		t.Fatalf("GET /api/transfers = %d %s", a.Status, a.Body)
	}
	type paths struct{ Path, Sender, Receiver string }
	got := map[string]paths{}
	for _, tr := range l.Transfers {
		if tr.Path == nil {
			t.Errorf("transfer %s is listed without a path: %s", tr.SessionID, a.Body)
			continue
		}
		got[tr.SessionID] = paths{*tr.Path, tr.Sender["path"], tr.Receiver["path"]}
	}
	want := map[string]paths{
		"s-relay":  {"relay", "relay", ""},
		"s-both":   {"nat", "relay", "nat"},
		"s-lan":    {"direct", "", "direct"},
		"s-unsaid": {},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paths listed (-want +got):\n%s", diff)
	}
}

// TestTransferReportRefusals: a report naming a side that is neither, a
// path that is none of the three, or with an oversized reason, is refused with a reason that names the field.
func TestTransferReportRefusals(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	atok := ts.register(t, "alice", "secret1")
	laptop := ts.agent(t, ts.enroll(t, atok, "laptop", fp('1')), 0, fp('1'))
	base := protocol.TransferReport{SessionID: "s1", FromDevice: "laptop", ToDevice: "home", Outcome: protocol.OutcomeFailed}
	for name, tc := range map[string]struct {
		r     protocol.TransferReport
		field string
	}{
		"unknown side": {func() protocol.TransferReport { r := base; r.Side = "bystander"; return r }(), "side"},
		"unknown path": {func() protocol.TransferReport { r := base; r.Path = "carrier pigeon"; return r }(), "path"},
		"reason too long": {func() protocol.TransferReport {
			r := base
			r.Reason = strings.Repeat("x", protocol.MaxReason+1)
			return r
		}(), "reason"},
	} {
		pe := laptop.waitError(laptop.send(protocol.TypeTransferReport, tc.r))
		if pe.Code != protocol.CodeInvalid || !strings.Contains(pe.Message, tc.field) {
			t.Errorf("%s: %+v, want %s naming %q", name, pe, protocol.CodeInvalid, tc.field)
		}
	}
	if got := listTransfers(t, ts, atok); len(got) != 0 {
		t.Errorf("refused reports were stored: %+v", got)
	}
}
