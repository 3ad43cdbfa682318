package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// `mesh agent doctor` in the network lab: what it finds behind a cone
// NAT, a symmetric NAT, and where the home drops all UDP; with --to, the
// path a session to a machine in another home takes.

// doctorRun is one `mesh agent doctor` and what it printed.
type doctorRun struct {
	out, logs string // stdout (the findings), stderr (the log)
	code      int
}

// doctor runs `mesh agent doctor args...` on m.
func (m labMachine) doctor(args ...string) doctorRun {
	t := m.lab.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := m.command(ctx, append([]string{"agent", "doctor"}, args...)...)
	var out, logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &logs
	err := cmd.Run()
	r := doctorRun{out: out.String(), logs: logs.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("mesh agent doctor: %v", err)
	}
	t.Logf("mesh agent doctor %s on %s (exit %d):\n%s", strings.Join(args, " "), m.name, r.code, r.out)
	return r
}

// finding returns the text after "what: " on the line that starts so.
func (r doctorRun) finding(what string) string {
	for line := range strings.Lines(r.out) {
		if rest, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), what+": "); ok {
			return rest
		}
	}
	return ""
}

// checkFindings fails t unless each line named in want starts with its text.
func checkFindings(t *testing.T, r doctorRun, want map[string]string) {
	t.Helper()
	for what, prefix := range want {
		if got := r.finding(what); !strings.HasPrefix(got, prefix) {
			t.Errorf("doctor %q line = %q, want one starting %q\nlog:\n%s", what, got, prefix, r.logs)
		}
	}
}

func TestLabDoctor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		home, target homeOpts
		want         map[string]string
	}{
		{"cone", homeOpts{nat: natCone}, homeOpts{nat: natCone}, map[string]string{
			"stun":           labPubIP + ":3478 answers over UDP",
			"public address": "198.51.100.1:",
			"nat":            "behind NAT",
			"nat mapping":    "endpoint-independent",
			"to desktop":     "path: direct (through NAT)",
		}},
		{"symmetric", homeOpts{nat: natSymmetric}, homeOpts{nat: natSymmetric}, map[string]string{
			"stun":           labPubIP + ":3478 answers over UDP",
			"public address": "198.51.100.1:",
			"nat":            "behind NAT",
			"nat mapping":    "endpoint-dependent",
			"to desktop":     "path: relayed by " + labPubIP + ":8000",
		}},
		{"udp-blocked", homeOpts{nat: natCone, dropUDP: true}, homeOpts{nat: natCone}, map[string]string{
			"stun":           labPubIP + ":3478: no answer",
			"public address": "unknown",
			"nat":            "unknown",
			"nat mapping":    "not tested",
			"to desktop":     "path: relayed by " + labPubIP + ":8000",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newLabPair(t, tc.home, &tc.target)
			r := p.a.doctor("--to", p.b.name)
			if r.code != 0 {
				t.Errorf("doctor exit code %d, want 0", r.code)
			}
			want := map[string]string{
				"server":    "reachable at " + labServerURL,
				"websocket": "connected",
				"relay":     "answers",
			}
			for k, v := range tc.want {
				want[k] = v
			}
			checkFindings(t, r, want)
			checkNotListed(t, p)
		})
	}
}

// The server down: doctor says so and exits 1.
func TestLabDoctorServerDown(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	srv := l.startServer()
	m := l.addHome(homeOpts{nat: natCone}).addHost().newMachine("laptop")
	labToken(t, srv, "alice")
	m.login("alice")
	srv.stop(t)
	r := m.doctor()
	if r.code != 1 {
		t.Errorf("doctor exit code %d with the server down, want 1", r.code)
	}
	checkFindings(t, r, map[string]string{"server": "unreachable at " + labServerURL})
}

// checkNotListed: the doctor's test session is no transfer, so the
// receiving daemon reports none and the list stays empty.
func checkNotListed(t *testing.T, p *labPair) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.srv.url+"/api/transfers", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.tok)
	var b []byte
	// A receiver's report lands within milliseconds of the hang-up; give
	// it two seconds to show up, and fail if it does.
	if poll(2*time.Second, 100*time.Millisecond, func() bool {
		res, err := p.srv.http.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		b, _ = io.ReadAll(res.Body) // a short read shows in the message
		return strings.Contains(string(b), `"session_id"`)
	}) {
		t.Errorf("doctor --to left a transfer in the list: %s", b)
	}
}
