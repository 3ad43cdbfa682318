package server_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"mesh/server"
)

// writeMode writes a file and sets its mode exactly (the umask only narrows
// what WriteFile asks for).
func writeMode(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// warnings runs WarnFileModes and returns its log, one record a line.
func warnings(paths ...string) []string {
	var buf bytes.Buffer
	server.WarnFileModes(slog.New(slog.NewTextHandler(&buf, nil)), paths...)
	if buf.Len() == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

func TestWarnFileModes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	writeMode(t, path("world.db"), 0o644)
	writeMode(t, path("group.secret"), 0o640)
	writeMode(t, path("writable"), 0o602)
	writeMode(t, path("private.db"), 0o600)
	writeMode(t, path("owner-only-exec"), 0o700)
	writeMode(t, path("it's here"), 0o604)
	if err := os.Mkdir(path("a-dir"), 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		mode string // "" = no warning
		fix  string
	}{
		{"world.db", "0644", "chmod 600 " + path("world.db")},
		{"group.secret", "0640", "chmod 600 " + path("group.secret")},
		{"writable", "0602", "chmod 600 " + path("writable")},
		{"it's here", "0604", `"chmod 600 '` + dir + `/it'\\''s here'"`},
		{"private.db", "", ""},
		{"owner-only-exec", "", ""},
		{"missing", "", ""},
		{"a-dir", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := warnings(path(tc.name))
			if tc.mode == "" {
				if len(got) != 0 {
					t.Fatalf("WarnFileModes(%q) logged %q, want nothing", tc.name, got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("WarnFileModes(%q) logged %q, want one warning", tc.name, got)
			}
			for _, want := range []string{"level=WARN", "path=", tc.name, "mode=" + tc.mode, tc.fix} {
				if !strings.Contains(got[0], want) {
					t.Errorf("WarnFileModes(%q) = %q, want it to contain %q", tc.name, got[0], want)
				}
			}
		})
	}
}

func TestWarnFileModesOncePerFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeMode(t, a, 0o644)
	writeMode(t, b, 0o644)
	if got := warnings(a, b, a, filepath.Join(dir, "gone"), b); len(got) != 2 {
		t.Errorf("WarnFileModes(a, b, a, gone, b) logged %d warnings, want 2:\n%s", len(got), strings.Join(got, "\n"))
	}
}

func TestSensitiveFilesForWarnFileModes(t *testing.T) {
	t.Parallel()
	cfg := server.DefaultConfig()
	cfg.HTTP.DB = "/var/lib/mesh/mesh.db"
	want := []string{"/var/lib/mesh/mesh.db", "/var/lib/mesh/mesh.db-wal", "/var/lib/mesh/mesh.db-shm", "/var/lib/mesh/mesh.db.secret", "/var/lib/mesh/mesh.db.turn-secret"}
	if diff := cmp.Diff(want, cfg.SensitiveFiles()); diff != "" {
		t.Errorf("SensitiveFiles() with defaults mismatch (-want +got):\n%s", diff)
	}

	cfg.Auth.SecretFile = "/etc/mesh/jwt.key"
	cfg.Notify.Gotify.TokenFile = "/etc/mesh/gotify.token"
	cfg.RTC.TURNPassFile = "/etc/mesh/turn.pass"
	cfg.RTC.TURNSecretFile = "/etc/mesh/turn.secret"
	cfg.HTTP.TLSCert, cfg.HTTP.TLSKey = "/etc/mesh/cert.pem", "/etc/mesh/key.pem"
	want = []string{"/var/lib/mesh/mesh.db", "/var/lib/mesh/mesh.db-wal", "/var/lib/mesh/mesh.db-shm",
		"/etc/mesh/jwt.key", "/etc/mesh/turn.secret", "/etc/mesh/gotify.token", "/etc/mesh/turn.pass", "/etc/mesh/key.pem"}
	if diff := cmp.Diff(want, cfg.SensitiveFiles()); diff != "" {
		t.Errorf("SensitiveFiles() with every file configured mismatch (-want +got):\n%s", diff)
	}
}
