package fleet

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sekisho/sekisho/internal/wire"
)

// Certificate renewal: a unit certificate is good for a year. Each time
// the link comes up with less than RenewBefore left, the unit asks the
// centre, over the stream its current certificate opened, for a new one
// for the key it already holds (the key never changes and never leaves
// the unit). The new one is checked against the pinned CA and saved
// before it is used; the centre keeps the old one good until the unit
// connects with the new, so a renewal lost half-way locks nobody out.

// DefaultRenewBefore is how long before expiry a unit renews.
const DefaultRenewBefore = 120 * 24 * time.Hour

// currentTLS is a copy of the link's TLS configuration, with the
// certificate in force now.
func (l *Link) currentTLS() *tls.Config {
	l.certMu.Lock()
	defer l.certMu.Unlock()
	return l.tls.Clone()
}

// renewRequest returns a renew message when the certificate is due, or
// nil.
func (l *Link) renewRequest(now time.Time) *wire.Message {
	l.certMu.Lock()
	cert := l.tls.Certificates[0]
	l.certMu.Unlock()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil || leaf.NotAfter.Sub(now) > l.cfg.RenewBefore {
		return nil
	}
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: l.joined.UnitID}}, signer)
	if err != nil {
		l.cfg.Log.Error("fleet: certificate request for renewal", "err", err)
		return nil
	}
	l.cfg.Log.Info("fleet: asking the centre to renew the unit certificate", "expires", leaf.NotAfter.UTC().Format(time.RFC3339))
	return &wire.Message{Type: wire.TypeRenew, Renew: &wire.Renew{CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})}}
}

// renewed checks the centre's new certificate and puts it in force:
// saved first, then used for the next connection.
func (l *Link) renewed(r wire.Renewed) error {
	if r.Error != "" {
		return fmt.Errorf("fleet: the centre did not renew the certificate: %s", r.Error)
	}
	l.certMu.Lock()
	defer l.certMu.Unlock()
	old := l.tls.Certificates[0]
	keyPEM, err := os.ReadFile(filepath.Join(l.cfg.Dir, KeyFile))
	if err != nil {
		return fmt.Errorf("fleet: renewal: %w", err)
	}
	cert, err := tls.X509KeyPair(r.Cert, keyPEM)
	if err != nil {
		return fmt.Errorf("fleet: renewal: the new certificate is not for this unit's key: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("fleet: renewal: %w", err)
	}
	// Only a certificate from the pinned CA, for this unit, for client
	// authentication is taken: stops anyone able to write on the stream
	// from planting a certificate of their own choosing.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: l.tls.RootCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("fleet: renewal: the new certificate does not verify with the pinned CA: %w", err)
	}
	if leaf.Subject.CommonName != l.joined.UnitID {
		return fmt.Errorf("fleet: renewal: the new certificate names %q, not this unit", leaf.Subject.CommonName)
	}
	if oldLeaf, err := x509.ParseCertificate(old.Certificate[0]); err == nil && leaf.NotAfter.Before(oldLeaf.NotAfter) {
		return errors.New("fleet: renewal: the new certificate expires before the old one")
	}
	// Saved from what is on disk, not from memory: l.joined is read
	// without a lock by the running link and does not change here.
	j, _, err := Load(l.cfg.Dir)
	if err != nil {
		return fmt.Errorf("fleet: renewal: %w", err)
	}
	j.Cert = string(r.Cert)
	if err := saveJoined(l.cfg.Dir, j); err != nil {
		return err
	}
	l.tls.Certificates = []tls.Certificate{cert}
	l.cfg.Log.Info("fleet: unit certificate renewed", "expires", leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// saveJoined writes the fleet configuration whole or not at all: a
// crash while saving a renewal leaves the old one in place.
func saveJoined(dir string, j Joined) error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ConfigFile+".*")
	if err != nil {
		return fmt.Errorf("fleet: write %s: %w", ConfigFile, err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(append(b, '\n'))
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, ConfigFile))
	}
	if err != nil {
		return fmt.Errorf("fleet: write %s: %w", ConfigFile, err)
	}
	return nil
}
