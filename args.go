package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// commandLineUsage is the ArgsUsage of a command whose positionals are
// another program's command line (share-terminal): [reorderArgs] leaves
// them alone, so everything from COMMAND on is the program's, flags
// included, as with sudo or timeout.
const commandLineUsage = "[-- COMMAND ARGS...]"

// reorderArgs returns args (os.Args) with the flags of the command they
// name moved in front of its positionals, so that "mesh user add alice
// --admin" means "mesh user add --admin -- alice": urfave/cli v2, like the
// standard flag package, stops parsing flags at the first positional.
// Whether a flag takes the next argument as its value (--device NAME, not
// --admin) comes from the command's own flag definitions; an unknown flag
// moves as if it took none, and urfave/cli then refuses it by name.
// Everything after "--" stays positional. Commands with subcommands, and
// commands that pass a command line on (commandLineUsage), are left as
// they are.
func reorderArgs(app *cli.App, args []string) []string {
	var cmd *cli.Command
	i := 1
	for cmds := app.Commands; i < len(args); i++ {
		next := findCommand(cmds, args[i])
		if next == nil {
			break
		}
		cmd, cmds = next, next.Subcommands
	}
	if cmd == nil || len(cmd.Subcommands) > 0 || cmd.SkipFlagParsing || cmd.ArgsUsage == commandLineUsage {
		return args
	}
	flags, pos, ok := splitFlags(cmd.Flags, args[i:])
	out := append(slices.Clone(args[:i]), flags...)
	if !ok || len(pos) == 0 {
		return out // !ok: a value flag ends the line; urfave/cli says it needs an argument
	}
	return append(append(out, "--"), pos...)
}

// splitFlags separates flags (with their values) from positionals in the
// way the flag package reads them. ok is false when the last flag needs a
// value that is not there; that flag is then last in flags.
func splitFlags(defs []cli.Flag, args []string) (flags, pos []string, ok bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return flags, append(pos, args[i+1:]...), true
		case len(a) < 2 || a[0] != '-':
			pos = append(pos, a)
		default:
			flags = append(flags, a)
			name, _, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
			if hasValue || !takesValue(defs, name) {
				continue
			}
			if i+1 == len(args) {
				return flags, pos, false
			}
			i++
			flags = append(flags, args[i])
		}
	}
	return flags, pos, true
}

func takesValue(defs []cli.Flag, name string) bool {
	for _, f := range defs {
		if v, ok := f.(interface{ TakesValue() bool }); ok && slices.Contains(f.Names(), name) {
			return v.TakesValue()
		}
	}
	return false // unknown (or --help): urfave/cli decides
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
