// Command mesh is one binary for a self-hosted control plane (mesh serve)
// and the agent that runs on each of a user's machines (mesh agent).
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"mesh/protocol"
	"mesh/store"
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
		Version:         protocol.Version,
		HideVersion:     true,
		Suggest:         true,
		HideHelpCommand: true,
		Commands: []*cli.Command{serveCommand(), backupCommand(), userCommand(), notifyCommand(), agentCommand(), {
			Name:  "version",
			Usage: "print the version of this binary",
			Action: func(c *cli.Context) error {
				fmt.Fprintf(c.App.Writer, "mesh %s\n", protocol.Version)
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

// openStore opens the database named by the config for an admin command.
func openStore(c *cli.Context) (*store.Store, fileConfig, error) {
	cfg, _, err := setup(c)
	if err != nil {
		return nil, cfg, err
	}
	if _, err := os.Stat(cfg.HTTP.DB); err != nil {
		return nil, cfg, fmt.Errorf("database %s: %w (run this where mesh serve runs, or pass --db)", cfg.HTTP.DB, err)
	}
	st, err := store.Open(c.Context, cfg.HTTP.DB)
	return st, cfg, err
}

// readPassword reads a password without echo from a terminal (asking twice),
// or one line from stdin with --password-stdin.
func readPassword(c *cli.Context, prompt string) (string, error) {
	if c.Bool("password-stdin") || !term.IsTerminal(int(os.Stdin.Fd())) {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	ask := func(p string) (string, error) {
		fmt.Fprint(c.App.ErrWriter, p)
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(c.App.ErrWriter)
		return string(b), err
	}
	pw, err := ask(prompt)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	again, err := ask("Again: ")
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if pw != again {
		return "", errors.New("passwords differ; nothing changed")
	}
	return pw, nil
}
