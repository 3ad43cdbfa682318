// Command mesh is one binary for a self-hosted control plane (mesh serve)
// and the agent that runs on each of a user's machines (mesh agent).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"mesh/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := newApp()
	if err := app.RunContext(ctx, reorderArgs(app, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "mesh:", err)
		stop()
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "mesh",
		Usage: "self-hosted chat, calls, file transfer and terminal sharing in one binary",
		Description: "Run 'mesh serve' on a home server, open the URL it prints, and register:\n" +
			"the first account becomes admin. Run 'mesh user invite' to let others join.",
		Version:         server.Version,
		HideVersion:     true,
		Suggest:         true,
		HideHelpCommand: true,
		Commands: []*cli.Command{serveCommand(), backupCommand(), userCommand(), notifyCommand(), agentCommand(), {
			Name:  "version",
			Usage: "print the version of this binary",
			Action: func(c *cli.Context) error {
				fmt.Fprintf(c.App.Writer, "mesh %s\n", server.Version)
				return nil
			},
		}},
	}
}

// configFlags are the flags every command that reads the config file takes.
func configFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "TOML config `FILE` (env MESH_CONFIG); see config.example.toml"},
		&cli.StringFlag{Name: "db", Usage: "SQLite database `PATH` (default mesh.db; env MESH_SERVER_DB)"},
		&cli.StringFlag{Name: "log-level", Usage: "`LEVEL` debug, info, warn or error (env MESH_LOG)"},
		&cli.StringFlag{Name: "log-format", Usage: "`FORMAT` text or json (env MESH_LOG_FORMAT)"},
	}
}

// setup loads the config (flags over env over file over defaults) and builds the logger.
func setup(c *cli.Context) (fileConfig, *slog.Logger, error) {
	cfg, err := loadConfig(c.String("config"))
	if err != nil {
		return cfg, nil, err
	}
	for flag, dst := range map[string]*string{
		"db": &cfg.HTTP.DB, "listen": &cfg.HTTP.Listen, "public-url": &cfg.HTTP.PublicURL,
		"tls-cert": &cfg.HTTP.TLSCert, "tls-key": &cfg.HTTP.TLSKey, "acme-cache": &cfg.HTTP.ACMECache,
		"acme-email": &cfg.HTTP.ACMEEmail, "acme-http": &cfg.HTTP.ACMEHTTP,
		"log-level": &cfg.Log.Level, "log-format": &cfg.Log.Format,
	} {
		if c.IsSet(flag) {
			*dst = c.String(flag)
		}
	}
	if c.IsSet("acme-domain") {
		cfg.HTTP.ACMEDomains = c.StringSlice("acme-domain")
	}
	log, err := newLogger(cfg.Log, c.App.ErrWriter)
	return cfg, log, err
}

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

func userCommand() *cli.Command {
	pwStdin := &cli.BoolFlag{Name: "password-stdin", Usage: "read the password from standard input instead of prompting"}
	return &cli.Command{
		Name:  "user",
		Usage: "manage accounts directly in the server's database (works while the server runs)",
		Subcommands: []*cli.Command{
			{Name: "add", Usage: "create an account", ArgsUsage: "USERNAME",
				Flags:  append(configFlags(), pwStdin, &cli.BoolFlag{Name: "admin", Usage: "make the account an admin"}),
				Action: runUserAdd},
			{Name: "passwd", Usage: "set an account's password", ArgsUsage: "USERNAME",
				Flags: append(configFlags(), pwStdin), Action: runUserPasswd},
			{Name: "list", Usage: "list accounts", Flags: configFlags(), Action: runUserList},
			{Name: "invite", Usage: "print a single-use invite code for registration",
				Flags: configFlags(), Action: runUserInvite},
		},
	}
}

func newLogger(lc logConfig, w interface{ Write([]byte) (int, error) }) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(lc.Level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", lc.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch lc.Format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", lc.Format)
}
