package peer

import (
	"bytes"
	"crypto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mesh/protocol"
)

func TestIdentityCreatedOnce(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "mesh") // made if missing
	id, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !protocol.ValidFingerprint(id.Fingerprint) || id.Fingerprint != Fingerprint(id.Cert.Certificate[0]) {
		t.Errorf("Fingerprint = %q, want sha256 of the certificate", id.Fingerprint)
	}
	leaf := id.Cert.Leaf
	if leaf.Subject.CommonName != "mesh-agent" || time.Until(leaf.NotAfter) < 9*365*24*time.Hour {
		t.Errorf("certificate CN %q until %v, want mesh-agent for about 10 years", leaf.Subject.CommonName, leaf.NotAfter)
	}
	for _, name := range []string{KeyFile, CertFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s mode %o, want 600", name, mode)
		}
	}
	again, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint != id.Fingerprint {
		t.Errorf("reloaded fingerprint %s, want %s", again.Fingerprint, id.Fingerprint)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d files in %s, want 2 (no leftover temporaries)", len(entries), dir)
	}
}

func TestIdentityBadFiles(t *testing.T) {
	t.Parallel()
	other := t.TempDir()
	if _, err := LoadOrCreateIdentity(other); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    string
		content func() []byte
		want    string // in the error, besides the file's path
	}{
		{"garbage key", KeyFile, func() []byte { return []byte("not a key") }, "PRIVATE KEY"},
		{"garbage certificate", CertFile, func() []byte { return []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n") }, "x509"},
		{"another agent's certificate", CertFile, func() []byte {
			b, _ := os.ReadFile(filepath.Join(other, CertFile))
			return b
		}, "does not belong"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if _, err := LoadOrCreateIdentity(dir); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, tt.file)
			if err := os.WriteFile(path, tt.content(), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateIdentity(dir)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadOrCreateIdentity = %v, want an error naming %s and %q", err, path, tt.want)
			}
			if b, _ := os.ReadFile(path); !bytes.Equal(b, tt.content()) {
				t.Errorf("%s was replaced; a bad identity must be reported, not overwritten", path)
			}
		})
	}
}

func TestIdentityCertificateRemade(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	id, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, CertFile)); err != nil { // as if a first run died between files
		t.Fatal(err)
	}
	again, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cert.Leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(id.Cert.Leaf.PublicKey) {
		t.Error("the new certificate is not for the existing key")
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	const want = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" // SHA-256("abc")
	if got := Fingerprint([]byte("abc")); got != want {
		t.Errorf("Fingerprint(abc) = %s, want %s", got, want)
	}
}
