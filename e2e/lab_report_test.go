package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// TestLabReportPath: the transfer list says how each transfer went: a send
// between two symmetric NATs is listed as relayed, one on a LAN as direct,
// as the receiver (and, for a failed send, the sender) reported it.
func TestLabReportPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		homeA        homeOpts
		homeB        *homeOpts
		line, listed string // the path: line send-file prints; the listed path
	}{
		{"both symmetric", homeOpts{nat: natSymmetric}, &homeOpts{nat: natSymmetric}, "path: relayed by", "relay"},
		{"same LAN", homeOpts{nat: natCone}, nil, "path: direct (same network)", "direct"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newLabPair(t, tc.homeA, tc.homeB)
			r := p.send(t, p.a, p.b, 1<<20)
			checkPath(t, r, tc.line)
			tr := labListed(t, p, "random-"+p.a.name+".bin")
			if tr.Path != tc.listed || tr.Receiver == nil || tr.Receiver.Path != tc.listed {
				t.Errorf("listed transfer = %+v (receiver %+v), want path %q from the receiver", tr, tr.Receiver, tc.listed)
			}
		})
	}
}

// labTransfer is an entry of GET /api/transfers, as far as paths go.
type labTransfer struct {
	Name     string `json:"name"`
	Outcome  string `json:"outcome"`
	Path     string `json:"path"`
	Receiver *struct {
		Outcome string `json:"outcome"`
		Path    string `json:"path"`
	} `json:"receiver"`
}

// labListed waits until p's server lists the transfer of name as verified
// by the receiver, and returns it.
func labListed(t *testing.T, p *labPair, name string) labTransfer {
	t.Helper()
	var found labTransfer
	var last []labTransfer
	ok := poll(15*time.Second, 50*time.Millisecond, func() bool {
		req, err := http.NewRequest(http.MethodGet, p.srv.url+"/api/transfers", nil)
		if err != nil {
			return false
		}
		req.Header.Set("Authorization", "Bearer "+p.tok)
		res, err := p.srv.http.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var l struct{ Transfers []labTransfer }
		if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&l) != nil {
			return false
		}
		last = l.Transfers
		for _, tr := range l.Transfers {
			if filepath.Base(tr.Name) == name && tr.Outcome == "ok" && tr.Receiver != nil {
				found = tr
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("GET /api/transfers never listed %s as received: %+v", name, last)
	}
	return found
}
