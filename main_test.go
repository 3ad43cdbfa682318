package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// appMu serialises in-process runs: every cli.App shares urfave/cli's
// global help flag, which each run writes to. The binary runs one app.
var appMu sync.Mutex

// run runs the CLI in this process, as the binary would with args, and
// returns what it wrote to stdout and stderr.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	appMu.Lock()
	defer appMu.Unlock()
	var out bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &out
	err := app.Run(reorderArgs(app, append([]string{"mesh"}, args...)))
	return out.String(), err
}

func TestHelpGolden(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"user", "--help"}, {"user", "add", "--help"},
		{"agent", "--help"}, {"agent", "login", "--help"}, {"agent", "send-file", "--help"},
		{"agent", "share-terminal", "--help"}, {"agent", "join-terminal", "--help"}} {
		out, err := run(t, args...)
		if err != nil {
			t.Fatalf("mesh %v: %v\n%s", args, err, out)
		}
		golden := filepath.Join("testdata", "help-"+strings.Join(args[:len(args)-1], "-")+".golden")
		if len(args) == 1 {
			golden = filepath.Join("testdata", "help.golden")
		}
		if *update {
			if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test -update once)", err)
		}
		if diff := cmp.Diff(string(want), out); diff != "" {
			t.Errorf("mesh %v help changed (-want +got; go test -update accepts it):\n%s", args, diff)
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out, err := run(t, "version")
	if err != nil || !strings.HasPrefix(out, "mesh ") {
		t.Fatalf("mesh version = %q, %v", out, err)
	}
}

// TestConfigPrecedence checks flag > env > file > default on the real loader.
func TestConfigPrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.toml")
	if err := os.WriteFile(path, []byte("[server]\nlisten = \"127.0.0.1:1111\"\ndb = \"file.db\"\n[auth]\ntoken_ttl = \"2h\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MESH_SERVER_DB", "env.db")
	t.Setenv("MESH_SERVER_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.0.0/16")
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Listen != "127.0.0.1:1111" || cfg.HTTP.DB != "env.db" || cfg.Auth.TokenTTL != 2*time.Hour ||
		cfg.Auth.Registration != "invite" || !reflect.DeepEqual(cfg.HTTP.TrustedProxies, []string{"10.0.0.0/8", "192.168.0.0/16"}) {
		t.Fatalf("loaded %+v", cfg)
	}
}

// TestConfigExample keeps config.example.toml decodable, complete and equal to the defaults.
func TestConfigExample(t *testing.T) {
	t.Parallel()
	var cfg fileConfig
	md, err := toml.DecodeFile("config.example.toml", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("config.example.toml has unknown keys %v", u)
	}
	def := defaultConfig()
	if diff := cmp.Diff(def, cfg, cmpopts.EquateEmpty(), cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Now" }, cmp.Ignore())); diff != "" {
		t.Errorf("config.example.toml differs from the defaults (-default +example):\n%s", diff)
	}
	var keys []string
	walkKeys(reflect.TypeOf(cfg), "", &keys)
	for _, k := range keys {
		if !md.IsDefined(strings.Split(k, ".")...) {
			t.Errorf("config.example.toml does not document %s", k)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("example config does not validate: %v", err)
	}
}

func walkKeys(t reflect.Type, prefix string, keys *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		switch {
		case tag == "-" || !f.IsExported():
		case f.Anonymous && tag == "":
			walkKeys(f.Type, prefix, keys)
		case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]():
			walkKeys(f.Type, prefix+tag+".", keys)
		default:
			*keys = append(*keys, prefix+tag)
		}
	}
}
