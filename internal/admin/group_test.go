package admin

import (
	"context"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/store"
)

// TestAddGroup: a group needs a number no extension has, extensions as
// members, a known strategy, a sane ring time and an existing overflow;
// its number is then closed to extensions; it goes with its members.
func TestAddGroup(t *testing.T) {
	ctx := context.Background()
	st := open(t)
	for _, n := range []string{"201", "202"} {
		AddExtension(ctx, st, n, "", credential.OfferMD5)
	}
	g := func(number, strategy string, ring time.Duration, overflow string, members ...string) store.Group {
		return store.Group{Number: number, Strategy: strategy, Ring: ring, Overflow: overflow, Members: members}
	}
	for _, c := range []struct {
		g     store.Group
		field string
	}{
		{g("6a0", "", 0, "", "201"), "number"},
		{g("201", "", 0, "", "202"), "number"},
		{g("600", "round-robin", 0, "", "201"), "strategy"},
		{g("600", "", time.Second, "", "201"), "ring"},
		{g("600", "", 0, ""), "members"},
		{g("600", "", 0, "", "201", "201"), "members"},
		{g("600", "", 0, "", "209"), "members"},
		{g("600", "", 0, "601", "201"), "overflow"},
		{g("600", "", 0, "600", "201"), "overflow"},
	} {
		if _, err := AddGroup(ctx, st, c.g); field(err) != c.field {
			t.Errorf("%+v: %v, want an error on %q", c.g, err, c.field)
		}
	}
	if gs, _ := st.Groups(ctx); len(gs) != 0 {
		t.Fatalf("refused groups stored: %+v", gs)
	}
	if _, err := AddGroup(ctx, st, g("601", "hunt", 10*time.Second, "", "202", "201")); err != nil {
		t.Fatal(err)
	}
	got, err := AddGroup(ctx, st, g("600", "", 0, "601", "201", "202"))
	if err != nil || got.Strategy != store.RingAll || got.RingSecs != 20 {
		t.Fatalf("defaults: %+v %v", got, err)
	}
	if _, _, err := AddExtension(ctx, st, "600", "", credential.OfferMD5); field(err) != "number" {
		t.Fatalf("an extension took a group's number: %v", err)
	}
	if h, _ := st.Group(ctx, "601"); len(h.Members) != 2 || h.Members[0] != "202" {
		t.Fatalf("hunt order not kept: %+v", h)
	}
	st.DeleteExtension(ctx, "202")
	if h, _ := st.Group(ctx, "601"); len(h.Members) != 1 || h.Members[0] != "201" {
		t.Fatalf("a deleted extension stayed a member: %+v", h)
	}
	// Overflow to a mailbox: only an extension that has one.
	if _, err := AddGroup(ctx, st, g("602", "", 0, "201", "201")); field(err) != "overflow" {
		t.Fatalf("overflow to an extension without a mailbox: %v", err)
	}
	if err := st.SetMailbox(ctx, store.Mailbox{Ext: "201", PINHash: "x", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := AddGroup(ctx, st, g("602", "", 0, "201", "201")); err != nil {
		t.Fatalf("overflow to 201's mailbox: %v", err)
	}
}
