package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUserFlagsAfterName runs the real binary: a flag works before or after
// USERNAME (or FILE), value flags after it included, and what is still wrong
// is still refused for the right reason.
func TestUserFlagsAfterName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := []string{"MESH_AUTH_BCRYPT_COST=4"}
	srv := startServer(t, serverOpts{dir: dir, env: env}) // creates mesh.db; the user commands work while it runs
	defer srv.stop(t)
	db, elsewhere := filepath.Join(dir, "mesh.db"), t.TempDir()
	for _, tc := range []struct {
		dir, stdin string
		args       []string
		want       string
		fails      bool // for a reason other than usage
	}{
		{dir, "secret1\n", []string{"user", "add", "alice", "--admin"}, "added alice (id 1, admin true)", false},
		{dir, "secret1\n", []string{"user", "add", "bob", "--password-stdin"}, "added bob (id 2, admin false)", false},
		{dir, "secret1\n", []string{"user", "add", "--password-stdin", "carol", "--admin"}, "added carol (id 3, admin true)", false},
		{elsewhere, "secret1\n", []string{"user", "add", "dave", "--db", db, "--password-stdin"}, "added dave (id 4, admin false)", false},
		{elsewhere, "secret1\n", []string{"user", "add", "erin", "--db=" + db}, "added erin (id 5, admin false)", false},
		{dir, "secret2\n", []string{"user", "passwd", "bob", "--password-stdin"}, "password of bob changed", false},
		{elsewhere, "secret3\n", []string{"user", "passwd", "carol", "-c", filepath.Join(elsewhere, "none.toml"), "--db", db}, "none.toml: no such file", true},
		{elsewhere, "secret3\n", []string{"user", "passwd", "carol", "--db", db}, "password of carol changed", false},
		{elsewhere, "", []string{"backup", filepath.Join(elsewhere, "copy.db"), "--db", db}, "integrity ok", false},
	} {
		out, err := mesh(t, tc.dir, tc.stdin, env, tc.args...)
		if (err != nil) != tc.fails || !strings.Contains(out, tc.want) {
			t.Errorf("mesh %v = %q, %v; want %q", tc.args, out, err, tc.want)
		}
	}
	srv.mustPost(t, "/api/auth/login", `{"username":"bob","password":"secret2"}`, http.StatusOK)
	srv.mustPost(t, "/api/auth/login", `{"username":"carol","password":"secret3"}`, http.StatusOK)
	if out, err := mesh(t, dir, "", env, "user", "list"); err != nil || strings.Count(out, "true") != 2 {
		t.Errorf("user list = %q, %v; want alice and carol admin, no one else", out, err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "add", "frank", "grace", "--admin"}, "want exactly one USERNAME"},
		{[]string{"user", "add", "frank", "--db"}, "flag needs an argument: -db"},
		{[]string{"user", "add", "frank", "--admn"}, "flag provided but not defined: -admn"},
		{[]string{"user", "passwd", "--password-stdin"}, "want exactly one USERNAME"},
	} {
		if out, err := mesh(t, dir, "secret1\n", env, tc.args...); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("mesh %v = %q, %v; want an error saying %q", tc.args, out, err, tc.want)
		}
	}
	if out, _ := mesh(t, dir, "", env, "user", "list"); strings.Contains(out, "frank") || strings.Contains(out, "grace") {
		t.Errorf("a refused user add created an account:\n%s", out)
	}
}

// TestAgentFlagsAfterArgs: send-file and join-terminal take their flags
// after PATH and SHARE_ID too; for share-terminal, what follows COMMAND is
// the command's own, flags included, with or without "--".
func TestAgentFlagsAfterArgs(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	file := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(file, []byte("flags after the path\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := mesh(t, w.laptop.home, "", w.laptop.env, "agent", "send-file", file, "--to", "home", "--log-level", "warn"); err != nil {
		t.Fatalf("send-file PATH --to home: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(w.home.inbox(), "notes.txt")); err != nil || string(b) != "flags after the path\n" {
		t.Fatalf("received notes.txt = %q, %v", b, err)
	}

	sh := w.laptop.start(t, "agent", "share-terminal", "--share-id", "flags-test",
		"sh", "-c", `echo "own args: $*"; read line; echo "read: $line"`, "sh", "--allow", "bob", "--", "-x")
	sh.waitOutput(t, "own args: --allow bob -- -x")
	join := w.home.start(t, "agent", "join-terminal", "flags-test", "--log-level", "debug")
	join.waitOutput(t, "own args: --allow bob -- -x")
	sh.typeIn(t, "typed\n")
	join.waitOutput(t, "read: typed")
	if code := sh.exit(t); code != 0 {
		t.Fatalf("share-terminal exit code %d, want 0; output:\n%s", code, sh.out.String())
	}
	if code := join.exit(t); code != 0 {
		t.Fatalf("join-terminal SHARE_ID --log-level debug: exit %d; output:\n%s", code, join.out.String())
	}
}
