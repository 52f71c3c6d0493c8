package tollgate

import (
	"context"
	"testing"

	"github.com/sekisho/sekisho/internal/chain"
)

func TestDenyByDefault(t *testing.T) {
	tests := []struct {
		trunk  string
		kind   chain.Kind
		action chain.Action
	}{
		{"", chain.KindExtension, chain.Continue},
		{"", chain.KindFixed, chain.Continue},
		{"", chain.KindMobile, chain.Continue},
		{"", chain.KindTollFree, chain.Continue},
		{"", chain.KindEmergency, chain.Continue},
		{"", chain.KindInternational, chain.Reject},
		{"", chain.KindPremium, chain.Reject},
		{"", chain.KindSharedCost, chain.Reject},
		{"", chain.KindDID, chain.Reject}, // a phone cannot dial "a DID"
		{"", chain.KindInvalid, chain.Reject},
		{"", chain.Kind(""), chain.Reject},
		{"carrier", chain.KindDID, chain.Continue},
		{"carrier", chain.KindFixed, chain.Reject}, // no hairpin
		{"carrier", chain.KindEmergency, chain.Reject},
		{"carrier", chain.KindExtension, chain.Reject},
		{"carrier", chain.KindInvalid, chain.Reject},
	}
	for _, tt := range tests {
		a := &chain.Attempt{Caller: "201", Trunk: tt.trunk, Dest: chain.Destination{Kind: tt.kind, Number: "0312345678"}}
		v := Stage{}.Run(context.Background(), a)
		if v.Action != tt.action || (v.Action == chain.Reject && v.Status != 403) {
			t.Errorf("trunk %q kind %q: %v %d, want %v", tt.trunk, tt.kind, v.Action, v.Status, tt.action)
		}
	}
}
