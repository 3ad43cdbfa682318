package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"
	"golang.org/x/term"

	"mesh/server"
	"mesh/store"
)

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
	log.Info("mesh serving", "version", server.Version, "addr", ln.Addr().String(), "tls", cfg.HTTP.TLS(), "db", cfg.HTTP.DB)
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

func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("want exactly one %s; see 'mesh user %s --help'", what, c.Command.Name)
	}
	return c.Args().First(), nil
}

func runUserAdd(c *cli.Context) error {
	name, err := oneArg(c, "USERNAME")
	if err != nil {
		return err
	}
	st, cfg, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	pw, err := readPassword(c, "Password for "+name+": ")
	if err != nil {
		return err
	}
	u, err := server.AddUser(c.Context, st, cfg.Auth, name, pw, c.Bool("admin"))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "added %s (id %d, admin %t)\n", u.Username, u.ID, u.IsAdmin)
	return nil
}

func runUserPasswd(c *cli.Context) error {
	name, err := oneArg(c, "USERNAME")
	if err != nil {
		return err
	}
	st, cfg, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	pw, err := readPassword(c, "New password for "+name+": ")
	if err != nil {
		return err
	}
	if err := server.SetPassword(c.Context, st, cfg.Auth, name, pw); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "password of %s changed\n", strings.ToLower(name))
	return nil
}

func runUserList(c *cli.Context) error {
	st, _, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	us, err := st.Users(c.Context)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tUSERNAME\tADMIN\tCREATED")
	for _, u := range us {
		fmt.Fprintf(w, "%d\t%s\t%t\t%s\n", u.ID, u.Username, u.IsAdmin, u.CreatedAt.Format("2006-01-02 15:04"))
	}
	return w.Flush()
}

func runUserInvite(c *cli.Context) error {
	st, cfg, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	code, err := server.CreateInvite(c.Context, st, cfg.Auth)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s\n(single use, valid for %s; give it to the person registering)\n", code, cfg.Auth.InviteTTL)
	return nil
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
