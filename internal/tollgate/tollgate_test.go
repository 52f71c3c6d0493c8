package tollgate

import (
	"context"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/dialplan"
	"github.com/sekisho/sekisho/internal/policy"
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
		"208": {Number: "208", Profile: "abroad"},
		"209": {Number: "209", Profile: "abroad", Suspended: time.Unix(1, 0), SuspendReason: "intl-per-hour"},
		"210": {Number: "210", Profile: "weekdays"},
		"211": {Number: "211", Profile: "no-such-profile"}, // a dangling name fails closed to internal
	}, Broken: "207"}
	abroad := policy.Default()
	abroad.Name, abroad.Class, abroad.Countries = "abroad", policy.ClassInternational, "SL"
	weekdays := abroad
	weekdays.Name, weekdays.Hours = "weekdays", "mon-fri 08:00-20:00"
	book := policy.Static([]policy.Profile{policy.Default(), abroad, weekdays}, nil, nil, policy.Freeze{})
	saturday := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tuesday := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	plan := dialplan.New("JP")
	tests := []struct {
		caller, dial string
		allow        bool
		at           time.Time // zero: tuesday
	}{
		{"201", "202", true, time.Time{}},
		{"201", "110", true, time.Time{}},
		{"201", "00312345678", true, time.Time{}},
		{"201", "009012345678", true, time.Time{}},
		{"201", "00120123456", true, time.Time{}},
		{"201", "00990123456", false, time.Time{}}, // premium
		{"201", "00570123456", false, time.Time{}}, // shared cost
		{"201", "001023276123456", false, time.Time{}},
		{"202", "00312345678", false, time.Time{}},
		{"202", "119", true, time.Time{}}, // emergency always
		{"203", "00312345678", true, time.Time{}},
		{"203", "009012345678", false, time.Time{}},
		{"204", "+12025550123", true, time.Time{}},
		{"204", "+18765550123", false, time.Time{}}, // Jamaica shares +1: not US
		{"204", "+23276123456", false, time.Time{}},
		{"205", "+23276123456", true, time.Time{}},
		{"205", "+12025550123", false, time.Time{}},
		{"205", "00990123456", false, time.Time{}}, // premium stays closed for every class
		{"206", "00312345678", false, time.Time{}},
		{"299", "00312345678", false, time.Time{}},  // no such extension
		{"207", "00312345678", false, time.Time{}},  // store failure: fail closed
		{"208", "+23276123456", true, time.Time{}},  // from the profile
		{"208", "+12025550123", false, time.Time{}}, // not on the profile's list
		{"209", "+23276123456", false, time.Time{}}, // suspended
		{"209", "00312345678", false, time.Time{}},  // suspended: no outside call at all
		{"209", "202", true, time.Time{}},           // ... but internal calls stay
		{"209", "110", true, time.Time{}},           // ... and emergency always
		{"210", "+23276123456", true, tuesday},
		{"210", "+23276123456", false, saturday}, // outside business hours
		{"210", "00312345678", true, saturday},   // hours only restrict calls abroad
		{"211", "00312345678", false, time.Time{}},
	}
	for _, tt := range tests {
		a := &chain.Attempt{Caller: tt.caller, Dest: plan.Canonical(tt.dial)}
		at := tt.at
		if at.IsZero() {
			at = tuesday
		}
		v := Stage{Accounts: exts, Policy: book, Now: func() time.Time { return at }}.Run(context.Background(), a)
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
		v := Stage{Accounts: storetest.Accounts{}, Policy: policy.Static(nil, nil, nil, policy.Freeze{})}.Run(context.Background(), a)
		if (v.Action == chain.Continue) != tt.allow {
			t.Errorf("trunk to %s: %v", tt.kind, v.Action)
		}
	}
}

// TestFreeze: a PBX-wide freeze, or the centre's block, stops every call
// abroad, whatever the profile allows, and nothing else.
func TestFreeze(t *testing.T) {
	abroad := policy.Default()
	abroad.Name, abroad.Class, abroad.Countries = "abroad", policy.ClassInternational, "SL"
	for _, f := range []policy.Freeze{{Reason: "pbx: daily-spend exceeded"}, {Fleet: "bundle 4: Sierra Leone fraud wave"}} {
		book := policy.Static([]policy.Profile{policy.Default(), abroad}, nil, nil, f)
		exts := storetest.Accounts{Exts: map[string]store.Extension{"201": {Number: "201", Profile: "abroad"}}}
		plan := dialplan.New("JP")
		for dial, allow := range map[string]bool{"+23276123456": false, "00312345678": true, "119": true} {
			a := &chain.Attempt{Caller: "201", Dest: plan.Canonical(dial)}
			v := Stage{Accounts: exts, Policy: book}.Run(context.Background(), a)
			if (v.Action == chain.Continue) != allow {
				t.Errorf("%+v, %s: %v %q, want allow=%v", f, dial, v.Action, v.Reason, allow)
			}
		}
	}
}

// BenchmarkDecide is the policy decision alone, on a resolved policy.
func BenchmarkDecide(b *testing.B) {
	book := policy.Static([]policy.Profile{policy.Default()}, nil, nil, policy.Freeze{})
	p := PolicyOf(store.Extension{Number: "201", Class: "international", Countries: "SL,US"}, book.Current())
	plan := dialplan.New("JP")
	now := time.Now()
	for _, dial := range []string{"00312345678", "+23276123456", "+18765550123"} {
		d := plan.Canonical(dial)
		b.Run(dial, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Decide(d, now)
			}
		})
	}
}
