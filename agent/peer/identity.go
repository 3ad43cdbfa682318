package peer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Names of the identity files in the agent's config directory.
const (
	KeyFile  = "quic.key"
	CertFile = "quic.crt"
)

// certValidity is long because the certificate is pinned by fingerprint, not
// trusted through a chain: renewing it would only force re-registration.
const certValidity = 10 * 365 * 24 * time.Hour

// Identity is this agent's QUIC key and self-signed certificate. Peers know
// it by Fingerprint, which the agent announces to the server in system.hello.
type Identity struct {
	Cert        tls.Certificate
	Fingerprint string // "sha256:" + 64 lowercase hex digits
}

// Fingerprint returns "sha256:" and the lowercase hex SHA-256 of a DER
// certificate, the form [protocol.ValidFingerprint] accepts.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// LoadOrCreateIdentity loads dir/quic.key and dir/quic.crt, creating whatever
// is missing: an ECDSA P-256 key, and a self-signed certificate (CN
// "mesh-agent", valid 10 years) for it. Files are written with mode 0600 and
// never overwritten, so concurrent first runs agree on one identity. Errors
// name the file; a corrupt file is reported, not replaced.
func LoadOrCreateIdentity(dir string) (Identity, error) {
	keyPath, certPath := filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Identity{}, fmt.Errorf("identity directory: %w", err)
	}
	key, err := loadOrCreate(keyPath, parseKey, func() ([]byte, error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), err
	})
	if err != nil {
		return Identity{}, err
	}
	leaf, err := loadOrCreate(certPath, parseCert, func() ([]byte, error) {
		der, err := selfSign(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), err
	})
	if err != nil {
		return Identity{}, err
	}
	if !publicKeyEqual(leaf.PublicKey, key) {
		return Identity{}, fmt.Errorf("%s does not belong to the key in %s; remove both to make a new identity", certPath, keyPath)
	}
	return Identity{
		Cert:        tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf},
		Fingerprint: Fingerprint(leaf.Raw),
	}, nil
}

// loadOrCreate parses path, or writes create's output there if it does not
// exist. If another process wrote it first, that file wins.
func loadOrCreate[T any](path string, parse func([]byte) (T, error), create func() ([]byte, error)) (T, error) {
	var zero T
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if b, err = create(); err != nil {
			return zero, fmt.Errorf("create %s: %w", path, err)
		}
		if err = writeNew(path, b); errors.Is(err, fs.ErrExist) {
			b, err = os.ReadFile(path)
		}
	}
	if err != nil {
		return zero, fmt.Errorf("identity: %w", err)
	}
	v, err := parse(b)
	if err != nil {
		return zero, fmt.Errorf("identity file %s: %w (remove it, and its partner, to make a new identity)", path, err)
	}
	return v, nil
}

// writeNew writes b to path with mode 0600 unless path exists (fs.ErrExist).
// It writes a temporary file and links it into place, so path is never seen
// half-written.
func writeNew(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Link(f.Name(), path)
}

func parseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return s, nil
}

func parseCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(block.Bytes)
}

func selfSign(key crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mesh-agent"},
		NotBefore:             now.Add(-time.Hour), // tolerate a peer's clock running behind
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
}

func publicKeyEqual(pub crypto.PublicKey, key crypto.Signer) bool {
	p, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && p.Equal(pub)
}
