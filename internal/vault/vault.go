// Package vault seals secrets that sekisho must be able to use again, such
// as the password of a carrier trunk (unlike a phone's password, which is
// only ever verified and so is kept as a digest hash). Secrets are sealed
// with AES-256-GCM under a key kept in the data directory with mode 0600,
// so a copy of the database alone (a backup, a support bundle) does not
// give away the carrier credentials that toll fraud needs.
package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeyFile is the key's file name inside the data directory.
const KeyFile = "secret.key"

// ErrCorrupt is returned when a sealed value does not open: wrong key, or
// the ciphertext was changed.
var ErrCorrupt = errors.New("vault: sealed value does not open (wrong key or tampered)")

// Vault seals and opens secrets with one key. Safe for concurrent use.
type Vault struct {
	aead cipher.AEAD
}

// Open loads the key in dir, creating it on first use.
func Open(dir string) (*Vault, error) {
	path := filepath.Join(dir, KeyFile)
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("vault: new key: %w", err)
		}
		// O_EXCL: two processes creating the key at once must not end
		// with two different keys, one of them lost.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return Open(dir)
		}
		if err != nil {
			return nil, fmt.Errorf("vault: create %s: %w", path, err)
		}
		if _, err := f.Write(key); err != nil {
			f.Close()
			return nil, fmt.Errorf("vault: write %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("vault: sync %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("vault: close %s: %w", path, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("vault: read %s: %w", path, err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("vault: %s holds %d bytes, want 32: restore it from backup (trunk passwords cannot be opened without it)", path, len(key))
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		// Refuse a key others can read: it would hand them the trunk.
		return nil, fmt.Errorf("vault: %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return &Vault{aead: aead}, nil
}

// Seal encrypts plaintext; label binds the result to its use (for example
// "trunk:carrier1"), so a sealed value copied to another row does not open.
func (v *Vault) Seal(label string, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, v.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("vault: nonce: %w", err)
	}
	return v.aead.Seal(nonce, nonce, plaintext, []byte(label)), nil
}

// Open decrypts a value made by Seal with the same label.
func (v *Vault) Open(label string, sealed []byte) ([]byte, error) {
	n := v.aead.NonceSize()
	if len(sealed) < n+v.aead.Overhead() {
		return nil, ErrCorrupt
	}
	pt, err := v.aead.Open(nil, sealed[:n], sealed[n:], []byte(label))
	if err != nil {
		return nil, ErrCorrupt
	}
	return pt, nil
}
