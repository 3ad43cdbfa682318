package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"mesh/agent/peer"
)

// LoginOptions are the inputs of `mesh agent login`.
type LoginOptions struct {
	Server   string
	Username string
	Password string
	DeviceID string // "" = the host name
	Dir      string // the agent's config dir (agent.toml, QUIC key)
}

// Login enrols this machine as a device of the user: it makes (or reuses)
// the QUIC identity, registers the device with its certificate fingerprint,
// and saves server, user, device id and token in Dir/agent.toml (0600),
// keeping the other settings already there (cfg.Insecure among them). It
// returns the saved config. A cleartext server on another machine is
// refused ([ErrCleartext]) unless cfg.Insecure, before anything is sent.
func Login(ctx context.Context, o LoginOptions, cfg Config) (Config, error) {
	if err := CheckServerURL(o.Server, cfg.Insecure); err != nil {
		return cfg, err
	}
	if o.DeviceID == "" {
		h, err := os.Hostname()
		if err != nil {
			return cfg, fmt.Errorf("name this device with --device: %w", err)
		}
		o.DeviceID = strings.ToLower(h)
	}
	id, err := peer.LoadOrCreateIdentity(o.Dir)
	if err != nil {
		return cfg, err
	}
	jwt, err := newClient(o.Server, "").login(ctx, o.Username, o.Password)
	if err != nil {
		return cfg, fmt.Errorf("log in as %s: %w", o.Username, err)
	}
	tok, err := newClient(o.Server, jwt).enroll(ctx, o.DeviceID, id.Fingerprint)
	if err != nil {
		return cfg, fmt.Errorf("enrol device %s: %w", o.DeviceID, err)
	}
	cfg.Server, cfg.Username, cfg.DeviceID, cfg.DeviceToken = strings.TrimRight(o.Server, "/"), strings.ToLower(o.Username), o.DeviceID, tok
	if err := Save(filepath.Join(o.Dir, "agent.toml"), cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}
