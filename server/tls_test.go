package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mesh/protocol"
	"mesh/server"
	"mesh/store"
)

// writeCert writes a fresh self-signed certificate for 127.0.0.1 and
// localhost (named cn) and its key into dir, and returns the paths and a
// pool that trusts it.
func writeCert(t testing.TB, dir, cn string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeTLSFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeTLSFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func writeTLSFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsServer starts an open-registration server serving HTTPS with a fresh
// certificate; it returns the server, its host:port, and a client TLS
// config that trusts the certificate.
func tlsServer(t *testing.T) (*testServer, string, *tls.Config, string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, pool := writeCert(t, dir, "first")
	cfg := testConfig(t, dir)
	cfg.Auth.Registration = "open"
	cfg.HTTP.TLSCert, cfg.HTTP.TLSKey = certFile, keyFile
	ts := startServer(t, cfg)
	return ts, strings.TrimPrefix(ts.URL, "http://"), &tls.Config{RootCAs: pool}, dir
}

func httpsClient(t *testing.T, tc *tls.Config) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: tc.Clone(), ForceAttemptHTTP2: true} // the Transport adds h2 to its config
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestTLSServe runs the real server over HTTPS: register, a wss WebSocket
// to system.welcome, HSTS on answers; plain HTTP and TLS 1.1 are refused.
func TestTLSServe(t *testing.T) {
	t.Parallel()
	_, addr, tc, _ := tlsServer(t)
	client := httpsClient(t, tc)

	res, err := client.Post("https://"+addr+"/api/auth/register", "application/json",
		strings.NewReader(`{"username":"alice","password":"secret1"}`))
	if err != nil {
		t.Fatalf("register over HTTPS: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("register over HTTPS = %d %s, want 201", res.StatusCode, body)
	}
	if res.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("HTTPS answer has no Strict-Transport-Security; headers %v", res.Header)
	}
	var tok tokenAnswer
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token answer %s: %v", body, err)
	}

	d := websocket.Dialer{TLSClientConfig: tc.Clone(), HandshakeTimeout: waitLong}
	ws, _, err := d.Dial("wss://"+addr+"/ws?token="+tok.AccessToken, nil)
	if err != nil {
		t.Fatalf("dial wss: %v", err)
	}
	c := &wsClient{t: t, ws: ws, in: make(chan protocol.Envelope, 64), bin: make(chan []byte, 64), closed: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(func() { _ = ws.Close() })
	c.sendRaw([]byte(`{"type":"system.hello","device_id":"tls-device"}`))
	var w protocol.Welcome
	if err := c.waitFor(protocol.TypeSystemWelcome).Unmarshal(&w); err != nil || w.User.Username != "alice" {
		t.Fatalf("welcome over wss = %+v, %v", w, err)
	}

	// Plain HTTP to the HTTPS port gets no API answer.
	if res, err := http.Get("http://" + addr + "/healthz"); err == nil {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS port = %d %q, want 400 (or a failed request)", res.StatusCode, b)
		}
	}
	// TLS 1.1 is below MinVersion.
	if conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: tc.RootCAs, MaxVersion: tls.VersionTLS11}); err == nil {
		conn.Close()
		t.Errorf("TLS 1.1 handshake succeeded, want it refused")
	}
}

// TestTLSCertReload: replacing the certificate files (a renewal) changes
// what new connections get, without a restart.
func TestTLSCertReload(t *testing.T) {
	t.Parallel()
	_, addr, tc, dir := tlsServer(t)
	if cn := peerCN(t, addr, tc); cn != "first" {
		t.Fatalf("certificate CN = %q, want first", cn)
	}
	certFile, keyFile, pool := writeCert(t, dir, "renewed")
	later := time.Now().Add(time.Minute) // a different mtime even on coarse file systems
	for _, p := range []string{certFile, keyFile} {
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if cn := peerCN(t, addr, &tls.Config{RootCAs: pool}); cn != "renewed" {
		t.Fatalf("certificate CN after renewal = %q, want renewed", cn)
	}
}

func peerCN(t *testing.T, addr string, tc *tls.Config) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, tc)
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestTLSConfigValidate checks that half or conflicting settings are refused
// with the key named, and what URL() prints.
func TestTLSConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		set  func(*server.HTTPConfig)
		want string // substring of the error; "" = valid
		url  string // want URL(); "" = not checked
	}{
		{"files", func(h *server.HTTPConfig) { h.TLSCert, h.TLSKey = "c.pem", "k.pem" }, "", "https://127.0.0.1:8000"},
		{"acme", func(h *server.HTTPConfig) { h.ACMEDomains = []string{"mesh.example.org"} }, "", "https://mesh.example.org:8000"},
		{"acme on 443", func(h *server.HTTPConfig) { h.ACMEDomains, h.Listen = []string{"mesh.example.org"}, ":443" }, "", "https://mesh.example.org"},
		{"public url wins", func(h *server.HTTPConfig) {
			h.TLSCert, h.TLSKey, h.PublicURL = "c.pem", "k.pem", "https://mesh.example.org"
		}, "", "https://mesh.example.org"},
		{"cleartext", func(*server.HTTPConfig) {}, "", "http://127.0.0.1:8000"},
		{"cert only", func(h *server.HTTPConfig) { h.TLSCert = "c.pem" }, "server.tls_key", ""},
		{"key only", func(h *server.HTTPConfig) { h.TLSKey = "k.pem" }, "server.tls_cert", ""},
		{"both kinds", func(h *server.HTTPConfig) {
			h.TLSCert, h.TLSKey, h.ACMEDomains = "c.pem", "k.pem", []string{"mesh.example.org"}
		}, "choose one", ""},
		{"acme url", func(h *server.HTTPConfig) { h.ACMEDomains = []string{"https://mesh.example.org"} }, "server.acme_domains", ""},
		{"acme ip", func(h *server.HTTPConfig) { h.ACMEDomains = []string{"192.0.2.1"} }, "server.acme_domains", ""},
		{"acme http", func(h *server.HTTPConfig) { h.ACMEDomains, h.ACMEHTTP = []string{"mesh.example.org"}, "80" }, "server.acme_http", ""},
		{"acme email", func(h *server.HTTPConfig) { h.ACMEDomains, h.ACMEEmail = []string{"mesh.example.org"}, "me" }, "server.acme_email", ""},
		{"http public url", func(h *server.HTTPConfig) {
			h.TLSCert, h.TLSKey, h.PublicURL = "c.pem", "k.pem", "http://mesh.example.org"
		}, "server.public_url", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := server.DefaultConfig()
			tc.set(&cfg.HTTP)
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.want)
			}
			if tc.url != "" && cfg.URL() != tc.url {
				t.Errorf("URL() = %q, want %q", cfg.URL(), tc.url)
			}
		})
	}
}

// TestTLSBadFiles: New names the file that cannot be loaded.
func TestTLSBadFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, _ := writeCert(t, dir, "x")
	garbage := filepath.Join(dir, "garbage.pem")
	writeTLSFile(t, garbage, []byte("not a key"))
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct{ cert, key, want string }{
		{missing, keyFile, missing},
		{certFile, missing, missing},
		{certFile, garbage, garbage},
	} {
		cfg := testConfig(t, t.TempDir())
		cfg.HTTP.TLSCert, cfg.HTTP.TLSKey = tc.cert, tc.key
		st := openTLSStore(t, cfg)
		if _, err := server.New(cfg, st, tlsDiscardLog()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New with cert %s, key %s = %v, want an error naming %s", tc.cert, tc.key, err, tc.want)
		}
	}
}

func openTLSStore(t *testing.T, cfg server.Config) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), cfg.HTTP.DB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() }) // a test database
	return st
}

func tlsDiscardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestTLSACME builds the ACME setup without any network: the cache is
// made 0700, the acme_http listener redirects to HTTPS and answers
// challenges itself, and the main port speaks TLS.
func TestTLSACME(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.HTTP.Listen = "127.0.0.1:8443" // only for the redirect's port: startServer listens on :0
	cfg.HTTP.ACMEDomains = []string{"mesh.example.org"}
	ts := startServer(t, cfg)
	if fi, err := os.Stat(cfg.HTTP.DB + ".acme"); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("ACME cache %s.acme: %v, %v; want a 0700 directory", cfg.HTTP.DB, fi, err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.Srv.ServeACME(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeACME: %v", err)
		}
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		method, path string
		want         int
		location     string
	}{
		{http.MethodGet, "/rooms?x=1", http.StatusFound, "https://mesh.example.org:8443/rooms?x=1"},
		{http.MethodPost, "/api/auth/login", http.StatusBadRequest, ""},
		{http.MethodGet, "/.well-known/acme-challenge/unknown-token", http.StatusNotFound, ""},
	} {
		req, err := http.NewRequest(tc.method, "http://"+ln.Addr().String()+tc.path, bytes.NewReader(nil))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "mesh.example.org"
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s on acme_http: %v", tc.method, tc.path, err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want || res.Header.Get("Location") != tc.location {
			t.Errorf("%s %s on acme_http = %d Location %q, want %d %q", tc.method, tc.path,
				res.StatusCode, res.Header.Get("Location"), tc.want, tc.location)
		}
	}

	// The main port speaks TLS: a plain request gets Go's "HTTP request to
	// an HTTPS server" 400, and a name outside acme_domains no certificate
	// (the host policy refuses it before the CA would be asked).
	if res, err := http.Get(ts.URL + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the ACME TLS port = %d, want 400", res.StatusCode)
		}
	}
	_, err = tls.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"), &tls.Config{ServerName: "other.example.org", InsecureSkipVerify: true})
	if err == nil {
		t.Errorf("TLS handshake for a name outside acme_domains succeeded")
	}
}

// TestServeACMEWithoutACME: ServeACME refuses a server without acme_domains.
func TestServeACMEWithoutACME(t *testing.T) {
	t.Parallel()
	ts := openServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Srv.ServeACME(context.Background(), ln); err == nil || !strings.Contains(err.Error(), "acme_domains") {
		t.Fatalf("ServeACME without ACME = %v, want an error naming acme_domains", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listener after a refused ServeACME: Accept = %v, want it closed", err)
	}
}
