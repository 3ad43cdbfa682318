// Command barequic is e2e's BenchmarkTransfer baseline: one file copied
// over one bare quic-go stream between two processes, the receiver
// discarding. It lives under testdata so that `go test ./...` and
// `go vet ./...` leave it out; the benchmark builds it with `go build`.
//
//	barequic recv ADDR        listen on ADDR (UDP), print "listening ADDR",
//	                          take one stream, print "received N", exit
//	barequic send ADDR FILE   copy FILE to ADDR, exit once the receiver has it all
//
// TLS 1.3 with a fresh self-signed certificate (the sender does not verify
// it); the stream and connection windows are mesh's (agent/peer: 32 and 48
// MiB), everything else quic-go's defaults.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"time"

	"github.com/quic-go/quic-go"
)

const alpn = "mesh-bare/1"

func main() {
	var err error
	switch {
	case len(os.Args) == 3 && os.Args[1] == "recv":
		err = recv(os.Args[2])
	case len(os.Args) == 4 && os.Args[1] == "send":
		err = send(os.Args[2], os.Args[3])
	default:
		err = errors.New("usage: barequic recv ADDR | barequic send ADDR FILE")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "barequic:", err)
		os.Exit(1)
	}
}

func config() *quic.Config {
	return &quic.Config{MaxStreamReceiveWindow: 32 << 20, MaxConnectionReceiveWindow: 48 << 20,
		MaxIdleTimeout: 30 * time.Second}
}

func recv(addr string) error {
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	ln, err := quic.ListenAddr(addr, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{alpn},
		MinVersion: tls.VersionTLS13}, config())
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println("listening", ln.Addr())
	ctx := context.Background()
	conn, err := ln.Accept(ctx)
	if err != nil {
		return err
	}
	st, err := conn.AcceptStream(ctx)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, st, make([]byte, 1<<20))
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	fmt.Println("received", n)
	// Closing the connection tells the sender its bytes all arrived.
	return conn.CloseWithError(0, "done")
}

func send(addr, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	conn, err := quic.DialAddr(ctx, addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn},
		MinVersion: tls.VersionTLS13}, config())
	if err != nil {
		return err
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(struct{ io.Writer }{st}, f, make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if err := st.Close(); err != nil {
		return err
	}
	select { // the receiver closes the connection once it has read to the end
	case <-conn.Context().Done():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// selfSigned makes a throwaway ECDSA P-256 certificate.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "barequic"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
