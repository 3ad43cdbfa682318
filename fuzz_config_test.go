package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"mesh/agent"
)

// FuzzConfigFile feeds loadConfigFile, the loader of both `mesh serve
// --config` and the agent's agent.toml, arbitrary file contents. Rejecting
// is fine, panicking is not; a refusal names the file, and a TOML syntax
// error its line. A file that loads and validates as a server config must
// read back equal after toml.NewEncoder writes it out; its [agent] table
// must read back equal after agent.Save writes it, as `mesh agent login` does.
func FuzzConfigFile(f *testing.F) {
	example, err := os.ReadFile("config.example.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		"",
		"[server]\nlisten = \"127.0.0.1:0\"\nlisen = \"x\"\n",
		"[server]\nshutdown_timeout = \"1h2m3.5s\"\nws_rate = 1\n[auth]\ntoken_ttl = 3600000000000\n",
		"[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1/128\"]\nallowed_origins = [\"https://a.example\"]\n",
		"[auth]\nregistration = \"open\"\nbcrypt_cost = 4\ninvite_ttl = \"-1s\"\n",
		"[notify.gotify]\nurl = \"https://push.example/gotify\"\ntoken = \"Aabc.def\"\n[notify]\nretry_min = \"1ns\"\n",
		"[rtc]\nice_servers = [\"stun:stun.example:3478\", \"turns:t.example\"]\nturn_username = \"u\"\n",
		"[agent]\nserver = \"https://mesh.example\"\ndevice_id = \"laptop\"\ndevice_token = \"mdt_0f\"\naccept_from = [\"*\"]\nsend_dirs = [\"/home/a\"]\n",
		"[agent]\ndevice_token = \"\\u0000\\\"\\n[server]\"\nusername = '''x\ny'''\n",
		"[log]\nlevel = \"debug\"\nformat = \"json\"\n[server]\ndb = \"\"\n",
		"[server]\nlisten = 8000\n",
		"[server.listen]\n",
		"server = { listen = \"127.0.0.1:1\" }\n",
		"[[server]]\n",
		"\ufeff[log]\nlevel = \"warn\"\r\n",
	} {
		f.Add([]byte(s))
	}
	dir := fuzzDir(f) // one per worker process; its inputs run one at a time
	path, out, saved := filepath.Join(dir, "mesh.toml"), filepath.Join(dir, "out.toml"), filepath.Join(dir, "agent.toml")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfigFile(path)
		if err != nil {
			checkConfigError(t, b, path, err)
			return
		}
		if err := cfg.Validate(); err == nil {
			var buf bytes.Buffer
			if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
				t.Fatalf("loaded %q as %+v, which does not encode: %v", b, cfg, err)
			}
			cfg2 := reload(t, out, buf.Bytes())
			if diff := cmp.Diff(cfg, cfg2, configOpts); diff != "" {
				t.Fatalf("loaded %q, re-encoded as %q, reloads different (-first +second):\n%s", b, buf.Bytes(), diff)
			}
			if err := cfg2.Validate(); err != nil {
				t.Fatalf("re-encoded %q no longer validates: %v", buf.Bytes(), err)
			}
		}
		if err := agent.Save(saved, cfg.Agent); err != nil {
			t.Fatalf("agent.Save(%+v): %v", cfg.Agent, err)
		}
		written, err := os.ReadFile(saved)
		if err != nil {
			t.Fatal(err)
		}
		a2 := reload(t, out, written).Agent
		if diff := cmp.Diff(cfg.Agent, a2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("[agent] of %q saved as %q reloads different (-first +second):\n%s", b, written, diff)
		}
		if (cfg.Agent.Validate() == nil) != (a2.Validate() == nil) {
			t.Fatalf("[agent] of %q: Validate = %v before saving, %v after", b, cfg.Agent.Validate(), a2.Validate())
		}
	})
}

// fuzzDir is a directory for f's files, in memory where there is a tmpfs:
// agent.Save syncs the file, which on a disk costs more than the rest of an
// input together.
func fuzzDir(f *testing.F) string {
	dir, err := os.MkdirTemp("/dev/shm", "mesh-fuzz-")
	if err != nil {
		return f.TempDir()
	}
	f.Cleanup(func() { _ = os.RemoveAll(dir) }) // best effort: a temp dir
	return dir
}

// configOpts compares configs as the loader sees them: an empty list is no
// list, and the clock is not configuration.
var configOpts = cmp.Options{cmpopts.EquateEmpty(), cmpopts.IgnoreFields(fileConfig{}, "Now")}

// reload writes b to path and loads it, failing the test if that fails.
func reload(t *testing.T, path string, b []byte) fileConfig {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfigFile(path)
	if err != nil {
		t.Fatalf("what mesh wrote does not load:\n%s\n%v", b, err)
	}
	return cfg
}

// checkConfigError checks a refusal names the file and is a message for
// the user. (It does not demand a line number for a syntax error: toml
// v1.6.0 reports "line 0" for a bad escape at the end of the input, 0."\.)
func checkConfigError(t *testing.T, b []byte, path string, err error) {
	t.Helper()
	msg := err.Error()
	switch {
	case !strings.HasPrefix(msg, "read config "+path+": ") && !strings.HasPrefix(msg, "config "+path+": unknown key ") &&
		!strings.HasPrefix(msg, "environment MESH_"): // a bad MESH_* variable fails every load alike
		t.Fatalf("loadConfigFile(%q) = %q; want an error naming %s", b, msg, path)
	case errors.As(err, new(runtime.Error)):
		t.Fatalf("loadConfigFile(%q) = %q: a recovered crash, not a message for the user", b, msg)
	}
}
