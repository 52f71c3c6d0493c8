package vpn

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeyFile is the unit's WireGuard private key inside the data directory,
// base64 on one line as `wg genkey` writes it (so `wg pubkey < vpn.key`
// shows the public key).
const KeyFile = "vpn.key"

// Key is a WireGuard key: a Curve25519 private or public key.
type Key [32]byte

// ParseKey decodes a base64 key as `wg` prints it.
func ParseKey(s string) (Key, error) {
	var k Key
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return k, errors.New("not base64 (a WireGuard key looks like what `wg genkey | wg pubkey` prints)")
	}
	if len(b) != len(k) {
		return k, fmt.Errorf("%d bytes, want 32 (a WireGuard key is 44 base64 characters)", len(b))
	}
	copy(k[:], b)
	if k == (Key{}) {
		// An all-zero public key is a low-order point: every handshake
		// with it would have a known shared secret.
		return k, errors.New("all zeros, not a real key")
	}
	return k, nil
}

// String returns the key in base64, as `wg` prints it.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// hex is the key as wireguard-go's configuration protocol wants it.
func (k Key) hex() string { return hex.EncodeToString(k[:]) }

// Public returns the public key of the private key k.
func (k Key) Public() Key {
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		panic("vpn: X25519 rejected a 32-byte key: " + err.Error()) // cannot happen: the length is fixed
	}
	var pub Key
	copy(pub[:], priv.PublicKey().Bytes())
	return pub
}

// NewPrivateKey makes a private key as `wg genkey` does: 32 random bytes,
// clamped for Curve25519.
func NewPrivateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("vpn: new key: %w", err)
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k, nil
}

// LoadKey returns the unit's private key from DATA/vpn.key, making it on
// first use (mode 0600).
func LoadKey(dir string) (Key, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createKey(path); err != nil {
			return Key{}, err
		}
		return LoadKey(dir)
	}
	if err != nil {
		return Key{}, fmt.Errorf("vpn: read %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return Key{}, fmt.Errorf("vpn: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		// Refuse a key others can read: whoever holds it can pose as
		// the unit to the vendor's peer and read the console's traffic.
		return Key{}, fmt.Errorf("vpn: %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return Key{}, fmt.Errorf("vpn: %s: %v: restore it from backup, or delete it to make a new one (every peer then needs the new public key)", path, err)
	}
	return k, nil
}

// createKey writes a new private key to path, unless one is already
// there.
func createKey(path string) error {
	k, err := NewPrivateKey()
	if err != nil {
		return err
	}
	// O_EXCL: two processes (the server and `vpn add-peer`) creating the
	// key at once must not end with two different keys, one of them lost.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vpn: create %s: %w", path, err)
	}
	_, err = f.WriteString(k.String() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("vpn: write %s: %w", path, err)
	}
	return nil
}

// ServerPublicKey returns the unit's public key in base64, as `wg`
// prints it, making the key pair on first use.
func ServerPublicKey(dir string) (string, error) {
	k, err := LoadKey(dir)
	if err != nil {
		return "", err
	}
	return k.Public().String(), nil
}
