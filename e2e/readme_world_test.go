package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// readmeHost is the server's name in the README's agent examples.
const readmeHost = "home.example.org"

// readmeExamples returns the lines of README.md's sh blocks that run
// `mesh user` or `mesh agent`, as written.
func readmeExamples(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	inSh := false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "```"):
			inSh = !inSh && line == "```sh"
		case inSh:
			cmd := strings.TrimPrefix(line, "./")
			if strings.HasPrefix(cmd, "mesh user ") || strings.HasPrefix(cmd, "mesh agent ") || cmd == "mesh user" || cmd == "mesh agent" {
				lines = append(lines, line)
			}
		}
	}
	if len(lines) == 0 {
		t.Fatal("README.md has no mesh user or mesh agent example in its sh blocks")
	}
	return lines
}

// exampleKey is an example line without its comment.
func exampleKey(line string) string {
	cmd, _, _ := strings.Cut(line, " #")
	return strings.TrimSpace(cmd)
}

// runLine runs line through sh in m's home, as a user would type it.
func runLine(t *testing.T, m machine, stdin, line string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Dir, cmd.Env, cmd.Stdin = m.home, append(cleanEnv(), m.env...), strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startLine is runLine for a command that keeps running: the test types
// into it and watches its output. sh may fork rather than exec, so the
// cleanup signals the whole process group.
func startLine(t *testing.T, m machine, line string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Dir, cmd.Env = m.home, append(cleanEnv(), m.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := startCmd(cmd, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) // may have exited already
		<-p.exited
		if t.Failed() {
			t.Logf("%s: %s\n%s", m.name, line, p.out.String())
		}
	})
	return p
}

// readmeMachine is a machine whose shell finds mesh (and tools in bin) on
// PATH, trusts certFile, and reaches readmeHost only through proxy.
func readmeMachine(t *testing.T, name, bin, certFile, proxy string) machine {
	t.Helper()
	m := newMachine(t, name)
	m.env = append(m.env, "HOME="+m.home, "SHELL=/bin/sh", "SSL_CERT_FILE="+certFile,
		"PATH="+filepath.Dir(meshBin)+string(os.PathListSeparator)+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HTTPS_PROXY="+proxy, "https_proxy="+proxy, "NO_PROXY=localhost", "no_proxy=localhost")
	return m
}

// writeCertFor writes a self-signed certificate for host and 127.0.0.1, and its key, into dir.
func writeCertFor(t *testing.T, dir, host string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{host},
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
	certFile, keyFile = filepath.Join(dir, host+".pem"), filepath.Join(dir, host+".key")
	for path, b := range map[string][]byte{
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// connectProxy stands for the network between the README's machines: an
// HTTP CONNECT proxy on loopback that takes host:443 to target and refuses
// anything else, so the examples' https://host works without DNS.
type connectProxy struct {
	host, target string
	wg           sync.WaitGroup
	mu           sync.Mutex // guards closed, conns, refused; held while adding to wg
	closed       bool
	conns        []net.Conn
	refused      []string
}

// startProxy serves p on 127.0.0.1 until the test ends and returns its URL.
func startProxy(t *testing.T, host, target string) (*connectProxy, string) {
	t.Helper()
	p := &connectProxy{host: host + ":443", target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	p.wg.Go(func() { _ = srv.Serve(ln) }) // returns ErrServerClosed at cleanup
	t.Cleanup(func() {
		_ = srv.Close() // closes the listener and connections not yet hijacked
		p.mu.Lock()
		p.closed = true
		for _, c := range p.conns {
			_ = c.Close() // the tunnels' ends: their copies return
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p, "http://" + ln.Addr().String()
}

func (p *connectProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect || r.Host != p.host {
		p.mu.Lock()
		p.refused = append(p.refused, r.Method+" "+r.Host)
		p.mu.Unlock()
		http.Error(w, "this proxy reaches only "+p.host, http.StatusForbidden)
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	down, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		_ = up.Close() // nothing to tunnel into
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_, _ = up.Close(), down.Close() // the test is over
		return
	}
	p.conns = append(p.conns, up, down)
	if _, err := fmt.Fprint(down, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		_, _ = up.Close(), down.Close() // the client went away
		return
	}
	p.wg.Go(func() {
		_, _ = io.Copy(up, rw) // ends when the client closes, or at cleanup
		_ = up.Close()
	})
	p.wg.Go(func() {
		_, _ = io.Copy(down, up) // ends when the server closes, or at cleanup
		_ = down.Close()
	})
}

// refusedHosts lists what the proxy was asked for besides host:443.
func (p *connectProxy) refusedHosts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.refused...)
}
