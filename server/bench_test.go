package server_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"mesh/server"
)

// BenchmarkLogin measures a full HTTP login (bcrypt verify + JWT sign) at
// bcrypt costs 10, 11 and 12; mesh's default is marked. bcrypt's CPU time is
// what is measured, so it runs serially.
func BenchmarkLogin(b *testing.B) {
	def := server.DefaultConfig().Auth.BcryptCost
	for _, cost := range []int{10, 11, 12} {
		name := fmt.Sprintf("cost=%d", cost)
		if cost == def {
			name += "-default"
		}
		b.Run(name, func(b *testing.B) {
			cfg := testConfig(b, b.TempDir())
			cfg.Auth.BcryptCost = cost
			ts := startServer(b, cfg)
			ts.register(b, "alice", "secret1")
			body := []byte(`{"username":"alice","password":"secret1"}`)
			for b.Loop() {
				if a := ts.do(b, http.MethodPost, "/api/auth/login", body, ""); a.Status != http.StatusOK {
					b.Fatalf("login = %d %s", a.Status, a.Body)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/login")
		})
	}
}

// BenchmarkLoginFailures shows that a wrong password and an unknown user cost
// the same (both run one bcrypt at the default cost), so timing does not
// reveal which usernames exist. The test clock skips past the throttling
// window after each attempt.
func BenchmarkLoginFailures(b *testing.B) {
	for _, tc := range []struct{ name, body string }{
		{"wrong-password", `{"username":"alice","password":"not-it"}`},
		{"unknown-user", `{"username":"nobody","password":"not-it"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := testConfig(b, b.TempDir())
			cfg.Auth.BcryptCost = server.DefaultConfig().Auth.BcryptCost
			ts := startServer(b, cfg)
			ts.register(b, "alice", "secret1")
			for b.Loop() {
				if a := ts.do(b, http.MethodPost, "/api/auth/login", []byte(tc.body), ""); a.Status != http.StatusUnauthorized {
					b.Fatalf("login = %d %s", a.Status, a.Body)
				}
				ts.Clock.Advance(16 * time.Minute) // past the throttling window
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/login")
		})
	}
}
