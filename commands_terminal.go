package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"mesh/agent"
)

func shareTerminalCommand(cfgFlags func(...cli.Flag) []cli.Flag) *cli.Command {
	return &cli.Command{Name: "share-terminal", Usage: "run a command (default: your shell) and let others watch it, or type",
		ArgsUsage: commandLineUsage,
		Description: "Prints a share id. Others join from a shell with 'mesh agent join-terminal ID'\n" +
			"(directly over QUIC) or watch in the web app. Your own user may always watch; others\n" +
			"only when named with --allow. Viewers type only with --allow-input. Your terminal stays\n" +
			"the command's terminal (Ctrl-C goes to the command); the share ends when the command\n" +
			"exits, and share-terminal exits with its exit code. Its own flags go\n" +
			"before COMMAND; everything after COMMAND is the command's, flags included.",
		Flags: cfgFlags(
			&cli.BoolFlag{Name: "allow-input", Usage: "let viewers type into the terminal"},
			&cli.StringSliceFlag{Name: "allow", Usage: "another `USER` who may watch (repeatable)"},
			&cli.BoolFlag{Name: "no-web", Usage: "no browser watching: only shell joiners (direct), and the server never sees the output"},
			&cli.StringFlag{Name: "record", Usage: "write the session to `FILE` as asciicast v2 (output and resizes, never input)"},
			&cli.StringFlag{Name: "share-id", Usage: "use this share `ID` (letters, digits, - and _) instead of a random one"},
			&cli.StringFlag{Name: "quic-listen", Usage: "UDP `HOST:PORT` for viewers (default: [agent] quic_listen, or any free port if the daemon holds it)"}),
		Action: runShareTerminal}
}

func joinTerminalCommand(cfgFlags func(...cli.Flag) []cli.Flag) *cli.Command {
	return &cli.Command{Name: "join-terminal", Usage: "watch a shared terminal (and type, if allowed), directly over QUIC",
		ArgsUsage:   "SHARE_ID",
		Description: "Ctrl-] detaches; the share goes on, and the same command rejoins.",
		Flags:       cfgFlags(),
		Action:      runJoinTerminal}
}

func runShareTerminal(c *cli.Context) error {
	cfg, path, log, err := agentSetup(c)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", cfg.QUICListen)
	if err != nil && c.IsSet("quic-listen") {
		return fmt.Errorf("listen for viewers on %s: %w", cfg.QUICListen, err)
	} else if err != nil { // the daemon holds it: viewers learn the port from the server anyway
		host, _, _ := net.SplitHostPort(cfg.QUICListen)
		fallback := net.JoinHostPort(host, "0")
		if pc, err = net.ListenPacket("udp", fallback); err != nil {
			return fmt.Errorf("listen for viewers on %s: %w (set --quic-listen)", fallback, err)
		}
	}
	code, err := agent.ShareTerminal(c.Context, cfg, filepath.Dir(path), pc, agent.ShareOptions{
		Command: c.Args().Slice(), AllowInput: c.Bool("allow-input"), Allow: c.StringSlice("allow"), NoWeb: c.Bool("no-web"),
		Record: c.String("record"), ShareID: c.String("share-id"),
		Stdin: os.Stdin, Stdout: c.App.Writer, Stderr: c.App.ErrWriter}, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "[mesh] share ended: exit code %d\n", code)
	if code != 0 {
		return cli.Exit("", code)
	}
	return nil
}

func runJoinTerminal(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("say which share to join: mesh agent join-terminal SHARE_ID")
	}
	cfg, path, log, err := agentSetup(c)
	if err != nil {
		return err
	}
	_, err = agent.JoinTerminal(c.Context, cfg, filepath.Dir(path), agent.JoinOptions{ShareID: c.Args().First(),
		Stdin: os.Stdin, Stdout: c.App.Writer, Stderr: c.App.ErrWriter}, log)
	return err
}
