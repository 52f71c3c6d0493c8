// Package digest is sekisho's server side of SIP digest authentication
// (RFC 3261 section 22, RFC 7616, RFC 8760 for SHA-256), built on
// github.com/icholy/digest for parsing credentials and formatting
// challenges. sipgo has only the client side.
//
// Nonces carry their own issue time and an HMAC, so issuing one costs no
// memory: an unauthenticated flood cannot grow server state. Only nonces
// that authenticated successfully are remembered, with their highest
// nonce-count, to refuse replays.
package digest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"math"
	"strings"
	"sync"
	"time"

	icdigest "github.com/icholy/digest"

	"github.com/sekisho/sekisho/internal/credential"
)

// Outcome is what a credential check decided.
type Outcome int

// Outcomes of Check.
const (
	// Challenge: no or unusable credentials; answer 401/407 with a fresh challenge.
	Challenge Outcome = iota
	// Stale: the response was right but the nonce is too old; challenge again with stale=true.
	Stale
	// Failed: credentials were checked and are wrong; challenge again (same bytes as Challenge on the wire).
	Failed
	// OK: authenticated.
	OK
	// Unavailable: the account could not be read (the store is
	// overloaded or failing). Set by the caller of Check, which alone
	// knows; answered 503, and never counted as a failed guess.
	Unavailable
)

// Result is the verdict of Check with a stable reason for the evidence log.
// Reason is internal: it is never sent to the peer.
type Result struct {
	Outcome Outcome
	User    string // the username the client claimed (authenticated only if OK)
	Reason  string
}

// Secret is what the verifier needs to know about an account.
type Secret struct {
	Offer     credential.Offer
	HA1MD5    string
	HA1SHA256 string
}

func (s Secret) ha1(a credential.Algorithm) string {
	if a == credential.SHA256 {
		return s.HA1SHA256
	}
	return s.HA1MD5
}

// Lookup finds the secret for a user within realm. ok is false if the user
// does not exist; the verifier then still does the same work.
type Lookup func(user string) (Secret, bool)

// Verifier issues and checks nonces for one realm. It is safe for
// concurrent use.
type Verifier struct {
	realm    string
	key      [32]byte
	lifetime time.Duration
	now      func() time.Time
	dummy    Secret

	// macs holds HMAC-SHA256 states keyed with key, reused: making one
	// costs two SHA-256 states and their buffers, twice per registration.
	macs sync.Pool

	mu sync.Mutex
	// used remembers the highest nonce-count seen for each nonce that
	// authenticated, in one map per lifetime-long slice of issue time
	// (issue time / lifetime). A nonce is usable for one lifetime, so
	// only the current slice and the one before matter; older slices
	// are dropped whole, which costs nothing however many nonces they
	// hold. Keys and values hold no pointers, so the collector does not
	// scan them. Guarded by mu.
	used map[int64]map[nonceID]uint32
}

// nonceID is a nonce's issue time and random bytes: unique per nonce.
type nonceID [nonceTimeLen + nonceRandLen]byte

// DefaultNonceLifetime is how long a nonce stays fresh.
const DefaultNonceLifetime = 5 * time.Minute

// New returns a Verifier for realm with a random HMAC key. lifetime <= 0
// means DefaultNonceLifetime.
func New(realm string, lifetime time.Duration) (*Verifier, error) {
	if lifetime <= 0 {
		lifetime = DefaultNonceLifetime
	}
	v := &Verifier{realm: realm, lifetime: lifetime, now: time.Now, used: make(map[int64]map[nonceID]uint32)}
	if _, err := rand.Read(v.key[:]); err != nil {
		return nil, fmt.Errorf("digest: nonce key: %w", err)
	}
	v.macs.New = func() any { return hmac.New(sha256.New, v.key[:]) }
	// A random secret for unknown users, so that a wrong guess for an
	// unknown user costs the same hashing as one for a known user: no
	// timing difference tells an enumerator which extensions exist.
	var junk [16]byte
	if _, err := rand.Read(junk[:]); err != nil {
		return nil, fmt.Errorf("digest: dummy secret: %w", err)
	}
	pw := base64.RawURLEncoding.EncodeToString(junk[:])
	v.dummy = Secret{
		Offer:     credential.OfferBoth,
		HA1MD5:    credential.HA1(credential.MD5, "unknown", realm, pw),
		HA1SHA256: credential.HA1(credential.SHA256, "unknown", realm, pw),
	}
	return v, nil
}

// Realm returns the realm challenges are issued for.
func (v *Verifier) Realm() string { return v.realm }

const (
	nonceTimeLen = 8
	nonceRandLen = 12
	nonceMACLen  = 12
	nonceLen     = nonceTimeLen + nonceRandLen + nonceMACLen
)

// newNonce returns time || random || HMAC(key, time || random). Random
// bytes keep nonces unique under load (a timestamp alone collides).
func (v *Verifier) newNonce() string {
	var b [nonceLen]byte
	binary.BigEndian.PutUint64(b[:nonceTimeLen], uint64(v.now().UnixNano()))
	if _, err := rand.Read(b[nonceTimeLen : nonceTimeLen+nonceRandLen]); err != nil {
		panic("digest: crypto/rand failed: " + err.Error()) // the platform is broken; never issue a guessable nonce
	}
	mac := v.mac(b[:nonceTimeLen+nonceRandLen])
	copy(b[nonceTimeLen+nonceRandLen:], mac[:nonceMACLen])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// mac returns HMAC-SHA256(key, data).
func (v *Verifier) mac(data []byte) [sha256.Size]byte {
	m := v.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(data)
	var out [sha256.Size]byte
	m.Sum(out[:0])
	v.macs.Put(m)
	return out
}

// openNonce checks a nonce's MAC and returns its issue time. A nonce we did
// not issue (forged, or from before a restart) is refused: this stops an
// attacker from choosing nonces to precompute responses.
func (v *Verifier) openNonce(n string) (nonceID, time.Time, bool) {
	var id nonceID
	if base64.RawURLEncoding.DecodedLen(len(n)) != nonceLen {
		return id, time.Time{}, false
	}
	var b [nonceLen]byte
	if _, err := base64.RawURLEncoding.Decode(b[:], []byte(n)); err != nil {
		return id, time.Time{}, false
	}
	mac := v.mac(b[:nonceTimeLen+nonceRandLen])
	if !hmac.Equal(mac[:nonceMACLen], b[nonceTimeLen+nonceRandLen:]) {
		return id, time.Time{}, false
	}
	copy(id[:], b[:])
	return id, time.Unix(0, int64(binary.BigEndian.Uint64(b[:nonceTimeLen]))), true
}

// Challenges returns the header values (WWW-Authenticate or
// Proxy-Authenticate) for the given algorithms, in order, each with a fresh
// nonce. stale marks a retry after an expired nonce (RFC 7616 3.3).
func (v *Verifier) Challenges(algs []credential.Algorithm, stale bool) []string {
	out := make([]string, 0, len(algs))
	for _, a := range algs {
		c := icdigest.Challenge{
			Realm:     v.realm,
			Nonce:     v.newNonce(),
			Algorithm: string(a),
			QOP:       []string{"auth"},
			Stale:     stale,
		}
		out = append(out, c.String())
	}
	return out
}

// DefaultChallenges is what an unknown or not-yet-identified user is
// offered: the same as an extension with the default (MD5) offer, so the
// challenge's shape does not reveal whether the user exists.
func (v *Verifier) DefaultChallenges(stale bool) []string {
	return v.Challenges(credential.OfferMD5.Algorithms(), stale)
}

// Check verifies an Authorization/Proxy-Authorization header value for a
// request with the given method. header is "" if the request carried none.
func (v *Verifier) Check(method, header string, lookup Lookup) Result {
	if header == "" {
		return Result{Outcome: Challenge, Reason: "digest: no credentials"}
	}
	cr, err := parseCredentials(header)
	if err != nil {
		return Result{Outcome: Challenge, Reason: "digest: malformed credentials"}
	}
	res := Result{User: cr.Username}
	if cr.Username == "" || cr.Realm != v.realm {
		res.Outcome, res.Reason = Challenge, "digest: wrong realm or empty username"
		return res
	}
	alg := credential.MD5
	switch strings.ToUpper(cr.Algorithm) {
	case "", "MD5":
	case "SHA-256":
		alg = credential.SHA256
	default:
		res.Outcome, res.Reason = Challenge, "digest: unsupported algorithm "+cr.Algorithm
		return res
	}
	// qop=auth is required: without it there is no nonce-count, and a
	// captured response could be replayed for the nonce's whole lifetime.
	if cr.QOP != "auth" || cr.Nc <= 0 || cr.Cnonce == "" {
		res.Outcome, res.Reason = Challenge, "digest: qop=auth with nc and cnonce required"
		return res
	}
	id, issued, ok := v.openNonce(cr.Nonce)
	if !ok {
		res.Outcome, res.Reason = Challenge, "digest: nonce not issued by this server"
		return res
	}
	sec, known := lookup(cr.Username)
	if !known {
		sec = v.dummy
	}
	// The response is computed with the digest uri the client signed:
	// SIPp signs sip:host:port rather than the Request-URI. The method, the
	// server-issued nonce and the nonce-count still bind the response.
	ha2 := credential.Hash(alg, method+":"+cr.URI)
	want := credential.Hash(alg, fmt.Sprintf("%s:%s:%08x:%s:%s:%s", sec.ha1(alg), cr.Nonce, cr.Nc, cr.Cnonce, cr.QOP, ha2))
	// Constant-time compare: a byte-by-byte early exit would let an
	// attacker learn the expected response a prefix at a time.
	match := subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(cr.Response))) == 1
	switch {
	case !known:
		res.Outcome, res.Reason = Failed, "digest: unknown user"
		return res
	case !sec.Offer.Allows(alg):
		// Downgrade guard: an extension set to SHA-256 only must not be
		// reachable through an MD5 response.
		res.Outcome, res.Reason = Failed, "digest: algorithm "+string(alg)+" not allowed for this user"
		return res
	case !match:
		res.Outcome, res.Reason = Failed, "digest: wrong password"
		return res
	}
	now := v.now()
	if now.Sub(issued) > v.lifetime || issued.After(now.Add(time.Minute)) {
		res.Outcome, res.Reason = Stale, "digest: nonce expired"
		return res
	}
	if !v.useNonce(id, cr.Nc, issued, now) {
		// Replay guard: the same (nonce, nc) twice is a captured request
		// being played again.
		res.Outcome, res.Reason = Failed, "digest: nonce-count replay"
		return res
	}
	res.Outcome, res.Reason = OK, "digest: ok"
	return res
}

// useNonce records nc for the nonce id issued at issued and reports
// whether it is higher than any seen before. The caller has checked that
// the nonce is within its lifetime.
func (v *Verifier) useNonce(id nonceID, nc int, issued, now time.Time) bool {
	if nc <= 0 || nc > math.MaxUint32 {
		return false
	}
	slice := issued.UnixNano() / int64(v.lifetime)
	current := now.UnixNano() / int64(v.lifetime)
	v.mu.Lock()
	defer v.mu.Unlock()
	for k := range v.used {
		if k < current-1 {
			delete(v.used, k) // every nonce in it is past its lifetime
		}
	}
	m := v.used[slice]
	if m == nil {
		m = make(map[nonceID]uint32)
		v.used[slice] = m
	}
	if seen, ok := m[id]; ok && uint32(nc) <= seen {
		return false
	}
	m[id] = uint32(nc)
	return true
}

// remembered returns how many nonces are remembered.
func (v *Verifier) remembered() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, m := range v.used {
		n += len(m)
	}
	return n
}
