package tollgate

import (
	"context"
	"testing"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/dialplan"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/store/storetest"
)

func TestDecide(t *testing.T) {
	exts := storetest.Accounts{Exts: map[string]store.Extension{
		"201": {Number: "201"}, // default profile
		"202": {Number: "202", Class: "internal"},
		"203": {Number: "203", Class: "domestic"},
		"204": {Number: "204", Class: "international", Countries: "US"},
		"205": {Number: "205", Class: "international", Countries: "SL"},
		"206": {Number: "206", Class: "bogus"}, // unknown class fails closed to internal
	}, Broken: "207"}
	plan := dialplan.New("JP")
	tests := []struct {
		caller, dial string
		allow        bool
	}{
		{"201", "202", true},
		{"201", "110", true},
		{"201", "00312345678", true},
		{"201", "009012345678", true},
		{"201", "00120123456", true},
		{"201", "00990123456", false}, // premium
		{"201", "00570123456", false}, // shared cost
		{"201", "001023276123456", false},
		{"202", "00312345678", false},
		{"202", "119", true}, // emergency always
		{"203", "00312345678", true},
		{"203", "009012345678", false},
		{"204", "+12025550123", true},
		{"204", "+18765550123", false}, // Jamaica shares +1: not US
		{"204", "+23276123456", false},
		{"205", "+23276123456", true},
		{"205", "+12025550123", false},
		{"205", "00990123456", false}, // premium stays closed for every class
		{"206", "00312345678", false},
		{"299", "00312345678", false}, // no such extension
		{"207", "00312345678", false}, // store failure: fail closed
	}
	for _, tt := range tests {
		a := &chain.Attempt{Caller: tt.caller, Dest: plan.Canonical(tt.dial)}
		v := Stage{Accounts: exts}.Run(context.Background(), a)
		want := 403
		if tt.caller == "207" {
			want = 500 // the store failed: refuse, and say it was the server
		}
		if (v.Action == chain.Continue) != tt.allow || (!tt.allow && v.Status != want) {
			t.Errorf("%s -> %s: %v %d %q, want allow=%v", tt.caller, tt.dial, v.Action, v.Status, v.Reason, tt.allow)
		}
	}
}

func TestTrunkCallers(t *testing.T) {
	for _, tt := range []struct {
		kind  chain.Kind
		allow bool
	}{
		{chain.KindDID, true},
		{chain.KindFixed, false}, // no hairpin
		{chain.KindEmergency, false},
		{chain.KindExtension, false},
		{chain.KindInvalid, false},
	} {
		a := &chain.Attempt{Caller: "0398765432", Trunk: "carrier", Dest: chain.Destination{Kind: tt.kind, Number: "0312345678"}}
		v := Stage{Accounts: storetest.Accounts{}}.Run(context.Background(), a)
		if (v.Action == chain.Continue) != tt.allow {
			t.Errorf("trunk to %s: %v", tt.kind, v.Action)
		}
	}
}

func TestParse(t *testing.T) {
	if c, err := ParseCountries(" sl, US,us "); err != nil || c != "SL,US" {
		t.Fatalf("ParseCountries: %q %v", c, err)
	}
	for _, bad := range []string{"+1", "USA", "1", "S"} {
		if _, err := ParseCountries(bad); err == nil {
			t.Errorf("ParseCountries(%q) accepted", bad)
		}
	}
	if _, err := ParseClass("everything"); err == nil {
		t.Error("unknown class accepted")
	}
}
