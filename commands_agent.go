package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"mesh/agent"
	"mesh/transfer"
)

func agentCommand() *cli.Command {
	cfgFlags := func(extra ...cli.Flag) []cli.Flag {
		return append([]cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "agent config `FILE` (default $XDG_CONFIG_HOME/mesh/agent.toml; env MESH_CONFIG)"},
			&cli.StringFlag{Name: "log-level", Usage: "`LEVEL` debug, info, warn or error (env MESH_LOG)"},
			&cli.StringFlag{Name: "log-format", Usage: "`FORMAT` text or json"},
			&cli.BoolFlag{Name: "insecure", Usage: "allow http:// to a server on another machine: trusted LAN only (login saves it; env MESH_AGENT_INSECURE)"},
		}, extra...)
	}
	return &cli.Command{
		Name:  "agent",
		Usage: "run on each of your machines: receive and send files, share terminals, directly over QUIC",
		Subcommands: []*cli.Command{
			{Name: "login", Usage: "enrol this machine as one of your devices",
				Description: "Asks for your password (or reads it with --password-stdin), registers this\n" +
					"machine with its QUIC certificate, and saves the device token in agent.toml (0600).",
				Flags: cfgFlags(
					&cli.StringFlag{Name: "server", Required: true, Usage: "the mesh server's `URL`, e.g. https://home.example.org (http:// only to this machine, or with --insecure)"},
					&cli.StringFlag{Name: "username", Required: true, Usage: "your mesh `USERNAME`"},
					&cli.StringFlag{Name: "device", Usage: "this machine's device `NAME` (default: the host name)"},
					&cli.BoolFlag{Name: "password-stdin", Usage: "read the password from standard input"}),
				Action: runAgentLogin},
			{Name: "run", Usage: "stay connected to the server and receive files into the inbox",
				Flags: cfgFlags(
					&cli.StringFlag{Name: "inbox", Usage: "`DIR` for received files (env MESH_AGENT_INBOX)"},
					&cli.StringFlag{Name: "quic-listen", Usage: "UDP `HOST:PORT` for peers (default 0.0.0.0:5000; env MESH_AGENT_QUIC_LISTEN)"}),
				Action: runAgentRun},
			{Name: "send-file", Usage: "send files or folders to one of your devices, directly over QUIC",
				ArgsUsage: "PATH...",
				Description: "mesh agent send-file --to DEVICE PATH...\n" +
					"   Exits 0 only after the receiver confirmed every file's BLAKE3. Rerun the same\n" +
					"   command after an interruption: it resumes from the verified chunks.\n" +
					"mesh agent send-file --session-id ID --peer-addr HOST:PORT --token TOKEN --file PATH\n" +
					"   Low-level form, with a session already issued by POST /api/p2p/sessions. The\n" +
					"   target's certificate pin comes from the server (or --fingerprint FP).",
				Flags: cfgFlags(
					&cli.StringFlag{Name: "to", Usage: "target `DEVICE` id"},
					&cli.StringFlag{Name: "session-id", Usage: "low-level: session `ID`"},
					&cli.StringFlag{Name: "peer-addr", Usage: "low-level: the target's QUIC `HOST:PORT`"},
					&cli.StringFlag{Name: "token", Usage: "low-level: the session `TOKEN`"},
					&cli.StringFlag{Name: "fingerprint", Usage: "low-level: the target's certificate `FP` (sha256:…); default: ask the server"},
					&cli.StringSliceFlag{Name: "file", Usage: "low-level: a `PATH` to send (repeatable)"}),
				Action: runAgentSend},
			shareTerminalCommand(cfgFlags),
			joinTerminalCommand(cfgFlags),
			{Name: "doctor", Usage: "check what this machine can reach: the server, its STUN and relay, NAT, a device",
				Description: agent.DoctorHelp,
				Flags:       cfgFlags(&cli.StringFlag{Name: "to", Usage: "also dial a file session to `DEVICE` (no file is sent)"}),
				Action: func(c *cli.Context) error {
					cfg, path, log, err := agentSetup(c)
					if err != nil {
						return err
					}
					return agent.Doctor(c.Context, cfg, filepath.Dir(path), c.String("to"), c.App.Writer, log)
				}},
		},
	}
}

// agentSetup loads the agent's config: --config, MESH_CONFIG, or agent.toml
// in the config dir when it exists; the key and certificate live beside it.
func agentSetup(c *cli.Context) (agent.Config, string, *slog.Logger, error) {
	path := c.String("config")
	if path == "" {
		path = os.Getenv("MESH_CONFIG")
	}
	if path == "" {
		dir, err := agent.ConfigDir()
		if err != nil {
			return agent.Config{}, "", nil, err
		}
		path = filepath.Join(dir, "agent.toml")
	}
	file := path
	if _, err := os.Stat(path); err != nil {
		file = "" // not logged in yet: defaults and environment only
	}
	fc, err := loadConfigFile(file)
	if err != nil {
		return agent.Config{}, "", nil, err
	}
	for flag, dst := range map[string]*string{"inbox": &fc.Agent.Inbox, "quic-listen": &fc.Agent.QUICListen,
		"log-level": &fc.Log.Level, "log-format": &fc.Log.Format} {
		if c.IsSet(flag) {
			*dst = c.String(flag)
		}
	}
	if c.Bool("insecure") {
		fc.Agent.Insecure = true
	}
	log, err := newLogger(fc.Log, c.App.ErrWriter)
	return fc.Agent, path, log, err
}

func runAgentLogin(c *cli.Context) error {
	cfg, path, _, err := agentSetup(c)
	if err != nil {
		return err
	}
	if err := agent.CheckServerURL(c.String("server"), cfg.Insecure); err != nil {
		return err // before asking for a password that would cross in clear
	}
	pw, err := readPassword(c, "Password for "+c.String("username")+": ")
	if err != nil {
		return err
	}
	cfg, err = agent.Login(c.Context, agent.LoginOptions{Server: c.String("server"), Username: c.String("username"),
		Password: pw, DeviceID: c.String("device"), Dir: filepath.Dir(path)}, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "enrolled %s as a device of %s; settings saved in %s\nnext: mesh agent run\n", cfg.DeviceID, cfg.Username, path)
	return nil
}

func runAgentRun(c *cli.Context) error {
	cfg, path, log, err := agentSetup(c)
	if err != nil {
		return err
	}
	d, err := agent.NewDaemon(cfg, filepath.Dir(path), log)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", cfg.QUICListen)
	if err != nil {
		return fmt.Errorf("listen for peers on %s: %w (set [agent] quic_listen or --quic-listen)", cfg.QUICListen, err)
	}
	return d.Run(c.Context, pc)
}

func runAgentSend(c *cli.Context) error {
	cfg, path, log, err := agentSetup(c)
	if err != nil {
		return err
	}
	o := agent.SendOptions{Progress: c.App.ErrWriter, TTY: term.IsTerminal(int(os.Stderr.Fd()))}
	var res transfer.Result
	switch {
	case c.String("to") != "" && c.NArg() > 0:
		o.Paths = c.Args().Slice()
		res, err = agent.SendTo(c.Context, cfg, filepath.Dir(path), c.String("to"), o, log)
	case c.String("session-id") != "" && len(c.StringSlice("file")) > 0:
		o.Paths = c.StringSlice("file")
		res, err = agent.SendDirect(c.Context, cfg, filepath.Dir(path), agent.DirectSession{SessionID: c.String("session-id"),
			Token: c.String("token"), PeerAddr: c.String("peer-addr"), Fingerprint: c.String("fingerprint")}, o, log)
	default:
		return fmt.Errorf("say what to send: --to DEVICE PATH..., or --session-id ID --peer-addr HOST:PORT --token T --file PATH")
	}
	for _, f := range res.Files {
		fmt.Fprintf(c.App.Writer, "%-8s %s  %d bytes  blake3:%s\n", f.Status, f.Name, f.Size, f.BLAKE3)
	}
	if err != nil {
		return err
	}
	line := fmt.Sprintf("sent %d files, %d bytes in %s (%.1f MB/s), directly (peer-to-peer QUIC)",
		len(res.Files), res.Bytes, res.Duration.Round(time.Millisecond), float64(res.Bytes)/1e6/max(res.Duration.Seconds(), 1e-9))
	if res.Resumed > 0 {
		line += fmt.Sprintf("; resumed after %d bytes already verified", res.Resumed)
	}
	fmt.Fprintln(c.App.Writer, line)
	return nil
}
