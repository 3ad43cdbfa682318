package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReorderArgs runs reorderArgs over mesh's own command tree: the flag
// definitions decide which flags take a value.
func TestReorderArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"user add alice --admin", "user add --admin -- alice"},
		{"user add alice", "user add -- alice"},
		{"user add --admin alice", "user add --admin -- alice"},
		{"user add alice --db x.db --password-stdin", "user add --db x.db --password-stdin -- alice"},
		{"user add alice -c m.toml", "user add -c m.toml -- alice"},
		{"user add alice --db=x.db --admin=false", "user add --db=x.db --admin=false -- alice"},
		{"user add alice --db", "user add --db"},                          // urfave/cli: flag needs an argument
		{"user add alice --db --admin", "user add --db --admin -- alice"}, // as the flag package reads it: --admin is the path
		{"user add alice bob --admin", "user add --admin -- alice bob"},
		{"user add alice --admn", "user add --admn -- alice"}, // unknown: refused by name
		{"user passwd bob --password-stdin", "user passwd --password-stdin -- bob"},
		{"user add alice --help", "user add --help -- alice"},
		{"user add -- -alice --admin", "user add -- -alice --admin"},
		{"user add - --admin", "user add --admin -- -"},
		{"user list", "user list"},
		{"user --help", "user --help"},
		{"user", "user"},
		{"backup copy.db --db mesh.db", "backup --db mesh.db -- copy.db"},
		{"serve --listen :0", "serve --listen :0"},
		{"agent send-file ~/a ~/b --to home", "agent send-file --to home -- ~/a ~/b"},
		{"agent send-file --file a --session-id S b", "agent send-file --file a --session-id S -- b"},
		{"agent join-terminal k7xq --config a.toml --insecure", "agent join-terminal --config a.toml --insecure -- k7xq"},
		{"agent login --server https://h --username alice --device laptop", "agent login --server https://h --username alice --device laptop"},
		{"agent share-terminal --allow bob -- htop -d 5", "agent share-terminal --allow bob -- htop -d 5"},
		{"agent share-terminal htop -d 5 --allow bob", "agent share-terminal htop -d 5 --allow bob"},
		{"agent nosuch x --y", "agent nosuch x --y"},
		{"--help", "--help"},
		{"", ""},
	} {
		in := append([]string{"mesh"}, strings.Fields(tc.in)...)
		want := append([]string{"mesh"}, strings.Fields(tc.want)...)
		if got := reorderArgs(newApp(), in); !cmp.Equal(got, want) {
			t.Errorf("reorderArgs(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestReorderArgsKeepsInput: the caller's slice (os.Args) is not rewritten.
func TestReorderArgsKeepsInput(t *testing.T) {
	t.Parallel()
	in := []string{"mesh", "user", "add", "alice", "--admin"}
	reorderArgs(newApp(), in)
	if want := []string{"mesh", "user", "add", "alice", "--admin"}; !cmp.Equal(in, want) {
		t.Errorf("reorderArgs changed its input to %q", in)
	}
}
