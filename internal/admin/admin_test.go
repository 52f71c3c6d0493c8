package admin

import (
	"context"
	"errors"
	"testing"

	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/store"
)

func open(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func field(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

func TestAddExtension(t *testing.T) {
	ctx := context.Background()
	st := open(t)
	if _, _, err := AddExtension(ctx, st, "12a", "", credential.OfferMD5); field(err) != "number" {
		t.Fatalf("bad number: %v", err)
	}
	if _, _, err := AddExtension(ctx, st, "201", "Desk\r\nX", credential.OfferMD5); field(err) != "name" {
		t.Fatalf("name with a line break: %v", err)
	}
	e, pw, err := AddExtension(ctx, st, "201", "Desk", credential.OfferMD5)
	if err != nil || len(pw) < 20 {
		t.Fatalf("add: %v, password %q", err, pw)
	}
	if e.HA1MD5 != credential.HA1(credential.MD5, "201", e.Realm, pw) {
		t.Fatal("stored hash is not of the password given out")
	}
	if _, _, err := AddExtension(ctx, st, "201", "", credential.OfferMD5); !errors.Is(err, store.ErrExists) || field(err) != "number" {
		t.Fatalf("second add: %v", err)
	}
}

// TestSetExtensionAllOrNothing: one bad field changes nothing at all.
func TestSetExtensionAllOrNothing(t *testing.T) {
	ctx := context.Background()
	st := open(t)
	AddExtension(ctx, st, "201", "", credential.OfferMD5)
	mobile, bad := "mobile", "XX,??"
	if _, _, err := SetExtension(ctx, st, "201", ExtChange{Class: &mobile, Countries: &bad}); field(err) != "countries" {
		t.Fatalf("bad countries: %v", err)
	}
	if e, _ := st.Extension(ctx, "201"); e.Class != "" {
		t.Fatalf("class changed to %q by a refused change", e.Class)
	}
	nope := "nope"
	if _, _, err := SetExtension(ctx, st, "201", ExtChange{Profile: &nope}); field(err) != "profile" || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown profile: %v", err)
	}
	if _, _, err := SetExtension(ctx, st, "999", ExtChange{Class: &mobile}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown extension: %v", err)
	}
	_, p, err := SetExtension(ctx, st, "201", ExtChange{Class: &mobile})
	if err != nil || p.Profile.Class != "mobile" {
		t.Fatalf("set: %v %v", err, p.Profile.Class)
	}
}

// TestCheckNumber: the dry run decides as the server would, with reasons.
func TestCheckNumber(t *testing.T) {
	ctx := context.Background()
	st := open(t)
	AddExtension(ctx, st, "201", "", credential.OfferMD5)
	c, err := CheckNumber(ctx, st, "201", "#01023212345678")
	if err != nil || c.Decision != "deny" || len(c.Reasons) == 0 {
		t.Fatalf("symbol trick: %+v %v", c, err)
	}
	c, err = CheckNumber(ctx, st, "201", "00312345678") // outside prefix 0, then the number
	if err != nil || c.Decision != "allow" || c.E164 != "+81312345678" {
		t.Fatalf("domestic: %+v %v", c, err)
	}
	if _, err := CheckNumber(ctx, st, "999", "0312345678"); field(err) != "from" {
		t.Fatalf("unknown extension: %v", err)
	}
}
