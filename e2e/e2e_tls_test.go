package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTLSEndToEnd runs the real binaries: `mesh serve --tls-cert --tls-key`
// prints an https:// URL; an agent that trusts the certificate through
// SSL_CERT_FILE logs in and stays online over wss; an agent told to use
// http:// to another machine is refused before it asks for a password.
func TestTLSEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := writeTestCert(t, dir)
	srv := runTLSServer(t, dir, "--tls-cert", certFile, "--tls-key", keyFile)
	client := trustingClient(t, certFile)

	res, err := client.Post(srv.url+"/api/auth/register", "application/json", strings.NewReader(`{"username":"alice","password":"secret1"}`))
	if err != nil {
		t.Fatalf("register over HTTPS: %v", err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || err != nil {
		t.Fatalf("register over HTTPS = %d, %v", res.StatusCode, err)
	}
	if res.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("HTTPS answer without Strict-Transport-Security")
	}

	m := newMachine(t, "laptop")
	m.env = append(m.env, "SSL_CERT_FILE="+certFile)
	m.login(t, srv.url, "alice")
	p := exec.Command(meshBin, "agent", "run")
	p.Dir, p.Env = m.home, append(cleanEnv(), m.env...)
	logs := &syncBuffer{}
	p.Stdout, p.Stderr = logs, logs
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	t.Cleanup(func() {
		_ = p.Process.Signal(syscall.SIGTERM) // may have exited already
		<-done
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	waitOnlineWith(t, client, srv.url, tok.AccessToken, "laptop")

	out, err := mesh(t, m.home, "", m.env, "agent", "login", "--server", "http://192.0.2.10:8000", "--username", "alice", "--password-stdin")
	if err == nil || !strings.Contains(out, "https://") || !strings.Contains(out, "--insecure") {
		t.Fatalf("agent login over http:// to another machine = %q, %v; want a refusal naming https:// and --insecure", out, err)
	}
}

// TestTLSServeFlagErrors: half or conflicting TLS flags, and files that do
// not load, stop `mesh serve` with an error that names them.
func TestTLSServeFlagErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := writeTestCert(t, dir)
	missing := filepath.Join(dir, "missing.pem")
	env := []string{"MESH_AUTH_BCRYPT_COST=4"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", certFile}, "tls_key"},
		{[]string{"--tls-cert", missing, "--tls-key", keyFile}, missing},
		{[]string{"--tls-cert", certFile, "--tls-key", keyFile, "--acme-domain", "mesh.example.org"}, "choose one"},
		{[]string{"--acme-domain", "https://mesh.example.org"}, "acme_domains"},
	} {
		args := append([]string{"serve", "--listen", "127.0.0.1:0"}, tc.args...)
		if out, err := mesh(t, dir, "", env, args...); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("mesh %v = %q, %v; want an error naming %s", args, out, err, tc.want)
		}
	}
}

// runTLSServer starts `mesh serve` over HTTPS in dir and waits for its https:// URL.
func runTLSServer(t *testing.T, dir string, args ...string) *meshServer {
	t.Helper()
	r := startServer(t, serverOpts{dir: dir, env: []string{"MESH_AUTH_BCRYPT_COST=4", "MESH_AUTH_REGISTRATION=open"}, args: args})
	if !strings.HasPrefix(r.url, "https://") {
		t.Fatalf("mesh serve with TLS printed %q, want an https:// URL", r.url)
	}
	return r
}

func trustingClient(t *testing.T, certFile string) *http.Client {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("no certificate in %s", certFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// waitOnlineWith is waitOnline through client (which trusts the server's certificate).
func waitOnlineWith(t *testing.T, client *http.Client, server, tok, device string) {
	t.Helper()
	eventually(t, 20*time.Second, func() bool {
		req, err := http.NewRequest(http.MethodGet, server+"/api/devices", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("list devices: %v", err)
		}
		var l struct {
			Devices []struct {
				DeviceID string `json:"device_id"`
				Online   bool   `json:"online"`
			} `json:"devices"`
		}
		err = json.NewDecoder(res.Body).Decode(&l)
		res.Body.Close()
		if err != nil {
			t.Fatalf("list devices: %v", err)
		}
		for _, d := range l.Devices {
			if d.DeviceID == device && d.Online {
				return true
			}
		}
		return false
	}, "device %s not online within 20 s", device)
}

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its key into dir.
func writeTestCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	return writeCertFor(t, dir, "localhost")
}
