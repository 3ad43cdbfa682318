package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"mesh/server"
)

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
