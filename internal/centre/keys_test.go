package centre

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestKeysMadeOncePrivateAndStable(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CAFile, BundleKeyFile, WebhookKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, %v; want 0600", f, fi.Mode().Perm(), err)
		}
	}
	k2, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k1.CAFingerprint() != k2.CAFingerprint() || k1.BundlePublic() != k2.BundlePublic() || string(k1.WebhookKey) != string(k2.WebhookKey) {
		t.Fatal("the keys changed between two loads")
	}
	if !k1.CA.IsCA || k1.CA.MaxPathLen != 0 || !k1.CA.MaxPathLenZero {
		t.Fatalf("CA: IsCA %v, MaxPathLen %d", k1.CA.IsCA, k1.CA.MaxPathLen)
	}
	// A key others can read is refused, not used.
	os.Chmod(filepath.Join(dir, BundleKeyFile), 0o640)
	if _, err := LoadKeys(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a group-readable bundle key: %v, want a refusal that says chmod 600", err)
	}
}

func TestKeysRacingFirstStartsAgree(t *testing.T) {
	dir := t.TempDir()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		fps = map[string]bool{}
	)
	for range 6 {
		wg.Go(func() {
			k, err := LoadKeys(dir)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			fps[k.CAFingerprint()+k.BundlePublic()] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(fps) != 1 {
		t.Fatalf("%d different key sets from one data directory", len(fps))
	}
}

func TestServerCertNamesAndReissue(t *testing.T) {
	dir := t.TempDir()
	k, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := k.ServerCert(dir, "centre.example.jp", "192.0.2.7:7443")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Certificate) != 2 || CertFingerprint(c.Certificate[1]) != k.CAFingerprint() {
		t.Fatal("the server's chain does not carry the CA (a unit pins it there)")
	}
	roots := x509.NewCertPool()
	roots.AddCert(k.CA)
	for _, name := range []string{"centre.example.jp", "192.0.2.7"} {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Fatalf("server certificate for %s: %v", name, err)
		}
	}
	again, _ := k.ServerCert(dir, "centre.example.jp", "192.0.2.7:7443")
	if string(again.Certificate[0]) != string(c.Certificate[0]) {
		t.Fatal("the server certificate was made again with nothing changed")
	}
	moved, _ := k.ServerCert(dir, "other.example.jp", "0.0.0.0:7443")
	if _, err := moved.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.example.jp"}); err != nil {
		t.Fatalf("after --name changed: %v", err)
	}
	if len(moved.Leaf.IPAddresses) != 0 {
		t.Fatalf("0.0.0.0 is in the certificate: %v", moved.Leaf.IPAddresses)
	}
}

func TestIssueUnitIgnoresRequestedNames(t *testing.T) {
	k, err := LoadKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"centre.example.jp"}}, key)
	csr := pemBlock("CERTIFICATE REQUEST", der)
	certPEM, fp, err := k.IssueUnit(csr, "u-abc", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert := parsePEMCert(t, certPEM)
	if cert.Subject.CommonName != "u-abc" || len(cert.DNSNames) != 0 || cert.IsCA || CertFingerprint(cert.Raw) != fp {
		t.Fatalf("unit certificate: CN %q, DNS %v, CA %v", cert.Subject.CommonName, cert.DNSNames, cert.IsCA)
	}
	roots := x509.NewCertPool()
	roots.AddCert(k.CA)
	// Usable as a client, never as a server (it cannot pose as the centre).
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("a unit certificate verifies for server authentication")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
}

// TestTokenNeverAFlag: a token never starts with "-", which the CLI
// would take for a flag.
func TestTokenNeverAFlag(t *testing.T) {
	st, err := OpenStore(t.Context(), t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keys, err := LoadKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for range 300 {
		if tok, _, err := NewToken(t.Context(), st, keys, "", time.Hour); err != nil || strings.HasPrefix(tok, "-") {
			t.Fatalf("token %q starts with a dash", tok)
		}
	}
}
