package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEExamples runs every `mesh user` and `mesh agent` line of the
// README's sh blocks as written, through sh (comments, ~ and all), in the
// order shown: the admin lines in the directory of a running server, the
// agent lines on three machines (alice's laptop and home-server, bob's pc)
// that reach that server as https://home.example.org through a loopback
// proxy. Each line must do its job; a line with no check here fails the test.
func TestREADMEExamples(t *testing.T) {
	t.Parallel()
	w := newReadmeWorld(t)
	checks := w.checks()
	for _, line := range readmeExamples(t) {
		check, ok := checks[exampleKey(line)]
		if !ok {
			t.Errorf("README example %q has no check in TestREADMEExamples: add one", line)
			return
		}
		delete(checks, exampleKey(line))
		check(t, line)
		t.Logf("ok: %s", line)
		if t.Failed() {
			return // the lines build on each other
		}
	}
	for key := range checks {
		t.Errorf("TestREADMEExamples checks %q, which the README no longer shows", key)
	}
	if r := w.proxy.refusedHosts(); len(r) > 0 {
		t.Errorf("the agents asked the proxy for %v; only %s exists here", r, readmeHost)
	}
}

type readmeWorld struct {
	srv                      *meshServer
	client                   *http.Client // trusts the server's certificate
	proxy                    *connectProxy
	admin                    machine // the server's directory, for mesh user
	laptop, homeServer, bobs machine
	aliceTok                 string
}

func newReadmeWorld(t *testing.T) *readmeWorld {
	t.Helper()
	dir, bin := t.TempDir(), t.TempDir()
	certFile, keyFile := writeCertFor(t, t.TempDir(), readmeHost)
	w := &readmeWorld{srv: startServer(t, serverOpts{dir: dir, env: []string{"MESH_AUTH_BCRYPT_COST=4"}, args: []string{"--tls-cert", certFile, "--tls-key", keyFile}}),
		client: trustingClient(t, certFile)}
	p, proxyURL := startProxy(t, readmeHost, strings.TrimPrefix(w.srv.url, "https://"))
	w.proxy = p
	w.admin = readmeMachine(t, "server", bin, certFile, proxyURL)
	w.admin.home, w.admin.env = dir, append(w.admin.env, "MESH_AUTH_BCRYPT_COST=4")
	w.laptop = readmeMachine(t, "laptop", bin, certFile, proxyURL)
	w.homeServer = readmeMachine(t, "home-server", bin, certFile, proxyURL)
	w.bobs = readmeMachine(t, "bobs-pc", bin, certFile, proxyURL)
	for _, m := range []machine{w.admin, w.laptop, w.homeServer, w.bobs} {
		if err := os.Symlink(meshBin, filepath.Join(m.home, "mesh")); err != nil { // for ./mesh lines
			t.Fatal(err)
		}
	}
	// htop is not installed here: a stand-in that shows it got the terminal and its input.
	htop := "#!/bin/sh\necho 'htop stand-in: type a line'\nread line\necho \"htop got: $line\"\n"
	if err := os.WriteFile(filepath.Join(bin, "htop"), []byte(htop), 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

// login enrols m for user without a README line: the other machines of the examples.
func (w *readmeWorld) login(t *testing.T, m machine, user, password string) {
	t.Helper()
	line := "mesh agent login --server https://" + readmeHost + " --username " + user + " --device " + m.name + " --password-stdin"
	if out, err := runLine(t, m, password+"\n", line); err != nil || !strings.Contains(out, "enrolled "+m.name) {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
}

func (w *readmeWorld) checks() map[string]func(t *testing.T, line string) {
	want := func(t *testing.T, m machine, stdin, line, want string) string {
		t.Helper()
		out, err := runLine(t, m, stdin, line)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("%s\n= %v, output:\n%s\nwant %q", line, err, out, want)
		}
		return out
	}
	return map[string]func(t *testing.T, line string){
		"mesh user add alice --admin": func(t *testing.T, line string) {
			want(t, w.admin, "secret1\n", line, "added alice (id 1, admin true)")
		},
		"mesh user passwd alice": func(t *testing.T, line string) {
			want(t, w.admin, "secret2\n", line, "password of alice changed")
			w.aliceTok = w.apiAuth(t, "login", `{"username":"alice","password":"secret2"}`, http.StatusOK)
		},
		"mesh user list": func(t *testing.T, line string) {
			if out := want(t, w.admin, "", line, "USERNAME"); !regexp.MustCompile(`(?m)^1\s+alice\s+true\s`).MatchString(out) {
				t.Fatalf("%s printed:\n%s\nwant alice, id 1, admin", line, out)
			}
		},
		"mesh user invite": func(t *testing.T, line string) {
			code := strings.Fields(want(t, w.admin, "", line, "single use"))[0]
			w.apiAuth(t, "register", `{"username":"bob","password":"secret1","invite_code":"`+code+`"}`, http.StatusCreated)
		},
		"mesh agent login --server https://home.example.org --username alice --device laptop": func(t *testing.T, line string) {
			want(t, w.laptop, "secret2\n", line, "enrolled laptop as a device of alice")
		},
		"mesh agent run": func(t *testing.T, line string) {
			w.login(t, w.homeServer, "alice", "secret2")
			startLine(t, w.homeServer, line)
			waitOnlineWith(t, w.client, w.srv.url, w.aliceTok, "home-server")
		},
		"mesh agent send-file --to home-server ~/Photos": func(t *testing.T, line string) {
			photos := filepath.Join(w.laptop.home, "Photos")
			for name, n := range map[string]int64{"a.jpg": 300 << 10, "2024/b.jpg": 1 << 20} {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(photos, name)), 0o755); err != nil {
					t.Fatal(err)
				}
				writeRandom(t, filepath.Join(photos, name), n)
			}
			want(t, w.laptop, "", line, "sent 2 files")
			for _, name := range []string{"a.jpg", "2024/b.jpg"} {
				if got, sent := fileHash(t, filepath.Join(w.homeServer.inbox(), "Photos", name)), fileHash(t, filepath.Join(photos, name)); got != sent {
					t.Fatalf("home-server's inbox/Photos/%s has BLAKE3 %s, want %s", name, got, sent)
				}
			}
		},
		"mesh agent send-file --session-id ID --peer-addr HOST:PORT --token TOKEN --file PATH": func(t *testing.T, line string) {
			// As written its placeholders name nothing: refused for that, not as a usage error.
			out, err := runLine(t, w.laptop, "", line)
			named := regexp.MustCompile(`\b(ID|HOST:PORT|TOKEN|PATH)\b`).MatchString(out)
			if err == nil || !named || strings.Contains(out, "say what to send") || strings.Contains(out, "Incorrect Usage") {
				t.Fatalf("%s\n= %v, output:\n%s\nwant a refusal naming a placeholder, not a usage error", line, err, out)
			}
			t.Logf("as written: %s", strings.TrimSpace(out))
			// Filled in with a session alice asked for herself, it sends.
			var s struct {
				SessionID    string `json:"session_id"`
				SessionToken string `json:"session_token"`
				Endpoints    struct{ Target struct{ Port int } }
			}
			w.post(t, "/api/p2p/sessions", w.aliceTok, `{"kind":"file","target_device_id":"home-server"}`, http.StatusCreated, &s)
			file := filepath.Join(w.laptop.home, "report.txt")
			writeRandom(t, file, 64<<10)
			filled := strings.NewReplacer("ID", s.SessionID, "HOST:PORT", fmt.Sprintf("127.0.0.1:%d", s.Endpoints.Target.Port),
				"TOKEN", s.SessionToken, "PATH", file).Replace(line)
			want(t, w.laptop, "", filled, "sent 1 files")
			if got, sent := fileHash(t, filepath.Join(w.homeServer.inbox(), "report.txt")), fileHash(t, file); got != sent {
				t.Fatalf("home-server's inbox/report.txt has BLAKE3 %s, want %s", got, sent)
			}
		},
		"mesh agent share-terminal": func(t *testing.T, line string) {
			sh := startLine(t, w.laptop, line)
			sh.shareID(t)
			sh.typeIn(t, "echo shell-$((40+2))\n")
			sh.waitOutput(t, "shell-42")
			sh.typeIn(t, "exit 3\n")
			if code := sh.exit(t); code != 3 {
				t.Fatalf("%s exited %d after the shell's exit 3", line, code)
			}
		},
		"mesh agent share-terminal --allow bob --allow-input -- htop": func(t *testing.T, line string) {
			w.login(t, w.bobs, "bob", "secret1")
			sh := startLine(t, w.laptop, line)
			id := sh.shareID(t)
			sh.waitOutput(t, "htop stand-in")
			bob := startLine(t, w.bobs, "mesh agent join-terminal "+id)
			bob.waitOutput(t, "you may type")
			bob.waitOutput(t, "htop stand-in")
			bob.typeIn(t, "from bob\r")
			sh.waitOutput(t, "htop got: from bob")
			if code := sh.exit(t); code != 0 {
				t.Fatalf("%s exited %d", line, code)
			}
			if code := bob.exit(t); code != 0 || !strings.Contains(bob.out.String(), "share ended") {
				t.Fatalf("bob's join-terminal after the share ended: exit %d\n%s", code, bob.out.String())
			}
		},
		"mesh agent join-terminal k7xq2mnbz4": func(t *testing.T, line string) {
			sh := startLine(t, w.laptop, "mesh agent share-terminal --share-id k7xq2mnbz4 --allow bob -- sh")
			sh.waitOutput(t, "join-terminal k7xq2mnbz4")
			bob := startLine(t, w.bobs, line)
			bob.waitOutput(t, "read-only")
			sh.typeIn(t, "echo hello-$((6*7))\n")
			bob.waitOutput(t, "hello-42")
			bob.typeIn(t, "\x1d") // Ctrl-]
			if code := bob.exit(t); code != 0 || !strings.Contains(bob.out.String(), "detached") {
				t.Fatalf("%s, then Ctrl-]: exit %d\n%s", line, code, bob.out.String())
			}
			sh.typeIn(t, "exit\n")
			if code := sh.exit(t); code != 0 {
				t.Fatalf("share-terminal exited %d", code)
			}
		},
	}
}

// post sends body to the server's path with tok (if any), wants status and
// decodes the answer into out.
func (w *readmeWorld) post(t *testing.T, path, tok, body string, status int, out any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, w.srv.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := w.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(out); err != nil || res.StatusCode != status {
		t.Fatalf("POST %s = %d, %v; want %d", path, res.StatusCode, err, status)
	}
}

// apiAuth posts body to /api/auth/{what} and returns the access token.
func (w *readmeWorld) apiAuth(t *testing.T, what, body string, status int) string {
	t.Helper()
	var a struct {
		AccessToken string `json:"access_token"`
	}
	w.post(t, "/api/auth/"+what, "", body, status, &a)
	return a.AccessToken
}
