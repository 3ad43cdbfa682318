package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/sync/errgroup"
)

// newTLS builds the listener's TLS setup from the config: nil, nil when the
// server speaks cleartext HTTP; with ACME also the manager whose HTTP
// handler answers on acme_http. It reads the certificate files (or creates
// the ACME cache, 0700) now, so that a bad setting fails at start.
func newTLS(cfg Config, log *slog.Logger) (*tls.Config, *autocert.Manager, error) {
	h := cfg.HTTP
	switch {
	case h.ACME():
		dir := cfg.acmeCache()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("server.acme_cache %s: %w", dir, err)
		}
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS, // configuring acme_domains is the operator's acceptance
			Cache:      autocert.DirCache(dir),
			HostPolicy: autocert.HostWhitelist(h.ACMEDomains...),
			Email:      h.ACMEEmail,
		}
		tc := m.TLSConfig() // GetCertificate, and acme-tls/1 for tls-alpn-01 challenges
		tc.MinVersion = tls.VersionTLS12
		return tc, m, nil
	case h.TLSCert != "":
		f := &certFiles{cert: h.TLSCert, key: h.TLSKey, log: log}
		var err error
		if f.cur, f.mod, err = f.load(); err != nil {
			return nil, nil, err
		}
		return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: f.getCertificate}, nil, nil
	}
	return nil, nil, nil
}

// certFiles serves tls_cert and tls_key, reloading them when either file
// changes, so a renewed certificate (certbot, a cron job) is picked up
// without a restart.
type certFiles struct {
	cert, key string
	log       *slog.Logger

	mu  sync.Mutex // guards cur, mod
	cur *tls.Certificate
	mod [2]time.Time // modification times of cert and key when cur was loaded
}

// load reads both files, naming the one that fails.
func (f *certFiles) load() (*tls.Certificate, [2]time.Time, error) {
	var mod [2]time.Time
	var pem [2][]byte
	for i, p := range []struct{ key, path string }{{"server.tls_cert", f.cert}, {"server.tls_key", f.key}} {
		fi, err := os.Stat(p.path)
		if err == nil {
			mod[i] = fi.ModTime()
			pem[i], err = os.ReadFile(p.path)
		}
		if err != nil {
			return nil, mod, fmt.Errorf("%s: %w", p.key, err)
		}
	}
	c, err := tls.X509KeyPair(pem[0], pem[1])
	if err != nil {
		return nil, mod, fmt.Errorf("server.tls_cert %s with tls_key %s: %w (want a PEM certificate chain and its PEM private key)", f.cert, f.key, err)
	}
	return &c, mod, nil
}

func (f *certFiles) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var mod [2]time.Time
	for i, p := range []string{f.cert, f.key} {
		if fi, err := os.Stat(p); err == nil {
			mod[i] = fi.ModTime()
		}
	}
	if mod == f.mod {
		return f.cur, nil
	}
	f.mod = mod // a failed reload is retried at the next change, not at every handshake
	c, loaded, err := f.load()
	if err != nil {
		f.log.Warn("TLS certificate changed but does not load; still serving the old one", "err", err)
		return f.cur, nil
	}
	f.cur, f.mod = c, loaded
	f.log.Info("TLS certificate reloaded", "cert", f.cert)
	return f.cur, nil
}

// ServeACME answers on ln, the acme_http address (the CA calls port 80),
// until ctx is done: http-01 challenges, and a redirect to HTTPS for
// everything else. It closes ln. Run it beside [Server.Serve] when
// [HTTPConfig.ACME] is true; otherwise it returns an error at once.
func (s *Server) ServeACME(ctx context.Context, ln net.Listener) error {
	if s.acme == nil {
		_ = ln.Close() // nothing will serve it; the error below is what matters
		return errors.New("serve acme: server.acme_domains is not set")
	}
	hs := &http.Server{
		Handler:           s.acme.HTTPHandler(s.redirectHTTPS()),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.With("component", "acme_http").Handler(), slog.LevelDebug),
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve acme http on %s: %w", ln.Addr(), err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.HTTP.ShutdownTimeout)
		defer cancel()
		return hs.Shutdown(sctx)
	})
	return g.Wait()
}

// redirectHTTPS sends a browser that typed http:// to the same page over
// HTTPS: public_url when it is set, else the host it asked for with the
// listen port. Other methods get 400: their bodies already crossed in clear.
func (s *Server) redirectHTTPS() http.Handler {
	base := strings.TrimRight(s.cfg.HTTP.PublicURL, "/")
	_, port, _ := net.SplitHostPort(s.cfg.HTTP.Listen) // checked by Validate
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "use https://", http.StatusBadRequest)
			return
		}
		target := base
		if target == "" {
			host := strings.Trim(r.Host, "[]")
			if h, _, err := net.SplitHostPort(r.Host); err == nil {
				host = h
			}
			if port != "443" {
				host = net.JoinHostPort(host, port)
			} else if strings.Contains(host, ":") {
				host = "[" + host + "]" // a bare IPv6 literal
			}
			target = "https://" + host
		}
		http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusFound)
	})
}
