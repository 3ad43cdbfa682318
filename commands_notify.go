package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"mesh/server"
)

func notifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "notify",
		Usage: "push notifications (Gotify)",
		Subcommands: []*cli.Command{
			{Name: "test", Usage: "send a test push and print how it went",
				Description: "Without --user: to the server's [notify.gotify] target. With --user: to that\n" +
					"user's own target (set in the web app), else the server's. Exits non-zero if the\n" +
					"push did not go through, with Gotify's status and what to check (never the\n" +
					"body of the answer: a user's target could be anything).",
				Flags:  append(configFlags(), &cli.StringFlag{Name: "user", Usage: "send to `USERNAME`'s target"}),
				Action: runNotifyTest},
		},
	}
}

func runNotifyTest(c *cli.Context) error {
	st, cfg, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	msg, err := server.SendTestPush(c.Context, cfg.Config, st, c.String("user"))
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, msg)
	return nil
}
