package wire

import (
	"crypto/ed25519"
	"errors"
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
