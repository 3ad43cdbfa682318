package main

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"mesh/agent"
	"mesh/server"
)

// fileConfig is the whole TOML file; each component owns its tables.
type fileConfig struct {
	Log           logConfig    `toml:"log"`
	server.Config              // [server], [auth]
	Agent         agent.Config `toml:"agent"`
}

type logConfig struct {
	Level  string `toml:"level"`  // debug | info | warn | error
	Format string `toml:"format"` // text | json
}

func defaultConfig() fileConfig {
	return fileConfig{Log: logConfig{Level: "info", Format: "text"}, Config: server.DefaultConfig(), Agent: agent.DefaultConfig()}
}

// loadConfig layers the file (if any) and MESH_* variables over the
// defaults; flags are applied by the caller, last.
func loadConfig(path string) (fileConfig, error) {
	if path == "" {
		path = os.Getenv("MESH_CONFIG")
	}
	return loadConfigFile(path)
}

// loadConfigFile is loadConfig for exactly path ("" = no file).
func loadConfigFile(path string) (fileConfig, error) {
	cfg := defaultConfig()
	if path != "" {
		md, err := toml.DecodeFile(path, &cfg)
		if err != nil {
			return cfg, fmt.Errorf("read config %s: %w", path, err)
		}
		if keys := md.Undecoded(); len(keys) > 0 {
			return cfg, fmt.Errorf("config %s: unknown key %q; config.example.toml lists every key", path, keys[0].String())
		}
	}
	if err := applyEnv(reflect.ValueOf(&cfg).Elem(), "MESH", os.LookupEnv); err != nil {
		return cfg, err
	}
	if v, ok := os.LookupEnv("MESH_LOG"); ok { // SPEC's short form of MESH_LOG_LEVEL
		cfg.Log.Level = v
	}
	return cfg, nil
}

// applyEnv sets every field whose variable (prefix + "_" + upper-case toml
// key path) is present, so a new config key needs no code here.
func applyEnv(v reflect.Value, prefix string, lookup func(string) (string, bool)) error {
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && tag == "" {
			if err := applyEnv(fv, prefix, lookup); err != nil {
				return err
			}
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		if fv.Kind() == reflect.Struct {
			if err := applyEnv(fv, name, lookup); err != nil {
				return err
			}
			continue
		}
		s, ok := lookup(name)
		if !ok {
			continue
		}
		if err := setFromString(fv, s); err != nil {
			return fmt.Errorf("environment %s=%q: %w", name, s, err)
		}
	}
	return nil
}

func setFromString(v reflect.Value, s string) error {
	if v.Type() == reflect.TypeFor[time.Duration]() {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration such as 30s or 24h")
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("want a whole number")
		}
		v.SetInt(n)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type %s", v.Type())
		}
		var items []string
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}
