package e2e

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// meshBin is the real binary, built once per test run from the module root.
var meshBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "mesh-bin")
	if err != nil {
		panic(err)
	}
	meshBin = filepath.Join(dir, "mesh")
	if out, err := exec.Command("go", "build", "-o", meshBin, "..").CombinedOutput(); err != nil {
		panic("build mesh: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	_ = os.RemoveAll(dir) // best effort: a temp dir
	os.Exit(code)
}

// mesh runs the binary in dir with stdin, returning combined output and the error.
func mesh(t *testing.T, dir, stdin string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(meshBin, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MESH_") {
			env = append(env, kv)
		}
	}
	return env
}

func TestUserCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := []string{"MESH_AUTH_BCRYPT_COST=4"}
	if out, err := mesh(t, dir, "secret1\n", env, "user", "list"); err == nil || !strings.Contains(out, "pass --db") {
		t.Fatalf("user list without a database = %q, %v; want an error that says what to do", out, err)
	}
	// serve creates the database; a short run is enough.
	runServer(t, dir, env).stop(t)
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
	s := runServer(t, dir, env)
	defer s.stop(t)
	s.post(t, "/api/auth/login", `{"username":"alice","password":"secret2"}`, http.StatusOK)
	s.post(t, "/api/auth/register", `{"username":"bob","password":"secret1","invite_code":"`+code+`"}`, http.StatusCreated)
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
	s := runServer(t, dir, []string{"MESH_AUTH_BCRYPT_COST=4"})
	s.post(t, "/api/auth/register", `{"username":"test","password":"test123"}`, http.StatusCreated)
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

type running struct {
	cmd  *exec.Cmd
	url  string
	logs *bytes.Buffer
	done chan error
}

// runServer starts `mesh serve --listen 127.0.0.1:0` in dir and waits for its URL line.
func runServer(t *testing.T, dir string, env []string) *running {
	t.Helper()
	return runServerAt(t, dir, env, "127.0.0.1:0")
}

// runServerAt is runServer on a given address, with more serve flags.
func runServerAt(t *testing.T, dir string, env []string, addr string, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hung server cannot outlive the test run
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, meshBin, append([]string{"serve", "--listen", addr}, args...)...)
	cmd.Dir, cmd.Env = dir, append(cleanEnv(), env...)
	logs := &bytes.Buffer{}
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("mesh serve printed no URL: %v\n%s", err, logs)
	}
	_, rest, _ := strings.Cut(line, "open ")
	url, _, _ := strings.Cut(rest, " ")
	if !strings.HasPrefix(url, "http://127.0.0.1:") && !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("mesh serve printed %q, want the URL to open", line)
	}
	r := &running{cmd: cmd, url: url, logs: logs, done: make(chan error, 1)}
	go func() { _, _ = io.Copy(io.Discard, stdout); r.done <- cmd.Wait() }()
	return r
}

func (r *running) post(t *testing.T, path, body string, want int) {
	t.Helper()
	res, err := http.Post(r.url+path, "", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != want {
		t.Fatalf("POST %s = %d %s, want %d", path, res.StatusCode, b, want)
	}
}

// stop sends SIGTERM and requires a clean exit; it returns the logs.
func (r *running) stop(t *testing.T) string {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-r.done; err != nil {
		t.Fatalf("mesh serve after SIGTERM: %v\n%s", err, r.logs)
	}
	return r.logs.String()
}
