// Package fleet is a unit's side of the maintenance link to the vendor's
// centre: joining the fleet once with a one-time token, then one outbound
// mutual-TLS stream that reports the unit's figures and alerts and
// receives signed policy bundles. Nothing listens on the unit for it.
//
// What the unit trusts is pinned at join: the centre's CA (by the
// fingerprint in the token, before anything is sent) and the centre's
// bundle key. A bundle must verify with that key and be newer than the
// one in force, and it is applied whole or not at all.
package fleet

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/wire"
)

// Files in the data directory.
const (
	KeyFile    = "fleet.key"  // the unit's private key (0600), made here, never sent
	ConfigFile = "fleet.json" // centre URL, certificates, pinned keys
)

// Joined is what a unit keeps after joining.
type Joined struct {
	Centre    string `json:"centre"` // https://host:port
	UnitID    string `json:"unit_id"`
	Cert      string `json:"cert"`       // PEM
	CA        string `json:"ca"`         // PEM, pinned
	BundleKey string `json:"bundle_key"` // hex ed25519, pinned
	Joined    string `json:"joined"`
}

// ParseToken splits a join token into its secret and the centre CA's
// SHA-256 fingerprint.
func ParseToken(tok string) (secret string, caSum []byte, err error) {
	secret, fp, ok := strings.Cut(strings.TrimSpace(tok), ".")
	sum, herr := hex.DecodeString(fp)
	if !ok || secret == "" || herr != nil || len(sum) != sha256.Size {
		return "", nil, errors.New("the token is not SECRET.FINGERPRINT as `sekisho centre enrol-token` prints it")
	}
	return secret, sum, nil
}

// pinnedTLS trusts exactly the CA whose certificate hashes to caSum, and
// must find it in the chain the centre presents. Stops a man in the
// middle at enrolment: the token, not the network, says who the centre is.
func pinnedTLS(host string, caSum []byte, found *[]byte) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection below: the pin, then the chain
		VerifyConnection: func(cs tls.ConnectionState) error {
			var ca *x509.Certificate
			for _, c := range cs.PeerCertificates {
				sum := sha256.Sum256(c.Raw)
				if subtle.ConstantTimeCompare(sum[:], caSum) == 1 {
					ca = c
				}
			}
			if ca == nil || len(cs.PeerCertificates) == 0 {
				return errors.New("fleet: the centre did not present the CA pinned by the token")
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
				return fmt.Errorf("fleet: the centre's certificate does not chain to the pinned CA: %w", err)
			}
			if found != nil {
				*found = ca.Raw
			}
			return nil
		},
	}
}

// Join enrols this unit with the centre at centreURL using tok, and keeps
// the result in dir.
func Join(ctx context.Context, dir, centreURL, tok, name, version string) (Joined, error) {
	u, err := url.Parse(centreURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return Joined{}, fmt.Errorf("URL: %q: want https://HOST:PORT of the centre", centreURL)
	}
	secret, caSum, err := ParseToken(tok)
	if err != nil {
		return Joined{}, fmt.Errorf("TOKEN: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err == nil {
		return Joined{}, fmt.Errorf("this unit has joined a fleet already (%s): leave it first with `sekisho fleet leave`", filepath.Join(dir, ConfigFile))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Joined{}, fmt.Errorf("fleet: key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		return Joined{}, fmt.Errorf("fleet: certificate request: %w", err)
	}
	body, _ := json.Marshal(wire.Enrol{Token: secret, Name: name, Version: version,
		CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})})
	var caDER []byte
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: pinnedTLS(u.Hostname(), caSum, &caDER), ForceAttemptHTTP2: true}}
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(centreURL, "/")+wire.EnrolPath, bytes.NewReader(body))
	if err != nil {
		return Joined{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return Joined{}, fmt.Errorf("fleet: join %s: %w", u.Host, err)
	}
	defer res.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusCreated {
		return Joined{}, fmt.Errorf("fleet: the centre refused the join: %s: %s", res.Status, strings.TrimSpace(string(rb)))
	}
	var got wire.Enrolled
	if err := json.Unmarshal(rb, &got); err != nil {
		return Joined{}, fmt.Errorf("fleet: the centre's answer: %w", err)
	}
	// The CA the centre hands over must be the one pinned.
	if blk, _ := pem.Decode(got.CA); blk == nil || !bytes.Equal(blk.Bytes, caDER) {
		return Joined{}, errors.New("fleet: the centre sent a CA other than the pinned one")
	}
	if kb, err := hex.DecodeString(got.BundleKey); err != nil || len(kb) != 32 {
		return Joined{}, errors.New("fleet: the centre sent no valid bundle key")
	}
	if _, err := tls.X509KeyPair(got.Cert, pemKey(key)); err != nil {
		return Joined{}, fmt.Errorf("fleet: the certificate from the centre is not for this unit's key: %w", err)
	}
	j := Joined{Centre: strings.TrimRight(centreURL, "/"), UnitID: got.UnitID, Cert: string(got.Cert), CA: string(got.CA),
		BundleKey: got.BundleKey, Joined: time.Now().UTC().Format(time.RFC3339)}
	if err := os.WriteFile(filepath.Join(dir, KeyFile), pemKey(key), 0o600); err != nil {
		return j, fmt.Errorf("fleet: write key: %w", err)
	}
	return j, saveJoined(dir, j)
}

func pemKey(k *ecdsa.PrivateKey) []byte {
	der, _ := x509.MarshalECPrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// ErrNotJoined is a unit without a fleet.
var ErrNotJoined = errors.New("fleet: this unit has not joined a fleet")

// Load reads what Join kept, or ErrNotJoined.
func Load(dir string) (Joined, tls.Certificate, error) {
	var j Joined
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if errors.Is(err, fs.ErrNotExist) {
		return j, tls.Certificate{}, ErrNotJoined
	}
	if err != nil {
		return j, tls.Certificate{}, fmt.Errorf("fleet: %w", err)
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return j, tls.Certificate{}, fmt.Errorf("fleet: %s: %w", ConfigFile, err)
	}
	kp := filepath.Join(dir, KeyFile)
	if fi, err := os.Stat(kp); err == nil && fi.Mode().Perm()&0o077 != 0 {
		// A key others can read could be copied to impersonate the unit.
		return j, tls.Certificate{}, fmt.Errorf("fleet: %s is readable by others (%v): chmod 600 it", kp, fi.Mode().Perm())
	}
	kb, err := os.ReadFile(kp)
	if err != nil {
		return j, tls.Certificate{}, fmt.Errorf("fleet: %w", err)
	}
	cert, err := tls.X509KeyPair([]byte(j.Cert), kb)
	if err != nil {
		return j, cert, fmt.Errorf("fleet: certificate and key: %w", err)
	}
	return j, cert, nil
}

// Leave forgets the fleet: the key and the pinned centre.
func Leave(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); errors.Is(err, fs.ErrNotExist) {
		return ErrNotJoined
	}
	for _, f := range []string{ConfigFile, KeyFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("fleet: %w", err)
		}
	}
	return nil
}
