package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUserCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := []string{"MESH_AUTH_BCRYPT_COST=4"}
	if out, err := mesh(t, dir, "secret1\n", env, "user", "list"); err == nil || !strings.Contains(out, "pass --db") {
		t.Fatalf("user list without a database = %q, %v; want an error that says what to do", out, err)
	}
	// serve creates the database; a short run is enough.
	startServer(t, serverOpts{dir: dir, env: env}).stop(t)
	if out, err := mesh(t, dir, "secret1\n", env, "user", "add", "--admin", "Alice"); err != nil || !strings.Contains(out, "added alice") {
		t.Fatalf("user add = %q, %v", out, err)
	}
	if out, err := mesh(t, dir, "short\n", env, "user", "add", "bob"); err == nil || !strings.Contains(out, "at least 6 bytes") {
		t.Fatalf("user add with short password = %q, %v", out, err)
	}
	if out, err := mesh(t, dir, "secret2\n", env, "user", "passwd", "alice"); err != nil {
		t.Fatalf("user passwd = %q, %v", out, err)
	}
	if out, err := mesh(t, dir, "secret2\n", env, "user", "passwd", "ghost"); err == nil || !strings.Contains(out, "no user") {
		t.Fatalf("user passwd ghost = %q, %v", out, err)
	}
	out, err := mesh(t, dir, "", env, "user", "list")
	if err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "true") {
		t.Fatalf("user list = %q, %v", out, err)
	}
	out, err = mesh(t, dir, "", env, "user", "invite")
	if err != nil || len(strings.Fields(out)) == 0 || len(strings.Fields(out)[0]) != 24 {
		t.Fatalf("user invite = %q, %v; want a 24-digit code first", out, err)
	}
	code := strings.Fields(out)[0]

	// The server accepts the CLI's account and invite.
	s := startServer(t, serverOpts{dir: dir, env: env})
	defer s.stop(t)
	s.mustPost(t, "/api/auth/login", `{"username":"alice","password":"secret2"}`, http.StatusOK)
	s.mustPost(t, "/api/auth/register", `{"username":"bob","password":"secret1","invite_code":"`+code+`"}`, http.StatusCreated)
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[server]\nlisten = \"127.0.0.1:0\"\nlisen = \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := mesh(t, dir, "", nil, "serve", "--config", bad); err == nil || !strings.Contains(out, "server.lisen") {
		t.Fatalf("unknown key: %q, %v; want an error naming server.lisen", out, err)
	}
	if out, err := mesh(t, dir, "", []string{"MESH_AUTH_REGISTRATION=sometimes"}, "serve"); err == nil || !strings.Contains(out, "auth.registration") {
		t.Fatalf("bad env value: %q, %v; want an error naming auth.registration", out, err)
	}
	if out, err := mesh(t, dir, "", []string{"MESH_SERVER_SHUTDOWN_TIMEOUT=soon"}, "serve"); err == nil || !strings.Contains(out, "MESH_SERVER_SHUTDOWN_TIMEOUT") {
		t.Fatalf("bad env duration: %q, %v", out, err)
	}
}

// TestServeGracefulShutdown runs `mesh serve` with no flags in an empty
// directory, then stops it with SIGTERM: exit 0 and a cleanly closed DB.
func TestServeGracefulShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, serverOpts{dir: dir, env: []string{"MESH_AUTH_BCRYPT_COST=4"}})
	s.mustPost(t, "/api/auth/register", `{"username":"test","password":"test123"}`, http.StatusCreated)
	logs := s.stop(t)
	if !strings.Contains(logs, "database closed") {
		t.Errorf("shutdown log lacks 'database closed':\n%s", logs)
	}
	if fi, err := os.Stat(filepath.Join(dir, "mesh.db-wal")); err == nil && fi.Size() > 0 {
		t.Errorf("WAL left with %d bytes after a clean shutdown", fi.Size())
	}
	if fi, err := os.Stat(filepath.Join(dir, "mesh.db.secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file: %v, mode %v; want 0600", err, fi)
	}
}
