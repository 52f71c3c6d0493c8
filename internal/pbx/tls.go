package pbx

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files of the certificate made on first start when none is configured.
const (
	TLSCertFile = "tls.crt"
	TLSKeyFile  = "tls.key"
)

// serverCert loads the configured certificate, or DATA/tls.crt and
// DATA/tls.key, creating them on first start: an ECDSA P-256 key that
// never leaves the data directory (0600) and a self-signed certificate
// for host, localhost and loopback, which phones can pin.
func serverCert(dir, certFile, keyFile, host string) (tls.Certificate, error) {
	if certFile != "" || keyFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return c, fmt.Errorf("config: tls-cert/tls-key: %w", err)
		}
		return c, nil
	}
	certFile, keyFile = filepath.Join(dir, TLSCertFile), filepath.Join(dir, TLSKeyFile)
	if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
		if err := makeCert(certFile, keyFile, host); err != nil {
			return tls.Certificate{}, fmt.Errorf("pbx: make TLS certificate: %w", err)
		}
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return c, fmt.Errorf("pbx: load TLS certificate %s: %w", certFile, err)
	}
	return c, nil
}

func makeCert(certFile, keyFile, host string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "sekisho " + host},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else if host != "" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// tlsConfig is the server side of SIP over TLS: TLS 1.2 at least, the Go
// defaults for ciphers (no CBC-SHA1 suites with TLS 1.3).
func tlsConfig(c tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
}
