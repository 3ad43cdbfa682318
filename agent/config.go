package agent

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Config is the [agent] table: what `mesh agent login` writes to agent.toml
// and every agent command reads.
type Config struct {
	Server      string   `toml:"server"`       // the mesh server's URL
	Username    string   `toml:"username"`     // whose device this is
	DeviceID    string   `toml:"device_id"`    // this machine's id on the server
	DeviceToken string   `toml:"device_token"` // secret; written by login (file mode 0600)
	Inbox       string   `toml:"inbox"`        // where received files land; "" = $XDG_DATA_HOME/mesh/inbox
	QUICListen  string   `toml:"quic_listen"`  // UDP address for peer connections
	AcceptFrom  []string `toml:"accept_from"`  // other users who may send to this device ("*" = anyone)
	SendDirs    []string `toml:"send_dirs"`    // directories the web app may ask this agent to send from
	Insecure    bool     `toml:"insecure"`     // allow http:// to a server that is not on this machine
	// PartMaxAge is how long an unfinished NAME.part or TREE.part/ may sit
	// in the inbox unchanged before `mesh agent run` removes it; 0 keeps them.
	PartMaxAge time.Duration `toml:"part_max_age"`
}

// ErrCleartext refuses an http:// server on another machine: the password,
// the device token and session tokens would cross the network readable.
var ErrCleartext = errors.New("refusing cleartext http:// to a server on another machine")

// CheckServerURL reports whether the agent may talk to server: an http(s)
// URL, and https unless the host is this machine (localhost, 127.0.0.0/8,
// ::1) or insecure is set. Its error wraps [ErrCleartext] and says what to do.
func CheckServerURL(server string, insecure bool) error {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("server %q: want http(s)://host[:port]", server)
	}
	if u.Scheme == "https" || insecure || isLoopback(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("server %s: %w; use https:// (mesh serve --tls-cert/--tls-key or --acme-domain), "+
		"or pass --insecure if you really mean it on a trusted LAN", server, ErrCleartext)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// DefaultConfig is the agent's configuration before login.
func DefaultConfig() Config {
	return Config{QUICListen: "0.0.0.0:5000", PartMaxAge: 7 * 24 * time.Hour}
}

// Validate reports settings that cannot work, naming the key, for commands
// that talk to the server.
func (c Config) Validate() error {
	var errs []error
	if c.Server == "" || c.DeviceID == "" || c.DeviceToken == "" {
		errs = append(errs, errors.New("agent is not logged in: run 'mesh agent login --server URL --username NAME'"))
	} else if err := CheckServerURL(c.Server, c.Insecure); err != nil {
		errs = append(errs, fmt.Errorf("agent.%w", err)) // "agent.server …": names the key
	}
	if _, _, err := net.SplitHostPort(c.QUICListen); err != nil {
		errs = append(errs, fmt.Errorf("agent.quic_listen %q: want host:port, e.g. 0.0.0.0:5000", c.QUICListen))
	}
	if c.PartMaxAge < 0 {
		errs = append(errs, fmt.Errorf("agent.part_max_age %s: want a duration of 0 or more, e.g. \"168h\" (0 keeps unfinished .part files)", c.PartMaxAge))
	}
	return errors.Join(errs...)
}

// ConfigDir is where the agent keeps agent.toml and its QUIC key:
// $XDG_CONFIG_HOME/mesh, else ~/.config/mesh.
func ConfigDir() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "mesh"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the config directory: %w (set XDG_CONFIG_HOME)", err)
	}
	return filepath.Join(home, ".config", "mesh"), nil
}

// InboxDir is where received files land: cfg.Inbox, else
// $XDG_DATA_HOME/mesh/inbox, else ~/.local/share/mesh/inbox.
func (c Config) InboxDir() (string, error) {
	if c.Inbox != "" {
		return c.Inbox, nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "mesh", "inbox"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the inbox: %w (set [agent] inbox)", err)
	}
	return filepath.Join(home, ".local", "share", "mesh", "inbox"), nil
}

// Save writes cfg as the [agent] table of path, mode 0600 (it holds the
// device token), replacing the file atomically.
func Save(path string, cfg Config) error {
	if key := nonUTF8(cfg); key != "" {
		return fmt.Errorf("save %s: %s is not valid UTF-8, which a TOML file cannot hold; use a UTF-8 name or path", path, key)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".agent-*.toml")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename; cleans up on failure
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = fmt.Fprintln(tmp, "# Written by 'mesh agent login'. Holds this device's secret token: keep it 0600.")
	}
	if err == nil {
		err = toml.NewEncoder(tmp).Encode(struct {
			Agent Config `toml:"agent"`
		}{cfg})
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err := errors.Join(err, tmp.Close()); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

// nonUTF8 names the first key of cfg whose text is not UTF-8 (a Latin-1
// path, say), or returns "".
func nonUTF8(cfg Config) string {
	v := reflect.ValueOf(cfg)
	for i := range v.NumField() {
		key, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("toml"), ",")
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			if !utf8.ValidString(f.String()) {
				return key
			}
		case reflect.Slice:
			for j := range f.Len() {
				if e := f.Index(j); e.Kind() == reflect.String && !utf8.ValidString(e.String()) {
					return key
				}
			}
		}
	}
	return ""
}
