package store

import (
	"context"
	"errors"
	"testing"
)

func TestVPNPeers(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if ps, err := s.VPNPeers(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("empty store: %v %v", ps, err)
	}
	a := VPNPeer{Name: "vendor", PublicKey: "AAAA", Address: "10.77.0.2"}
	if err := s.AddVPNPeer(ctx, a); err != nil {
		t.Fatal(err)
	}
	for _, dup := range []VPNPeer{
		{Name: "vendor", PublicKey: "BBBB", Address: "10.77.0.3"}, // same name
		{Name: "other", PublicKey: "AAAA", Address: "10.77.0.3"},  // same key
		{Name: "other", PublicKey: "BBBB", Address: "10.77.0.2"},  // same address
	} {
		if err := s.AddVPNPeer(ctx, dup); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate %+v: %v, want ErrExists", dup, err)
		}
	}
	if err := s.AddVPNPeer(ctx, VPNPeer{Name: "backup", PublicKey: "CCCC", Address: "10.77.0.3"}); err != nil {
		t.Fatal(err)
	}
	ps, err := s.VPNPeers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Name != "backup" || ps[1].Name != "vendor" || ps[1].PublicKey != "AAAA" ||
		ps[1].Address != "10.77.0.2" || ps[1].Created.IsZero() {
		t.Fatalf("peers %+v", ps)
	}
	if err := s.DeleteVPNPeer(ctx, "vendor"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVPNPeer(ctx, "vendor"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v, want ErrNotFound", err)
	}
	// The key and the address are free again.
	if err := s.AddVPNPeer(ctx, VPNPeer{Name: "vendor2", PublicKey: "AAAA", Address: "10.77.0.2"}); err != nil {
		t.Fatal(err)
	}
}
