package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupWhileServing backs up a running server's database while
// registrations keep writing, then restores the copy as its --help says and
// logs in on a server started from it.
func TestBackupWhileServing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := []string{"MESH_AUTH_BCRYPT_COST=4", "MESH_AUTH_REGISTRATION=open"}
	s := startServer(t, serverOpts{dir: dir, env: env})
	s.mustPost(t, "/api/auth/register", `{"username":"alice","password":"secret1"}`, http.StatusCreated)

	stop, done := make(chan struct{}), make(chan error)
	var n int // registrations during the backup; read after done
	go func() {
		var err error
		n, err = registerUntil(s.url, stop)
		done <- err
	}()
	out, err := mesh(t, dir, "", env, "backup", "copy.db")
	close(stop)
	if err := <-done; err != nil {
		t.Error(err)
	}
	t.Logf("%d users registered while mesh backup ran", n)
	if err != nil || !strings.Contains(out, "backup written: copy.db (") || !strings.Contains(out, "integrity ok") {
		t.Fatalf("mesh backup copy.db = %q, %v", out, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "copy.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("copy.db: %v, %v; want mode 0600", err, fi)
	}
	if out, err := mesh(t, dir, "", env, "backup", "copy.db"); err == nil || !strings.Contains(out, "copy.db exists; pick a new name or remove it") {
		t.Errorf("second mesh backup copy.db = %q, %v; want a refusal", out, err)
	}
	if out, err := mesh(t, dir, "", env, "backup"); err == nil || !strings.Contains(out, "want exactly one FILE") {
		t.Errorf("mesh backup without FILE = %q, %v; want a usage error", out, err)
	}
	if logs := s.stop(t); strings.Contains(logs, "open to other users") {
		t.Errorf("a server that created its own files warned about their modes:\n%s", logs)
	}

	// Restore into a fresh directory with the token key, made 0644 as a careless
	// cp -p from elsewhere might leave it: the server says how to fix that.
	restored := t.TempDir()
	copyFile(t, filepath.Join(dir, "copy.db"), filepath.Join(restored, "mesh.db"), 0o644)
	copyFile(t, filepath.Join(dir, "mesh.db.secret"), filepath.Join(restored, "mesh.db.secret"), 0o600)
	s = startServer(t, serverOpts{dir: restored, env: env})
	s.mustPost(t, "/api/auth/login", `{"username":"alice","password":"secret1"}`, http.StatusOK)
	if logs := s.stop(t); !strings.Contains(logs, "chmod 600 "+filepath.Join(restored, "mesh.db")) &&
		!strings.Contains(logs, "chmod 600 mesh.db") {
		t.Errorf("server on a 0644 database did not say to chmod 600 it:\n%s", logs)
	}
}

// registerUntil registers users on the server at url until stop is closed
// and returns how many it registered.
func registerUntil(url string, stop <-chan struct{}) (int, error) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return i, nil
		default:
		}
		res, err := http.Post(url+"/api/auth/register", "", strings.NewReader(fmt.Sprintf(`{"username":"user%d","password":"secret1"}`, i)))
		if err != nil {
			return i, err
		}
		b, _ := io.ReadAll(res.Body) // only for the error message
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			return i, fmt.Errorf("register user%d during backup = %d %s", i, res.StatusCode, b)
		}
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil { // WriteFile's mode is narrowed by the umask
		t.Fatal(err)
	}
}
