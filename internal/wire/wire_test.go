package wire

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/policy"
)

func TestSignVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	b := Bundle{Seq: 7, Created: time.Unix(1700000000, 0).UTC(), BlockInternational: true, Rates: []policy.Rate{{Prefix: "+232", PerMinute: 250}}}
	sb, err := Sign(priv, b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sb.Verify(pub)
	if err != nil || got.Seq != 7 || !got.BlockInternational || len(got.Rates) != 1 {
		t.Fatalf("verify: %+v %v", got, err)
	}
	forged, _ := Sign(other, b)
	if _, err := forged.Verify(pub); !errors.Is(err, ErrSignature) {
		t.Fatalf("another key's bundle: %v", err)
	}
	tampered := SignedBundle{Body: append([]byte(nil), sb.Body...), Sig: sb.Sig}
	tampered.Body[len(tampered.Body)-2] ^= 1
	if _, err := tampered.Verify(pub); !errors.Is(err, ErrSignature) {
		t.Fatalf("tampered body: %v", err)
	}
	if sb.Hash() == tampered.Hash() || len(sb.Hash()) != 64 {
		t.Fatal("hash does not follow the body")
	}
	bad, _ := Sign(priv, Bundle{Seq: 8, Rates: []policy.Rate{{Prefix: "abc", PerMinute: 1}}})
	if _, err := bad.Verify(pub); err == nil {
		t.Fatal("a signed bundle with an invalid rate verified")
	}
	zero, _ := Sign(priv, Bundle{})
	if _, err := zero.Verify(pub); err == nil {
		t.Fatal("a bundle without seq verified")
	}
}

// FuzzVerify: any bytes as a signed bundle are refused or decoded, never
// a panic; a forged signature never decodes.
func FuzzVerify(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	sb, _ := Sign(priv, Bundle{Seq: 1, BlockInternational: true})
	f.Add(sb.Body, sb.Sig)
	f.Add([]byte(`{"seq":1}`), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, body, sig []byte) {
		b, err := SignedBundle{Body: body, Sig: sig}.Verify(pub)
		if err == nil && b.Seq == 0 {
			t.Fatal("verified a bundle without seq")
		}
	})
}

// TestGrant: a grant verifies only with the pinned key, for its own
// unit, while live; a grant's signature never passes for a bundle's.
func TestGrant(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	g := Grant{Session: strings.Repeat("ab", 16), Unit: "u1", Operator: "alice", Created: now, Expires: now.Add(time.Hour)}
	sg, err := SignGrant(priv, g)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := sg.Verify(pub, "u1", now); err != nil || got.Operator != "alice" {
		t.Fatalf("good grant: %+v %v", got, err)
	}
	for name, check := range map[string]func() error{
		"other unit":  func() error { _, err := sg.Verify(pub, "u2", now); return err },
		"expired":     func() error { _, err := sg.Verify(pub, "u1", now.Add(2*time.Hour)); return err },
		"as a bundle": func() error { _, err := SignedBundle(sg).Verify(pub); return err },
		"future": func() error {
			f, _ := SignGrant(priv, Grant{Session: g.Session, Unit: "u1", Operator: "a", Created: now.Add(time.Hour), Expires: now.Add(2 * time.Hour)})
			_, err := f.Verify(pub, "u1", now)
			return err
		},
		"bad session": func() error {
			f, _ := SignGrant(priv, Grant{Session: "../../x", Unit: "u1", Operator: "a", Created: now, Expires: now.Add(time.Hour)})
			_, err := f.Verify(pub, "u1", now)
			return err
		},
	} {
		if check() == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

// FuzzGrant signs whatever body it is given, so that decoding and the
// checks after the signature are what is fuzzed.
func FuzzGrant(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	good, _ := json.Marshal(Grant{Session: strings.Repeat("0", 32), Unit: "u1", Operator: "op", Created: now, Expires: now.Add(time.Hour)})
	f.Add(good)
	f.Add([]byte(`{"session":"x","unit":"u1"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		sg := SignedGrant{Body: body, Sig: ed25519.Sign(priv, append([]byte(grantContext), body...))}
		g, err := sg.Verify(pub, "u1", now)
		if err == nil && (g.Unit != "u1" || !ValidSession(g.Session) || g.Operator == "" || now.After(g.Expires)) {
			t.Fatalf("verified an unusable grant: %+v", g)
		}
	})
}
