package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"golang.org/x/term"

	"mesh/terminal"
)

// JoinOptions are the inputs of `mesh agent join-terminal`.
type JoinOptions struct {
	ShareID string
	Stdin   *os.File  // keystrokes; raw mode while joined if it is a terminal
	Stdout  io.Writer // the shared screen
	Stderr  io.Writer // notes: joined, detached, ended
}

// JoinTerminal asks the server for a terminal session with share ShareID and
// connects straight to the sharing agent over QUIC. It returns when the
// share ends (with the command's exit code in the status), when the user
// detaches with [DetachKey], or with an error when the connection is lost.
// No daemon needs to run on this machine.
func JoinTerminal(ctx context.Context, cfg Config, dir string, o JoinOptions, log *slog.Logger) (terminal.ExitStatus, error) {
	var none terminal.ExitStatus
	if err := cfg.Validate(); err != nil {
		return none, err
	}
	d, err := openDialer(ctx, cfg, dir, true, log)
	if err != nil {
		return none, err
	}
	defer d.close()
	sess, err := newClient(cfg.Server, cfg.DeviceToken).terminalSession(ctx, o.ShareID, d.cands)
	if err != nil {
		return none, fmt.Errorf("join terminal %s: %w", o.ShareID, err)
	}
	ps, err := dialRetry(ctx, d.ep, sess)
	if err != nil {
		return none, err
	}
	fmt.Fprintln(o.Stderr, pathLine(cfg, ps.Path))
	defer ps.Close("bye")

	raw := o.Stdin != nil && term.IsTerminal(int(o.Stdin.Fd()))
	nl := "\n"
	if raw {
		old, err := term.MakeRaw(int(o.Stdin.Fd()))
		if err != nil {
			return none, fmt.Errorf("put the terminal in raw mode: %w", err)
		}
		defer term.Restore(int(o.Stdin.Fd()), old) //nolint:errcheck // nothing better to do on the way out
		nl = "\r\n"
	}
	jo := terminal.JoinOptions{Out: o.Stdout, DetachKey: DetachKey, OnHello: func(h terminal.Hello) {
		mode := "read-only"
		if h.Input {
			mode = "you may type"
		}
		fmt.Fprintf(o.Stderr, "[mesh] joined %s (%s, %dx%d, %s); Ctrl-] detaches%s", o.ShareID, h.Command, h.Cols, h.Rows, mode, nl)
	}}
	if o.Stdin != nil {
		jo.In = o.Stdin
	}
	st, err := terminal.Join(ctx, ps.Stream, jo)
	switch {
	case err != nil:
		return st, fmt.Errorf("connection to the share lost: %w; run the same command to rejoin", err)
	case st.Detached:
		fmt.Fprintf(o.Stderr, "%s[mesh] detached; the share goes on%s", nl, nl)
	default:
		fmt.Fprintf(o.Stderr, "%s[mesh] the share ended (exit code %d)%s", nl, st.Code, nl)
	}
	return st, nil
}
