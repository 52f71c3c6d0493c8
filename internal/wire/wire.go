// Package wire is the maintenance link's language: what a unit (a PBX in
// an office) and the vendor's centre say to each other, and the signed
// policy bundles the centre pushes.
//
// The unit always dials out: it enrols once over TLS pinned to the
// centre's CA fingerprint (carried in the enrolment token), then keeps one
// mutual-TLS HTTP/2 stream open to StreamPath, on which both sides write
// Messages as JSON lines. No port is opened on the unit for maintenance.
//
// A bundle is signed with the centre's ed25519 bundle key, pinned by the
// unit at enrolment, so neither a stolen unit certificate nor someone in
// the middle can push policy: only the centre's key can.
package wire

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sekisho/sekisho/internal/policy"
)

// Paths on the centre.
const (
	EnrolPath  = "/v1/enrol"
	StreamPath = "/v1/stream"
	// TunnelPath + a session id: the unit's side of a maintenance
	// session, opened by the unit (outbound, like the stream) when the
	// centre asks for one and the office allows it.
	TunnelPath = "/v1/tunnel/"
)

// Enrol is a unit's request for its certificate, with the one-time token.
type Enrol struct {
	Token   string `json:"token"`
	Name    string `json:"name"`    // the unit's own name for itself, shown in the centre
	CSR     []byte `json:"csr"`     // PEM certificate request for the unit's own key
	Version string `json:"version"` // sekisho version
}

// Enrolled is the centre's answer: the unit's identity and what it pins.
type Enrolled struct {
	UnitID    string `json:"unit_id"`
	Cert      []byte `json:"cert"`       // PEM: the unit's certificate, signed by the centre's CA
	CA        []byte `json:"ca"`         // PEM: the centre's CA certificate
	BundleKey string `json:"bundle_key"` // hex ed25519 public key that signs bundles
}

// Message types.
const (
	TypeHello  = "hello"  // unit -> centre, first on the stream
	TypeStatus = "status" // unit -> centre, every few seconds
	TypeAlert  = "alert"  // unit -> centre, as it happens
	TypeAck    = "ack"    // unit -> centre, for each bundle received
	TypeBundle = "bundle" // centre -> unit
	TypeSynced = "synced" // centre -> unit: no newer bundle than those sent
	TypePing   = "ping"   // centre -> unit, keeps the stream alive
	TypeOpen   = "open"   // centre -> unit: an operator asks for the unit's console
	// TypeDeclined answers an open the unit will not serve (maintenance
	// switched off by the office, a grant that does not verify).
	TypeDeclined = "declined"
	// TypeRenew asks for a new certificate for the unit's own key, well
	// before the one it holds expires; TypeRenewed carries it back.
	TypeRenew   = "renew"
	TypeRenewed = "renewed"
)

// Message is one JSON line on the stream; Type says which field is set.
type Message struct {
	Type   string        `json:"type"`
	Hello  *Hello        `json:"hello,omitempty"`
	Status *Status       `json:"status,omitempty"`
	Alert  *Alert        `json:"alert,omitempty"`
	Ack    *Ack          `json:"ack,omitempty"`
	Bundle *SignedBundle `json:"bundle,omitempty"`
	Open   *SignedGrant  `json:"open,omitempty"`
	// Declined names the session and why.
	Declined *Declined `json:"declined,omitempty"`
	Renew    *Renew    `json:"renew,omitempty"`
	Renewed  *Renewed  `json:"renewed,omitempty"`
}

// Renew is a certificate request (PEM) for the key the unit holds.
type Renew struct {
	CSR []byte `json:"csr"`
}

// Renewed is the new certificate (PEM), or why there is none.
type Renewed struct {
	Cert  []byte `json:"cert,omitempty"`
	Error string `json:"error,omitempty"`
}

// Hello opens the stream: who the unit is running as, and the last
// bundle it applied, so the centre sends what is newer.
type Hello struct {
	Version string `json:"version"`
	Applied uint64 `json:"applied"` // seq of the last bundle applied, 0: none
	Group   string `json:"group,omitempty"`
}

// Status is the unit's live figures.
type Status struct {
	At         time.Time      `json:"at"`
	Extensions int            `json:"extensions"`
	Registered int            `json:"registered"`
	Calls      int            `json:"calls"`
	Today      []CountryToday `json:"today"` // outbound calls today by country
	Frozen     string         `json:"frozen,omitempty"`
	Blocked    bool           `json:"blocked_international"` // by a bundle
	Suspended  []string       `json:"suspended,omitempty"`   // extensions suspended
	Applied    uint64         `json:"applied"`
	Evidence   bool           `json:"evidence_ok"` // the evidence log is being written
	// Maintenance is whether the office lets the vendor in (the console's
	// maintenance switch): whether a maintenance session can be opened.
	Maintenance bool `json:"maintenance"`
}

// CountryToday is a count of today's outbound calls to one country.
type CountryToday struct {
	Country string `json:"country"`
	Calls   int    `json:"calls"`
	Spend   int64  `json:"spend"`
}

// Alert is something the vendor should see at once: a suspension, a
// ban, gate denials, a registration from a new address, an evidence
// failure. Seq is the unit's evidence record, so the centre can tell a
// repeat from a new one after a reconnect.
type Alert struct {
	Seq     int64     `json:"seq"`
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	Detail  string    `json:"detail"`
	Count   int64     `json:"count"`
}

// Ack answers a bundle: applied (OK) or refused with the reason.
type Ack struct {
	Seq   uint64 `json:"seq"`
	Hash  string `json:"hash"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Bundle is the fleet's policy as the centre sets it: each bundle is the
// whole of it (not a change to the last), so a unit that was away needs
// only the newest one for its group.
type Bundle struct {
	Seq     uint64    `json:"seq"` // increasing; a unit never applies one not newer than it has
	Created time.Time `json:"created"`
	Group   string    `json:"group,omitempty"` // "": every unit
	Note    string    `json:"note,omitempty"`
	// BlockInternational refuses every call abroad (emergency numbers
	// are never abroad) until a newer bundle lifts it.
	BlockInternational bool `json:"block_international"`
	// Rates replaces the unit's rate table when not nil.
	Rates []policy.Rate `json:"rates,omitempty"`
}

// SignedBundle is a bundle's exact bytes and the centre's signature.
type SignedBundle struct {
	Body []byte `json:"body"` // JSON of a Bundle
	Sig  []byte `json:"sig"`
}

// sigContext separates bundle signatures from anything else the key
// could ever sign.
const sigContext = "sekisho-bundle-v1\n"

// Sign encodes and signs b.
func Sign(key ed25519.PrivateKey, b Bundle) (SignedBundle, error) {
	body, err := json.Marshal(b)
	if err != nil {
		return SignedBundle{}, fmt.Errorf("wire: encode bundle: %w", err)
	}
	return SignedBundle{Body: body, Sig: ed25519.Sign(key, append([]byte(sigContext), body...))}, nil
}

// ErrSignature is a bundle not signed by the pinned key.
var ErrSignature = errors.New("wire: bundle signature does not verify with the pinned centre key")

// Verify checks the signature with the pinned key, then decodes. The
// body is decoded only after it verifies: a forged bundle is never parsed.
func (s SignedBundle) Verify(pub ed25519.PublicKey) (Bundle, error) {
	var b Bundle
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, append([]byte(sigContext), s.Body...), s.Sig) {
		return b, ErrSignature
	}
	if err := json.Unmarshal(s.Body, &b); err != nil {
		return b, fmt.Errorf("wire: bundle body: %w", err)
	}
	if b.Seq == 0 {
		return b, errors.New("wire: bundle has no seq")
	}
	for _, r := range b.Rates {
		if err := policy.ValidPrefix(r.Prefix); err != nil || r.PerMinute < 0 {
			return b, fmt.Errorf("wire: bundle rate %q: invalid", r.Prefix)
		}
	}
	return b, nil
}

// Hash is the SHA-256 of the body, hex: what a unit acknowledges.
func (s SignedBundle) Hash() string {
	h := sha256.Sum256(s.Body)
	return hex.EncodeToString(h[:])
}

// Grant is the centre's request to open a unit's console for one
// operator. It is signed with the bundle key, so the unit keeps, in its
// evidence, the centre's own word for who came in and when.
type Grant struct {
	Session  string    `json:"session"` // random; the tunnel's path
	Unit     string    `json:"unit"`    // the only unit it opens
	Operator string    `json:"operator"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"` // the unit closes the session then
}

// SignedGrant is a grant's exact bytes and the centre's signature.
type SignedGrant struct {
	Body []byte `json:"body"`
	Sig  []byte `json:"sig"`
}

// Declined is a unit's refusal of a grant.
type Declined struct {
	Session string `json:"session"`
	Why     string `json:"why"`
}

// grantContext separates grant signatures from bundle signatures: a
// signed grant can never pass for a bundle, nor a bundle for a grant.
const grantContext = "sekisho-maintenance-v1\n"

// SignGrant encodes and signs g.
func SignGrant(key ed25519.PrivateKey, g Grant) (SignedGrant, error) {
	body, err := json.Marshal(g)
	if err != nil {
		return SignedGrant{}, fmt.Errorf("wire: encode grant: %w", err)
	}
	return SignedGrant{Body: body, Sig: ed25519.Sign(key, append([]byte(grantContext), body...))}, nil
}

// Verify checks the signature with the pinned key, then decodes, then
// checks the grant is for unit and live at now. It stops a grant for
// another unit being replayed here, and an old grant being replayed
// after it expired.
func (s SignedGrant) Verify(pub ed25519.PublicKey, unit string, now time.Time) (Grant, error) {
	var g Grant
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, append([]byte(grantContext), s.Body...), s.Sig) {
		return g, errors.New("wire: grant signature does not verify with the pinned centre key")
	}
	if err := json.Unmarshal(s.Body, &g); err != nil {
		return g, fmt.Errorf("wire: grant body: %w", err)
	}
	switch {
	case g.Unit != unit:
		return g, fmt.Errorf("wire: grant is for unit %q, not this one", g.Unit)
	case !ValidSession(g.Session):
		return g, errors.New("wire: grant has no valid session id")
	case g.Operator == "" || len(g.Operator) > 64:
		return g, errors.New("wire: grant names no operator")
	case now.After(g.Expires):
		return g, errors.New("wire: grant expired")
	case g.Created.After(now.Add(5 * time.Minute)):
		// Clocks differ a little; a grant from far in the future is not
		// one the centre just made.
		return g, errors.New("wire: grant made in the future: check the clocks")
	}
	return g, nil
}

// Hash is the SHA-256 of the grant's body, hex: what the unit records.
func (s SignedGrant) Hash() string {
	h := sha256.Sum256(s.Body)
	return hex.EncodeToString(h[:])
}

// ValidSession is a session id as the centre makes them: 32 lower-case
// hex digits, so it can go in a path and a log line as it is.
func ValidSession(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
