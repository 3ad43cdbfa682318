package server

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
)

// looseBits are the permission bits that let users other than the owner read
// or write a file. Group counts: nothing in mesh needs a group to read these
// files, the database holds password hashes and the signing key lets its
// reader mint a token for any account (admins included), and a group is often
// wider than it looks ("users", "staff"). ssh refuses group-readable private
// keys for the same reason. Execute bits are harmless on data files.
const looseBits fs.FileMode = 0o066

// SensitiveFiles lists the files whose contents would let another local user
// read chats or act as any account: the database with its -wal and -shm, the
// JWT signing key ([AuthConfig.SecretFile] or the database path + ".secret"),
// the TURN secret when the embedded TURN server runs, and the Gotify token
// and TURN password files when configured.
func (c Config) SensitiveFiles() []string {
	db := c.HTTP.DB
	ps := []string{db, db + "-wal", db + "-shm", c.secretFile()}
	if c.RTC.TURN {
		ps = append(ps, c.turnSecretFile())
	}
	for _, p := range []string{c.Notify.Gotify.TokenFile, c.RTC.TURNPassFile, c.HTTP.TLSKey} {
		if p != "" {
			ps = append(ps, p)
		}
	}
	return ps
}

// WarnFileModes logs one warning for each distinct path that exists and that
// users other than its owner may read or write, naming its mode and the
// chmod that fixes it. Missing files and files it cannot stat are skipped:
// whoever opens them reports those errors. It changes nothing on disk.
func WarnFileModes(log *slog.Logger, paths ...string) {
	seen := make(map[string]bool, len(paths))
	for _, p := range paths {
		if seen[p] {
			continue
		}
		seen[p] = true
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if perm := fi.Mode().Perm(); perm&looseBits != 0 {
			log.Warn("file is open to other users; it holds secrets",
				"path", p, "mode", fmt.Sprintf("%#o", perm), "fix", "chmod 600 "+shellQuote(p))
		}
	}
}

// shellQuote quotes p for a POSIX shell when it needs quoting.
func shellQuote(p string) string {
	if p != "" && strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+,:@%") == "" {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}
