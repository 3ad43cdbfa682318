package server_test

import (
	"strings"
	"testing"

	"mesh/server"
)

func TestNotifyAllowedTargetsValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		entry string
		ok    bool
	}{
		{"192.168.1.20", true},
		{"10.8.0.0/24", true},
		{"::1", true},
		{"fd00::/8", true},
		{"fe80::1%eth0", true},
		{"192.168.1.0/33", false},
		{"gotify.lan", false},
		{"http://192.168.1.20", false},
		{"", false},
	} {
		cfg := server.DefaultConfig()
		cfg.Notify.AllowedTargets = []string{tt.entry}
		err := cfg.Validate()
		if tt.ok && err != nil || !tt.ok && (err == nil || !strings.Contains(err.Error(), "notify.allowed_targets")) {
			t.Errorf("Validate() with allowed_targets [%q] = %v, want ok %v (else naming the key)", tt.entry, err, tt.ok)
		}
	}
}
