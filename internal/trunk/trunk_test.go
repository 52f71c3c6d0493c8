package trunk

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/vault"
)

func TestDirectory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v, err := vault.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := v.Seal(Label("b-carrier"), []byte("pw-b"))
	st.AddTrunk(ctx, store.Trunk{Name: "b-carrier", Peer: "127.0.0.20:5060", Transport: "udp", Username: "u", PasswordSealed: sealed})
	st.AddTrunk(ctx, store.Trunk{Name: "a-carrier", Peer: "[::1]:5070", Transport: "tcp"})
	d := NewDirectory(st, v, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if changed, err := d.Reload(ctx); err != nil || !changed {
		t.Fatalf("reload: %v %v", changed, err)
	}
	if changed, _ := d.Reload(ctx); changed {
		t.Fatal("second reload with no change reported a change")
	}
	for _, tt := range []struct {
		src   string
		trunk string
	}{
		{"127.0.0.20:5060", "b-carrier"},
		{"127.0.0.20:41234", "b-carrier"}, // carriers send from several ports
		{"[::1]:5070", "a-carrier"},
		{"127.0.0.21:5060", ""}, // a neighbour is not the carrier
		{"garbage", ""},
	} {
		got, ok := d.FromSource(tt.src)
		if ok != (tt.trunk != "") || got.Name != tt.trunk {
			t.Errorf("FromSource(%q) = %q %v, want %q", tt.src, got.Name, ok, tt.trunk)
		}
	}
	if out, ok := d.Outbound(); !ok || out.Name != "a-carrier" {
		t.Errorf("outbound trunk %q, want the first by name", out.Name)
	}
	b, _ := d.Get("b-carrier")
	if pw, err := d.Password(b); err != nil || pw != "pw-b" {
		t.Errorf("password: %q %v", pw, err)
	}
	// A sealed password moved to another trunk's row does not open.
	moved := b
	moved.Name = "a-carrier"
	if _, err := d.Password(moved); err == nil {
		t.Error("sealed password opened under another trunk's name")
	}
	st.DeleteTrunk(ctx, "b-carrier")
	d.Reload(ctx)
	if _, ok := d.FromSource("127.0.0.20:5060"); ok {
		t.Error("deleted trunk still recognised")
	}
}
