package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/policy"
)

// TestApplyFleetBundle: a bundle applies whole, rates and block together;
// an older or equal one is refused and changes nothing; the block shows
// in the freeze state the gate reads, and only a newer bundle lifts it.
func TestApplyFleetBundle(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if b, err := s.FleetBundle(ctx); err != nil || b.Seq != 0 {
		t.Fatalf("new store: %+v %v", b, err)
	}
	rates := []policy.Rate{{Prefix: "+232", PerMinute: 999, Note: "fleet"}}
	b := FleetBundle{Seq: 5, Hash: "h5", Body: []byte("{}"), Sig: []byte{1}, BlockIntl: true, Note: "SL wave", Applied: time.Now()}
	if err := s.ApplyFleetBundle(ctx, b, rates); err != nil {
		t.Fatal(err)
	}
	rs, _ := s.Rates(ctx)
	if len(rs) != 1 || rs[0].PerMinute != 999 {
		t.Fatalf("rates not replaced: %+v", rs)
	}
	f, _ := s.IntlFreeze(ctx)
	if f.Fleet != "bundle 5: SL wave" {
		t.Fatalf("freeze state %+v", f)
	}
	old := FleetBundle{Seq: 5, Hash: "old", Body: []byte("{}"), Sig: []byte{1}, Applied: time.Now()}
	if err := s.ApplyFleetBundle(ctx, old, []policy.Rate{}); !errors.Is(err, ErrStale) {
		t.Fatalf("replayed bundle: %v", err)
	}
	if got, _ := s.FleetBundle(ctx); got.Hash != "h5" || !got.BlockIntl {
		t.Fatalf("a stale bundle changed the state: %+v", got)
	}
	if rs, _ := s.Rates(ctx); len(rs) != 1 {
		t.Fatal("a stale bundle changed the rates")
	}
	// Lifted by a newer one that leaves the rates alone.
	if err := s.ApplyFleetBundle(ctx, FleetBundle{Seq: 6, Hash: "h6", Body: []byte("{}"), Sig: []byte{1}, Applied: time.Now()}, nil); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.IntlFreeze(ctx); f.Fleet != "" {
		t.Fatalf("still blocked: %+v", f)
	}
	if rs, _ := s.Rates(ctx); len(rs) != 1 {
		t.Fatal("nil rates changed the table")
	}
}
