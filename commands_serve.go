package main

import (
	"fmt"
	"net"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"mesh/protocol"
	"mesh/server"
	"mesh/store"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the control plane: HTTP API, WebSocket hub and web app",
		Description: "With no flags: database mesh.db in this directory, listening on\n" +
			"http://127.0.0.1:8000. Stops cleanly on Ctrl-C or SIGTERM.\n" +
			"HTTPS: --tls-cert and --tls-key, or --acme-domain for certificates from Let's\n" +
			"Encrypt (the CA must reach port 80, or 443 when --listen is :443).",
		Flags: append(configFlags(),
			&cli.StringFlag{Name: "listen", Usage: "`HOST:PORT` to listen on (default 127.0.0.1:8000; env MESH_SERVER_LISTEN)"},
			&cli.StringFlag{Name: "public-url", Usage: "`URL` users reach the server at (env MESH_SERVER_PUBLIC_URL)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "serve HTTPS with this PEM certificate chain `FILE`, reloaded when it changes (env MESH_SERVER_TLS_CERT)"},
			&cli.StringFlag{Name: "tls-key", Usage: "PEM private key `FILE` of --tls-cert (env MESH_SERVER_TLS_KEY)"},
			&cli.StringSliceFlag{Name: "acme-domain", Usage: "serve HTTPS with a Let's Encrypt certificate for `NAME`, accepting its terms (repeatable; env MESH_SERVER_ACME_DOMAINS)"},
			&cli.StringFlag{Name: "acme-cache", Usage: "`DIR` for the ACME account key and certificates (default: the database path + .acme)"},
			&cli.StringFlag{Name: "acme-email", Usage: "`EMAIL` the CA may write to about your certificates (optional)"},
			&cli.StringFlag{Name: "acme-http", Usage: "`HOST:PORT` for ACME http-01 challenges and the redirect to HTTPS (default :80)"},
		),
		Action: runServe,
	}
}

func runServe(c *cli.Context) error {
	cfg, log, err := setup(c)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	st, err := store.Open(c.Context, cfg.HTTP.DB)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("close database", "err", err)
		} else {
			log.Info("database closed", "path", cfg.HTTP.DB)
		}
	}()
	srv, err := server.New(cfg.Config, st, log)
	if err != nil {
		return err
	}
	server.WarnFileModes(log, cfg.SensitiveFiles()...) // after New: it creates the token key
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another server running? pick one with --listen)", cfg.HTTP.Listen, err)
	}
	var acmeLn net.Listener
	if cfg.HTTP.ACME() {
		if acmeLn, err = net.Listen("tcp", cfg.HTTP.ACMEHTTP); err != nil {
			_ = ln.Close() // not served; the listen error is what matters
			return fmt.Errorf("listen on %s for ACME http-01: %w (ports below 1024 need root or CAP_NET_BIND_SERVICE; "+
				"or forward port 80 to another port and set --acme-http)", cfg.HTTP.ACMEHTTP, err)
		}
	}
	log.Info("mesh serving", "version", protocol.Version, "addr", ln.Addr().String(), "tls", cfg.HTTP.TLS(), "db", cfg.HTTP.DB)
	if cfg.HTTP.PublicURL == "" {
		cfg.HTTP.Listen = ln.Addr().String() // the real port when asked for :0
	}
	fmt.Fprintf(c.App.Writer, "mesh is running: open %s in a browser (Ctrl-C stops it)\n", cfg.URL())
	if acmeLn == nil {
		return srv.Serve(c.Context, ln)
	}
	g, ctx := errgroup.WithContext(c.Context)
	g.Go(func() error { return srv.Serve(ctx, ln) })
	g.Go(func() error { return srv.ServeACME(ctx, acmeLn) })
	return g.Wait()
}
