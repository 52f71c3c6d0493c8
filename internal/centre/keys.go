package centre

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
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
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Files in the data directory. Each private key file is mode 0600 and
// is refused if group or others can read it.
const (
	CAFile         = "centre-ca.pem"     // the CA's certificate and key
	ServerFile     = "centre-server.pem" // the TLS listener's certificate, key and CA
	BundleKeyFile  = "bundle.key"        // ed25519 key that signs bundles
	WebhookKeyFile = "webhook.key"       // HMAC key that signs alert webhooks
	// OperatorKeyFile seals the dashboard operators' TOTP secrets
	// (AES-256-GCM), so a copy of the database alone yields no second
	// factor.
	OperatorKeyFile = "operator.key"
)

// UnitCertLifetime is how long a unit certificate is valid.
const UnitCertLifetime = 365 * 24 * time.Hour

// Keys are the centre's secrets: the CA that issues unit certificates
// and the centre's own, the bundle signing key, and the webhook key.
type Keys struct {
	CA         *x509.Certificate
	caKey      *ecdsa.PrivateKey
	Bundle     ed25519.PrivateKey
	WebhookKey []byte
	// operatorKey seals operators' TOTP secrets (see sealTOTP).
	operatorKey []byte
}

// LoadKeys loads the centre's keys from dir, making those missing (on
// first start).
func LoadKeys(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("centre: create data directory %s: %w", dir, err)
	}
	k := &Keys{}
	caPEM, err := loadOrMake(filepath.Join(dir, CAFile), makeCA)
	if err != nil {
		return nil, err
	}
	if k.CA, k.caKey, err = parseCertKey(caPEM); err != nil {
		return nil, fmt.Errorf("centre: %s: %w", filepath.Join(dir, CAFile), err)
	}
	bk, err := loadOrMake(filepath.Join(dir, BundleKeyFile), makeBundleKey)
	if err != nil {
		return nil, err
	}
	if k.Bundle, err = parseBundleKey(bk); err != nil {
		return nil, fmt.Errorf("centre: %s: %w", filepath.Join(dir, BundleKeyFile), err)
	}
	wk, err := loadOrMake(filepath.Join(dir, WebhookKeyFile), makeHexKey)
	if err != nil {
		return nil, err
	}
	if k.WebhookKey, err = hex.DecodeString(strings.TrimSpace(string(wk))); err != nil || len(k.WebhookKey) < 16 {
		return nil, fmt.Errorf("centre: %s is not a hex key of at least 16 bytes: delete it to have a new one made (and give webhook receivers the new one)", filepath.Join(dir, WebhookKeyFile))
	}
	ok, err := loadOrMake(filepath.Join(dir, OperatorKeyFile), makeHexKey)
	if err != nil {
		return nil, err
	}
	if k.operatorKey, err = hex.DecodeString(strings.TrimSpace(string(ok))); err != nil || len(k.operatorKey) != 32 {
		return nil, fmt.Errorf("centre: %s is not a hex key of 32 bytes: restore it from the other centres' data directory; "+
			"made anew, every operator must be added again (their second factors no longer open)", filepath.Join(dir, OperatorKeyFile))
	}
	return k, nil
}

// makeHexKey makes 32 random bytes, hex, for a key file.
func makeHexKey() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return []byte(hex.EncodeToString(b) + "\n"), nil
}

// CAFingerprint is the hex SHA-256 of the CA certificate's DER: what an
// enrolment token carries, for the unit to pin.
func (k *Keys) CAFingerprint() string {
	h := sha256.Sum256(k.CA.Raw)
	return hex.EncodeToString(h[:])
}

// CAPEM is the CA certificate, PEM.
func (k *Keys) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.CA.Raw})
}

// BundlePublic is the bundle key's public half, hex, as a unit pins it.
func (k *Keys) BundlePublic() string {
	return hex.EncodeToString(k.Bundle.Public().(ed25519.PublicKey))
}

// loadOrMake reads the private file at path, checking its mode, or
// makes it with mk. The file appears whole or not at all (written aside,
// then linked into place, which fails if it exists): two processes
// starting at once on a new data directory end with one key, not two.
func loadOrMake(path string, mk func() ([]byte, error)) ([]byte, error) {
	b, err := readPrivate(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	content, err := mk()
	if err != nil {
		return nil, fmt.Errorf("centre: make %s: %w", path, err)
	}
	tmp, err := writeTemp(path, content)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("centre: create %s: %w", path, err)
	}
	return readPrivate(path)
}

// writeTemp writes content to a new 0600 file beside path and syncs it.
func writeTemp(path string, content []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", fmt.Errorf("centre: create %s: %w", path, err)
	}
	name := f.Name()
	_, werr := f.Write(content)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(name, 0o600) // CreateTemp makes 0600; be sure
	}
	if werr != nil {
		os.Remove(name)
		return "", fmt.Errorf("centre: write %s: %w", path, werr)
	}
	return name, nil
}

// readPrivate reads a key file, refusing one that group or others can
// read: a CA key others can read lets them issue unit certificates, a
// bundle key lets them push policy to the whole fleet.
func readPrivate(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("centre: %s is readable by others (mode %v): chmod 600 it, and replace the key if others may have read it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("centre: read %s: %w", path, err)
	}
	return b, nil
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func pemCertKey(der []byte, key *ecdsa.PrivateKey, extra ...[]byte) ([]byte, error) {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	for _, e := range extra {
		pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: e})
	}
	pem.Encode(&buf, &pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	return buf.Bytes(), nil
}

// parseCertKey reads the first certificate and the EC key of a file.
func parseCertKey(b []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	var (
		cert *x509.Certificate
		key  *ecdsa.PrivateKey
	)
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		var err error
		switch blk.Type {
		case "CERTIFICATE":
			if cert == nil {
				if cert, err = x509.ParseCertificate(blk.Bytes); err != nil {
					return nil, nil, err
				}
			}
		case "EC PRIVATE KEY":
			if key, err = x509.ParseECPrivateKey(blk.Bytes); err != nil {
				return nil, nil, err
			}
		}
	}
	if cert == nil || key == nil {
		return nil, nil, errors.New("want a CERTIFICATE and an EC PRIVATE KEY block")
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, errors.New("the key is not the certificate's")
	}
	return cert, key, nil
}

func makeCA() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "sekisho centre CA", Organization: []string{"sekisho"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // issues leaves only: no intermediate can be slipped in
		SubjectKeyId:          keyID(&key.PublicKey),
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return pemCertKey(der, key)
}

func keyID(pub crypto.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	h := sha256.Sum256(der)
	return h[:20]
}

func makeBundleKey() ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseBundleKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("want a PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("not an ed25519 key")
	}
	return ek, nil
}

// ServerCert returns the TLS listener's certificate (with the CA
// certificate after it, so a unit enrolling can find the CA it pinned),
// for name (a host name or IP address) and the listen address's IP.
// It is made on first start and made again, under the same CA, when
// those names change or it nears its end.
func (k *Keys) ServerCert(dir, name, listen string) (tls.Certificate, error) {
	var dns []string
	var ips []net.IP
	add := func(h string) {
		if h == "" {
			return
		}
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() && !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if !slices.Contains(dns, h) {
			dns = append(dns, h)
		}
	}
	add(name)
	if h, _, err := net.SplitHostPort(listen); err == nil {
		add(h)
	}
	if len(dns) == 0 && len(ips) == 0 {
		add("localhost")
	}
	path := filepath.Join(dir, ServerFile)
	b, err := readPrivate(path)
	if err == nil {
		if c, err := tls.X509KeyPair(b, b); err == nil && k.serverCertFits(c, dns, ips) {
			return c, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, err
	}
	b, err = k.makeServerCert(dns, ips)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("centre: make server certificate: %w", err)
	}
	tmp, err := writeTemp(path, b)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return tls.Certificate{}, fmt.Errorf("centre: write %s: %w", path, err)
	}
	c, err := tls.X509KeyPair(b, b)
	if err != nil {
		return c, fmt.Errorf("centre: %s: %w", path, err)
	}
	return c, nil
}

// serverCertFits tells whether c is from this CA, for exactly these
// names, and valid for 30 days more.
func (k *Keys) serverCertFits(c tls.Certificate, dns []string, ips []net.IP) bool {
	leaf := c.Leaf
	if leaf == nil || leaf.CheckSignatureFrom(k.CA) != nil || time.Until(leaf.NotAfter) < 30*24*time.Hour {
		return false
	}
	if !slices.Equal(leaf.DNSNames, dns) || len(leaf.IPAddresses) != len(ips) {
		return false
	}
	for i := range ips {
		if !leaf.IPAddresses[i].Equal(ips[i]) {
			return false
		}
	}
	return true
}

func (k *Keys) makeServerCert(dns []string, ips []net.IP) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	cn := "sekisho centre"
	if len(dns) > 0 {
		cn = dns[0]
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:   sn,
		Subject:        pkix.Name{CommonName: cn},
		NotBefore:      now.Add(-time.Hour),
		NotAfter:       now.AddDate(2, 0, 0),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:       dns,
		IPAddresses:    ips,
		AuthorityKeyId: k.CA.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, k.CA, &key.PublicKey, k.caKey)
	if err != nil {
		return nil, err
	}
	return pemCertKey(der, key, k.CA.Raw)
}

// ErrBadCSR is a certificate request the centre will not sign.
var ErrBadCSR = errors.New("centre: bad certificate request")

// IssueUnit signs a certificate for unit id from the unit's PEM
// certificate request: client authentication only, for a year, with the
// id as its common name. Only the request's public key is used: its
// subject and names are the unit's to choose but are ignored, so a unit
// cannot ask for another unit's identity or a server certificate.
func (k *Keys) IssueUnit(csrPEM []byte, id string, now time.Time) (certPEM []byte, fingerprint string, err error) {
	blk, _ := pem.Decode(csrPEM)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return nil, "", fmt.Errorf("%w: want a PEM CERTIFICATE REQUEST", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	// The signature proves the requester holds the private key: without
	// it, someone with a token could have a certificate issued for a key
	// they do not own (another unit's public key).
	if err := csr.CheckSignature(); err != nil {
		return nil, "", fmt.Errorf("%w: signature: %v", ErrBadCSR, err)
	}
	switch pub := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384() {
			return nil, "", fmt.Errorf("%w: ECDSA key must be P-256 or P-384", ErrBadCSR)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return nil, "", fmt.Errorf("%w: RSA key under 2048 bits", ErrBadCSR)
		}
	default:
		return nil, "", fmt.Errorf("%w: unsupported key type %T", ErrBadCSR, csr.PublicKey)
	}
	sn, err := serial()
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:   sn,
		Subject:        pkix.Name{CommonName: id, Organization: []string{"sekisho unit"}},
		NotBefore:      now.Add(-time.Hour),
		NotAfter:       now.Add(UnitCertLifetime),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		AuthorityKeyId: k.CA.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, k.CA, csr.PublicKey, k.caKey)
	if err != nil {
		return nil, "", fmt.Errorf("centre: issue unit certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), CertFingerprint(der), nil
}

// CertFingerprint is the hex SHA-256 of a certificate's DER.
func CertFingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}
