package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzSaveConfig saves configs with arbitrary field values, as `mesh agent
// login` does with the server's URL, the username, the device id, the token
// the server answered and what MESH_AGENT_* variables set, and reads
// agent.toml back the way mesh's loader does (toml.DecodeFile, unknown keys
// refused). Save may refuse only a value TOML cannot hold (text that is not
// UTF-8, e.g. a Latin-1 MESH_AGENT_INBOX); what it writes must be 0600 and
// read back equal, so a token with a quote or a newline neither breaks the
// file nor smuggles in a key.
// (The loader itself, loadConfigFile, is in package main; FuzzConfigFile
// there feeds it arbitrary files.)
func FuzzSaveConfig(f *testing.F) {
	f.Add("https://mesh.example", "alice", "laptop", "mdt_0123456789abcdef", "/home/alice/in", "0.0.0.0:5000", "bob,*", "/srv/a")
	f.Add("", "", "", "", "", "", "", "")
	f.Add("http://h\n[server]\nlisten = \"x\"", "a\"b", "d'''e", "t\\u0000\x7f", "\t", "[::1]:0", ",,", "é\U0001F600")
	f.Add("\x7f", "\x00", "a\r\nb", `"""`, "'''", "#", "\u2028", "\ud7ff")
	// One directory per worker process, whose inputs run one at a time; in
	// memory if it can be, as Save syncs the file, which on a disk costs
	// more than the rest of an input together.
	dir := f.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "mesh-fuzz-"); err == nil {
		dir = shm
		f.Cleanup(func() { _ = os.RemoveAll(shm) }) // best effort: a temp dir
	}
	path := filepath.Join(dir, "agent.toml")
	f.Fuzz(func(t *testing.T, server, user, device, token, inbox, quic, accept, send string) {
		cfg := Config{Server: server, Username: user, DeviceID: device, DeviceToken: token, Inbox: inbox,
			QUICListen: quic, AcceptFrom: strings.Split(accept, ","), SendDirs: strings.Split(send, ",")}
		if err := Save(path, cfg); err != nil {
			if allUTF8(cfg) {
				t.Fatalf("Save(%#v): %v", cfg, err)
			}
			return
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("agent.toml after Save: %v; want mode 0600", err)
		}
		var got struct {
			Agent Config `toml:"agent"`
		}
		md, err := toml.DecodeFile(path, &got)
		if err != nil {
			b, _ := os.ReadFile(path) // for the message only
			t.Fatalf("Save(%#v) wrote a file mesh cannot read:\n%s\n%v", cfg, b, err)
		}
		if keys := md.Undecoded(); len(keys) > 0 {
			t.Fatalf("Save(%#v) wrote unknown keys %v", cfg, keys)
		}
		if diff := cmp.Diff(cfg, got.Agent, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("Save then load changed the config (-saved +loaded):\n%s", diff)
		}
	})
}

// allUTF8 reports whether every text of cfg is UTF-8, which TOML requires.
func allUTF8(cfg Config) bool {
	texts := append([]string{cfg.Server, cfg.Username, cfg.DeviceID, cfg.DeviceToken, cfg.Inbox, cfg.QUICListen},
		append(cfg.AcceptFrom, cfg.SendDirs...)...)
	for _, s := range texts {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}
