package digest

import (
	"strings"
	"testing"
	"time"

	icdigest "github.com/icholy/digest"

	"github.com/sekisho/sekisho/internal/credential"
)

const (
	realm = "sekisho"
	user  = "201"
	pass  = "correct-horse-battery-staple"
)

func secret(o credential.Offer) Secret {
	return Secret{
		Offer:     o,
		HA1MD5:    credential.HA1(credential.MD5, user, realm, pass),
		HA1SHA256: credential.HA1(credential.SHA256, user, realm, pass),
	}
}

func lookupFor(o credential.Offer) Lookup {
	return func(u string) (Secret, bool) {
		if u != user {
			return Secret{}, false
		}
		return secret(o), true
	}
}

// answer computes a client's Authorization value with icholy/digest's
// client side, independent of the code under test.
func answer(t *testing.T, challenge, username, password, method, uri string, nc int) string {
	t.Helper()
	ch, err := icdigest.ParseChallenge(challenge)
	if err != nil {
		t.Fatalf("parse challenge %q: %v", challenge, err)
	}
	cr, err := icdigest.Digest(ch, icdigest.Options{Method: method, URI: uri, Username: username, Password: password, Count: nc})
	if err != nil {
		t.Fatal(err)
	}
	return cr.String()
}

func newVerifier(t *testing.T) *Verifier {
	t.Helper()
	v, err := New(realm, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCheck(t *testing.T) {
	v := newVerifier(t)
	md5Chal := v.Challenges([]credential.Algorithm{credential.MD5}, false)[0]
	shaChal := v.Challenges([]credential.Algorithm{credential.SHA256}, false)[0]
	tests := []struct {
		name    string
		offer   credential.Offer
		header  string
		outcome Outcome
		reason  string
	}{
		{"md5 ok", credential.OfferMD5, answer(t, md5Chal, user, pass, "REGISTER", "sip:127.0.0.1:5060", 1), OK, "digest: ok"},
		{"sha256 ok", credential.OfferSHA256, answer(t, shaChal, user, pass, "REGISTER", "sip:pbx", 1), OK, "digest: ok"},
		{"both accepts md5", credential.OfferBoth, answer(t, md5Chal, user, pass, "INVITE", "sip:202@pbx", 2), OK, "digest: ok"},
		{"wrong password", credential.OfferMD5, answer(t, md5Chal, user, "guess", "REGISTER", "sip:pbx", 3), Failed, "digest: wrong password"},
		{"unknown user", credential.OfferMD5, answer(t, md5Chal, "999", pass, "REGISTER", "sip:pbx", 1), Failed, "digest: unknown user"},
		{"md5 downgrade refused", credential.OfferSHA256, answer(t, md5Chal, user, pass, "REGISTER", "sip:pbx", 4), Failed, "digest: algorithm MD5 not allowed for this user"},
		{"no header", credential.OfferMD5, "", Challenge, "digest: no credentials"},
		{"not digest", credential.OfferMD5, "Basic MjAxOnBhc3M=", Challenge, "digest: malformed credentials"},
		{"wrong realm", credential.OfferMD5, strings.Replace(answer(t, md5Chal, user, pass, "REGISTER", "sip:pbx", 5), `realm="sekisho"`, `realm="other"`, 1), Challenge, "digest: wrong realm or empty username"},
		{"forged nonce", credential.OfferMD5, answer(t, `Digest realm="sekisho", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", algorithm=MD5, qop="auth"`, user, pass, "REGISTER", "sip:pbx", 1), Challenge, "digest: nonce not issued by this server"},
		{"no qop", credential.OfferMD5, answer(t, strings.Replace(md5Chal, `, qop="auth"`, "", 1), user, pass, "REGISTER", "sip:pbx", 1), Challenge, "digest: qop=auth with nc and cnonce required"},
		// Signed for INVITE, presented on REGISTER: the method is bound.
		{"method bound", credential.OfferMD5, answer(t, md5Chal, user, pass, "INVITE", "sip:pbx", 6), Failed, "digest: wrong password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := "REGISTER"
			if tt.name == "both accepts md5" {
				method = "INVITE"
			}
			got := v.Check(method, tt.header, lookupFor(tt.offer))
			if got.Outcome != tt.outcome || got.Reason != tt.reason {
				t.Errorf("Check = %v %q, want %v %q", got.Outcome, got.Reason, tt.outcome, tt.reason)
			}
		})
	}
}

func TestReplayRefused(t *testing.T) {
	v := newVerifier(t)
	ch := v.DefaultChallenges(false)[0]
	h1 := answer(t, ch, user, pass, "REGISTER", "sip:pbx", 1)
	if r := v.Check("REGISTER", h1, lookupFor(credential.OfferMD5)); r.Outcome != OK {
		t.Fatalf("first use: %v %s", r.Outcome, r.Reason)
	}
	if r := v.Check("REGISTER", h1, lookupFor(credential.OfferMD5)); r.Outcome != Failed || r.Reason != "digest: nonce-count replay" {
		t.Fatalf("replay: %v %s, want Failed replay", r.Outcome, r.Reason)
	}
	h2 := answer(t, ch, user, pass, "REGISTER", "sip:pbx", 2)
	if r := v.Check("REGISTER", h2, lookupFor(credential.OfferMD5)); r.Outcome != OK {
		t.Fatalf("next nc: %v %s", r.Outcome, r.Reason)
	}
}

func TestStaleNonce(t *testing.T) {
	v := newVerifier(t)
	start := time.Now()
	v.now = func() time.Time { return start }
	ch := v.DefaultChallenges(false)[0]
	v.now = func() time.Time { return start.Add(2 * time.Minute) }
	h := answer(t, ch, user, pass, "REGISTER", "sip:pbx", 1)
	if r := v.Check("REGISTER", h, lookupFor(credential.OfferMD5)); r.Outcome != Stale {
		t.Fatalf("old nonce, right password: %v %s, want Stale", r.Outcome, r.Reason)
	}
	// A wrong password with an old nonce is a failure, not "stale": stale
	// would tell a guesser the nonce was the only problem.
	h = answer(t, ch, user, "nope", "REGISTER", "sip:pbx", 1)
	if r := v.Check("REGISTER", h, lookupFor(credential.OfferMD5)); r.Outcome != Failed {
		t.Fatalf("old nonce, wrong password: %v %s, want Failed", r.Outcome, r.Reason)
	}
	if c := v.Challenges([]credential.Algorithm{credential.MD5}, true)[0]; !strings.Contains(c, "stale=true") {
		t.Fatalf("stale challenge lacks stale=true: %s", c)
	}
}

func TestNoncesUnique(t *testing.T) {
	v := newVerifier(t)
	seen := map[string]bool{}
	for range 10000 {
		n := v.newNonce()
		if seen[n] {
			t.Fatalf("nonce repeated: %s", n)
		}
		seen[n] = true
	}
}

func TestUsedNoncesSwept(t *testing.T) {
	v := newVerifier(t)
	start := time.Now()
	v.now = func() time.Time { return start }
	for i := range 100 {
		h := answer(t, v.DefaultChallenges(false)[0], user, pass, "REGISTER", "sip:pbx", i+1)
		if r := v.Check("REGISTER", h, lookupFor(credential.OfferMD5)); r.Outcome != OK {
			t.Fatal(r.Reason)
		}
	}
	if n := v.remembered(); n != 100 {
		t.Fatalf("%d nonces remembered, want 100", n)
	}
	v.now = func() time.Time { return start.Add(3 * time.Minute) }
	h := answer(t, v.DefaultChallenges(false)[0], user, pass, "REGISTER", "sip:pbx", 1)
	if r := v.Check("REGISTER", h, lookupFor(credential.OfferMD5)); r.Outcome != OK {
		t.Fatal(r.Reason)
	}
	if n := v.remembered(); n != 1 {
		t.Fatalf("after expiry %d nonces remembered, want 1", n)
	}
}

func FuzzCheck(f *testing.F) {
	f.Add(`Digest username="201", realm="sekisho", nonce="abc", uri="sip:pbx", response="00", qop=auth, nc=00000001, cnonce="x"`)
	f.Add(`Digest username="", realm=""`)
	f.Add(`Digest ,,,,="`)
	f.Add("")
	v, err := New(realm, time.Minute)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := v.Check("REGISTER", header, lookupFor(credential.OfferMD5))
		if r.Outcome == OK {
			t.Fatalf("fuzzed header authenticated: %q", header)
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	v, _ := New(realm, time.Hour)
	ch := v.DefaultChallenges(false)[0]
	parsed, _ := icdigest.ParseChallenge(ch)
	lookup := lookupFor(credential.OfferMD5)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		cr, _ := icdigest.Digest(parsed, icdigest.Options{Method: "REGISTER", URI: "sip:pbx", Username: user, Password: pass, Count: i + 1})
		if r := v.Check("REGISTER", cr.String(), lookup); r.Outcome != OK {
			b.Fatal(r.Reason)
		}
	}
}
