// Package credential makes and hashes SIP secrets. Passwords are generated
// here, shown to a person once, and reduced to digest HA1 values; nothing
// else in sekisho ever sees a plaintext password.
package credential

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unicode"
)

// Algorithm is a digest algorithm name as it appears on the wire.
type Algorithm string

// Algorithms sekisho speaks.
const (
	MD5    Algorithm = "MD5"
	SHA256 Algorithm = "SHA-256" // RFC 8760
)

// Offer is the per-extension choice of which algorithms are offered in a
// challenge, in the order they are offered. Some phones read only the first
// challenge and do only MD5, so SHA-256 first is opt-in per extension.
type Offer string

// Offers that an extension can be set to.
const (
	OfferMD5    Offer = "md5"
	OfferSHA256 Offer = "sha256"
	OfferBoth   Offer = "both" // SHA-256 first, then MD5
)

// ParseOffer validates a --digest value.
func ParseOffer(s string) (Offer, error) {
	switch o := Offer(strings.ToLower(s)); o {
	case OfferMD5, OfferSHA256, OfferBoth:
		return o, nil
	}
	return "", fmt.Errorf("credential: unknown digest choice %q: use md5, sha256 or both", s)
}

// Algorithms returns the algorithms of o in offer order.
func (o Offer) Algorithms() []Algorithm {
	switch o {
	case OfferSHA256:
		return []Algorithm{SHA256}
	case OfferBoth:
		return []Algorithm{SHA256, MD5}
	default:
		return []Algorithm{MD5}
	}
}

// Allows reports whether o accepts a response computed with a.
func (o Offer) Allows(a Algorithm) bool {
	for _, x := range o.Algorithms() {
		if x == a {
			return true
		}
	}
	return false
}

// passwordAlphabet leaves out characters people confuse when they copy a
// password from a screen into a phone's keypad menu (0/O, 1/l/I).
const passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// PasswordLength gives 24 symbols from a 57-symbol alphabet: 24*log2(57) ≈
// 140 bits, above the 128 bits that make offline guessing from a captured
// digest exchange hopeless.
const PasswordLength = 24

// NewPassword returns a fresh random SIP password from crypto/rand.
func NewPassword() (string, error) {
	var b strings.Builder
	max := big.NewInt(int64(len(passwordAlphabet)))
	for range PasswordLength {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("credential: read random: %w", err)
		}
		b.WriteByte(passwordAlphabet[n.Int64()])
	}
	return b.String(), nil
}

// ErrWeakPassword is returned for a person-chosen password that guessing
// tools would find (svcrack tries the extension number first, then lists).
var ErrWeakPassword = errors.New("credential: password too weak")

// MinPasswordLength is the shortest password a person may set.
const MinPasswordLength = 16

// CheckChosen refuses a person-chosen password that guessing tools would
// find early: shorter than MinPasswordLength, containing the extension
// number or any of names (display name, user name), built on a common
// password from the bundled list (case, and digits or symbols at the ends,
// ignored; repetitions too), or made of fewer than six different
// characters. In the incident, changed passwords were broken too.
func CheckChosen(user, password string, names ...string) error {
	if len(password) < MinPasswordLength {
		return fmt.Errorf("%w: shorter than %d characters", ErrWeakPassword, MinPasswordLength)
	}
	low := strings.ToLower(password)
	if user != "" && strings.Contains(low, strings.ToLower(user)) {
		return fmt.Errorf("%w: contains the extension number", ErrWeakPassword)
	}
	for _, n := range names {
		if n = strings.ToLower(strings.TrimSpace(n)); len(n) >= 3 && strings.Contains(low, n) {
			return fmt.Errorf("%w: contains the name %q", ErrWeakPassword, n)
		}
	}
	distinct := map[rune]bool{}
	for _, r := range low {
		distinct[r] = true
	}
	if len(distinct) < 6 {
		return fmt.Errorf("%w: fewer than 6 different characters", ErrWeakPassword)
	}
	if base := commonBase(low); base != "" {
		return fmt.Errorf("%w: built on the common password %q", ErrWeakPassword, base)
	}
	return nil
}

//go:embed common.txt
var commonText string

var common = func() map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(commonText, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			m[l] = true
		}
	}
	return m
}()

// commonBase returns the common password low is built on, or "".
func commonBase(low string) string {
	core := strings.TrimFunc(low, func(r rune) bool { return !unicode.IsLetter(r) })
	if core == "" {
		return ""
	}
	// "passwordpassword", "qwertyqwerty": a word repeated.
	for n := 1; n <= len(core)/2; n++ {
		if len(core)%n == 0 && strings.Repeat(core[:n], len(core)/n) == core {
			core = core[:n]
			break
		}
	}
	if common[core] {
		return core
	}
	// "Password!2024#Welcome": two common words around digits.
	words := strings.FieldsFunc(core, func(r rune) bool { return !unicode.IsLetter(r) })
	all := len(words) > 0
	for _, w := range words {
		all = all && common[w]
	}
	if all {
		return strings.Join(words, "+")
	}
	return ""
}

// HA1 returns hex H(user:realm:password) for algorithm a (RFC 7616 3.4.2).
func HA1(a Algorithm, user, realm, password string) string {
	return Hash(a, user+":"+realm+":"+password)
}

// Hash returns the hex digest of s under algorithm a.
func Hash(a Algorithm, s string) string {
	switch a {
	case SHA256:
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	default:
		h := md5.Sum([]byte(s))
		return hex.EncodeToString(h[:])
	}
}
