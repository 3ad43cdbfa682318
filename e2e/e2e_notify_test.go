package e2e

import (
	"strings"
	"testing"
	"time"

	"mesh/server/notify/gotify/gotifytest"
)

// TestNotifyTestCommand: a self-hoster's first check, against a
// Gotify-compatible server: the push arrives and the command says so; a
// wrong token fails with Gotify's reason.
func TestNotifyTestCommand(t *testing.T) {
	t.Parallel()
	g := gotifytest.New(t)
	dir := t.TempDir()
	srv := startServer(t, serverOpts{dir: dir}) // creates the database
	srv.stop(t)
	env := []string{"MESH_NOTIFY_GOTIFY_URL=" + g.URL(), "MESH_NOTIFY_GOTIFY_TOKEN=" + g.AppToken()}
	out, err := mesh(t, dir, "", env, "notify", "test")
	if err != nil || !strings.Contains(out, "sent to the server's [notify.gotify] target") {
		t.Fatalf("mesh notify test: %v\n%s", err, out)
	}
	if got := g.WaitMessages(t, 1, 10*time.Second); got[0].Title != "mesh test" {
		t.Errorf("push = %+v", got[0])
	}
	env[1] = "MESH_NOTIFY_GOTIFY_TOKEN=wrong"
	out, err = mesh(t, dir, "", env, "notify", "test")
	if err == nil || !strings.Contains(out, "401") || strings.Contains(out, "wrong") {
		t.Fatalf("with a wrong token: %v\n%s; want a failure naming the 401, without the token", err, out)
	}
}
