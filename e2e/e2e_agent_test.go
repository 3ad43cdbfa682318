package e2e

import (
	"crypto/rand"
	"io"
	"os"
	"strings"
	"testing"
)

// send runs `mesh agent send-file` from m and returns its output and error.
func (m machine) send(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return mesh(t, m.home, "", m.env, append([]string{"agent", "send-file"}, args...)...)
}

func fileHash(t *testing.T, path string) string {
	t.Helper()
	sum, err := hashFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func writeRandom(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAgentReconnects: the server goes away and comes back on the same
// address; the agent reconnects by itself and is online again.
func TestAgentReconnects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := []string{"MESH_AUTH_BCRYPT_COST=4", "MESH_AUTH_REGISTRATION=open"}
	srv := startServer(t, serverOpts{dir: dir, env: env})
	tok := apiToken(t, srv.url, "alice")
	home := newMachine(t, "home")
	home.login(t, srv.url, "alice")
	agentProc := home.run(t, srv.url, tok)
	srv.stop(t)
	srv2 := startServer(t, serverOpts{dir: dir, env: env, addr: srv.addr()})
	defer srv2.stop(t)
	waitOnline(t, srv2.url, tok, "home", true)
	if !strings.Contains(agentProc.out.String(), "reconnecting") {
		t.Errorf("agent log does not mention reconnecting:\n%s", agentProc.out.String())
	}
}
