package vault

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	dir := t.TempDir()
	v, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, KeyFile))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode().Perm())
	}
	sealed, err := v.Seal("trunk:a", []byte("carrier-password"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("carrier-password")) {
		t.Fatal("plaintext visible in sealed value")
	}
	v2, err := Open(dir) // same key from disk
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := v2.Open("trunk:a", sealed); err != nil || string(pt) != "carrier-password" {
		t.Fatalf("open: %q %v", pt, err)
	}
	if _, err := v2.Open("trunk:b", sealed); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("other label: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := v2.Open("trunk:a", sealed); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("tampered: %v", err)
	}
	other, _ := Open(t.TempDir())
	good, _ := v.Seal("x", []byte("y"))
	if _, err := other.Open("x", good); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("other key: %v", err)
	}
}

func TestRefusesReadableKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o644)
	if _, err := Open(dir); err == nil {
		t.Fatal("world-readable key accepted")
	}
}
