package credential

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestNewPasswordStrength(t *testing.T) {
	bits := float64(PasswordLength) * math.Log2(float64(len(passwordAlphabet)))
	if bits < 128 {
		t.Fatalf("generated passwords carry %.1f bits, want >= 128", bits)
	}
	seen := map[string]bool{}
	for range 1000 {
		p, err := NewPassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != PasswordLength || strings.Trim(p, passwordAlphabet) != "" || seen[p] {
			t.Fatalf("bad or repeated password %q", p)
		}
		seen[p] = true
	}
}

func TestHA1KnownAnswers(t *testing.T) {
	// RFC 7616 section 3.9.1 example inputs; expected values computed
	// with coreutils md5sum and sha256sum.
	if got := HA1(MD5, "Mufasa", "http-auth@example.org", "Circle of Life"); got != "3d78807defe7de2157e2b0b6573a855f" {
		t.Fatalf("MD5 HA1 = %s", got)
	}
	if got := HA1(SHA256, "Mufasa", "http-auth@example.org", "Circle of Life"); got != "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232" {
		t.Fatalf("SHA-256 HA1 = %s", got)
	}
}

func TestCheckChosen(t *testing.T) {
	for _, tt := range []struct {
		user, pw string
		ok       bool
	}{
		{"201", "short", false},
		{"201", "my-phone-201-password", false},
		{"201", "a-long-enough-secret", true},
		{"201", "Tanaka-office-line-7", false}, // contains the display name
		{"201", "passwordpassword", false},     // a common word repeated
		{"201", "Password!20242024", false},    // a common word with digits
		{"201", "qwertyuiop123456", false},     // a keyboard walk
		{"201", "Welcome2024Sakura", false},    // two common words
		{"201", "1111111111111111", false},     // one character
		{"201", "1212121212121212", false},     // too few different characters
		{"201", "vivid-otter-31-lamp", true},
	} {
		err := CheckChosen(tt.user, tt.pw, "Tanaka")
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrWeakPassword)) {
			t.Errorf("CheckChosen(%q, %q) = %v", tt.user, tt.pw, err)
		}
	}
}

func TestOffer(t *testing.T) {
	if _, err := ParseOffer("sha1"); err == nil {
		t.Fatal("sha1 accepted")
	}
	o, _ := ParseOffer("BOTH")
	if a := o.Algorithms(); len(a) != 2 || a[0] != SHA256 {
		t.Fatalf("both must offer SHA-256 first: %v", a)
	}
	if OfferSHA256.Allows(MD5) || !OfferMD5.Allows(MD5) {
		t.Fatal("Allows wrong")
	}
}
