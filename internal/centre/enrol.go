package centre

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/sekisho/sekisho/internal/wire"
)

// tokenSecretSize is the random part of an enrolment token, in bytes.
const tokenSecretSize = 32

// NewToken makes a one-time enrolment token for a unit of group, valid
// for valid: "<32 random bytes, base64url>.<hex SHA-256 of the CA
// certificate>". Only a hash of the random part is stored, so a copy of
// the database enrols nothing.
func NewToken(ctx context.Context, st *Store, k *Keys, group string, valid time.Duration) (token string, expires time.Time, err error) {
	if valid <= 0 {
		return "", time.Time{}, errors.New("centre: a token must be valid for some time (--for)")
	}
	group = cleanText(group, 64) // as Push has it, so the two match
	secret := make([]byte, tokenSecretSize)
	// Drawn again while it would start with "-" (first six bits 62 in
	// base64url): `sekisho fleet join URL -xyz...` would read the token as
	// a flag. One token in 64 did.
	for {
		if _, err := rand.Read(secret); err != nil {
			return "", time.Time{}, fmt.Errorf("centre: token: %w", err)
		}
		if secret[0]>>2 != 62 {
			break
		}
	}
	now := time.Now()
	expires = now.Add(valid)
	if err := st.AddToken(ctx, TokenHash(secret), group, now, expires); err != nil {
		return "", time.Time{}, err
	}
	return base64.RawURLEncoding.EncodeToString(secret) + "." + k.CAFingerprint(), expires, nil
}

// tokenSecret takes the random part out of a token as the unit sends it:
// the secret alone, or the whole token. A whole token must name this
// centre's CA: one made for another centre is refused before its
// secret is even looked at.
func tokenSecret(tok, caFingerprint string) ([]byte, error) {
	secret, fp, whole := strings.Cut(strings.TrimSpace(tok), ".")
	if whole && subtle.ConstantTimeCompare([]byte(strings.ToLower(fp)), []byte(caFingerprint)) != 1 {
		return nil, errors.New("the token was made for another centre (its CA fingerprint is not this centre's)")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(secret)
	if err != nil || len(b) != tokenSecretSize {
		return nil, errors.New("the token is not one `sekisho centre enrol-token` printed")
	}
	return b, nil
}

// newUnitID returns a random unit id such as u-3kq7...: 80 bits, so ids
// are not guessed or enumerated.
func newUnitID() (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "u-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// cleanText keeps a unit-chosen label printable and short: it is shown
// in the centre's terminal and alert mails, where control characters
// could forge lines.
func cleanText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, strings.TrimSpace(s))
	if r := []rune(s); len(r) > n {
		s = string(r[:n])
	}
	return s
}

// maxEnrolBody bounds an enrolment request: a CSR is a few hundred bytes.
const maxEnrolBody = 64 << 10

// enrol handles POST /v1/enrol: a one-time token and a certificate
// request in, the unit's id and certificate, the CA and the bundle key
// out. No client certificate is needed: the token is the credential.
func (s *Server) enrol(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var req wire.Enrol
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxEnrolBody))
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "the request is not an enrolment (JSON of wire.Enrol): "+err.Error(), http.StatusBadRequest)
		return
	}
	secret, err := tokenSecret(req.Token, s.keys.CAFingerprint())
	if err != nil {
		s.log.Warn("centre: enrolment refused", "remote", r.RemoteAddr, "why", err.Error())
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	now := time.Now()
	var cert []byte
	u, why, err := s.st.Enrol(r.Context(), TokenHash(secret), now, func(group string) (Unit, error) {
		id, err := newUnitID()
		if err != nil {
			return Unit{}, err
		}
		c, fp, err := s.keys.IssueUnit(req.CSR, id, now)
		if err != nil {
			return Unit{}, err
		}
		cert = c
		return Unit{ID: id, Name: cleanText(req.Name, 64), Group: group, CertFingerprint: fp, Enrolled: now,
			Version: cleanText(req.Version, 64)}, nil
	})
	switch {
	case errors.Is(err, ErrTokenInvalid):
		// One answer for unknown, used and expired: a stranger learns
		// nothing. The log says which.
		s.log.Warn("centre: enrolment refused", "remote", r.RemoteAddr, "why", why)
		http.Error(w, "enrolment token unknown, used or expired: ask the vendor for a new one", http.StatusForbidden)
		return
	case errors.Is(err, ErrBadCSR):
		s.log.Warn("centre: enrolment refused", "remote", r.RemoteAddr, "why", err.Error())
		http.Error(w, err.Error()+" (the token was not used: try again with a good request)", http.StatusBadRequest)
		return
	case err != nil:
		s.log.Error("centre: enrolment failed", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "the centre could not enrol the unit; the token was not used", http.StatusInternalServerError)
		return
	}
	s.log.Info("centre: unit enrolled", "unit", u.ID, "name", u.Name, "group", u.Group, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(wire.Enrolled{UnitID: u.ID, Cert: cert, CA: s.keys.CAPEM(), BundleKey: s.keys.BundlePublic()})
}
