package peer

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// TLS for agent-to-agent QUIC: both sides present their certificate, and
// each pins the other's to a fingerprint the server handed out.

func (e *Endpoint) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{e.cfg.Identity.Cert},
		NextProtos:             []string{ALPN},
		SessionTicketsDisabled: true, // a resumed session would skip the client certificate check
		ClientAuth:             tls.RequireAnyClientCert,
		// First gate: only initiators of live sessions get past TLS. Redeem
		// then checks the exact fingerprint of the redeemed session. The
		// server tells both devices at once, so the initiator may dial before
		// the announcement reaches this one: wait a little for it.
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no client certificate")
			}
			fp := Fingerprint(raw[0])
			if !e.cfg.Sessions.awaitInitiator(fp, announceGrace) {
				return fmt.Errorf("client certificate %s belongs to no pending session", fp)
			}
			return nil
		},
	}
}

func (e *Endpoint) clientTLS(fingerprint string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{e.cfg.Identity.Cert},
		NextProtos:   []string{ALPN},
		ServerName:   "mesh-agent",
		// Self-signed certificates have no chain to verify; the pin below
		// replaces chain verification, it is not skipped.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return fmt.Errorf("%w: no certificate", ErrPeerCertificate)
			}
			if got := Fingerprint(raw[0]); got != fingerprint {
				return fmt.Errorf("%w: got %s, want %s", ErrPeerCertificate, got, fingerprint)
			}
			return nil
		},
	}
}
