package agent

import (
	"errors"
	"fmt"
	"testing"

	"mesh/agent/peer"
	"mesh/protocol"
	"mesh/transfer"
)

// TestReportPath: a report carries the path its session connected on,
// direct unless relayed; a failed send's path comes from its error, and a
// send that never connected says none.
func TestReportPath(t *testing.T) {
	t.Parallel()
	sess := protocol.P2PSession{SessionID: "s1", InitiatorDeviceID: "laptop", TargetDeviceID: "home"}
	cut := &pathError{peer.PathRelay, errors.New("connection reset")}
	for _, tc := range []struct {
		name       string
		r          protocol.TransferReport
		path       string
		wantDirect bool
	}{
		{"receiver same network", report(protocol.SideReceiver, sess, peer.PathLAN, nil, transfer.Result{}, protocol.OutcomeOK, ""), "direct", true},
		{"receiver through NAT", report(protocol.SideReceiver, sess, peer.PathNAT, nil, transfer.Result{}, protocol.OutcomeOK, ""), "nat", true},
		{"receiver relayed", report(protocol.SideReceiver, sess, peer.PathRelay, nil, transfer.Result{}, protocol.OutcomeOK, ""), "relay", false},
		{"sender cut on the relay", failedSend(sess, []string{"a.txt"}, transfer.Result{}, fmt.Errorf("and then: %w", cut)), "relay", false},
		{"sender never connected", failedSend(sess, []string{"a.txt"}, transfer.Result{}, &notConnectedError{errors.New("no answer")}), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.r.Path != tc.path || tc.r.Direct != tc.wantDirect || tc.r.Validate() != nil {
				t.Errorf("report = %+v (Validate: %v); want path %q, direct %v", tc.r, tc.r.Validate(), tc.path, tc.wantDirect)
			}
		})
	}
	if r := failedSend(sess, nil, transfer.Result{}, cut); r.Reason != "connection reset" {
		t.Errorf("failed send's reason = %q, want the error's own text", r.Reason)
	}
}
