package route

import (
	"context"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/registrar"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/store/storetest"
	"github.com/sekisho/sekisho/internal/trunk"
)

type trunks []trunk.Trunk

func (t trunks) Outbound() (trunk.Trunk, bool) {
	if len(t) == 0 {
		return trunk.Trunk{}, false
	}
	return t[0], true
}

func TestRoute(t *testing.T) {
	reg := registrar.New(registrar.Limits{})
	reg.Apply(registrar.Request{AOR: "202", CallID: "c", CSeq: 1, Transport: "UDP",
		Changes: []registrar.Change{{Contact: "sip:202@127.0.0.2:5060", Expires: time.Hour}, {Contact: "sip:x@127.0.0.4:5062", Expires: time.Hour}}})
	carrier := trunk.Trunk{}
	carrier.Name, carrier.Transport = "carrier", "udp"
	acc := storetest.Accounts{
		Exts:   map[string]store.Extension{"202": {Number: "202"}, "203": {Number: "203"}},
		DIDs:   map[string]store.DID{"0312345678": {Number: "0312345678", Extension: "202"}},
		Broken: "broken",
	}
	s := Stage{Accounts: acc, Locations: reg, Trunks: trunks{carrier}}
	tests := []struct {
		kind    chain.Kind
		number  string
		status  int
		targets int
	}{
		{chain.KindExtension, "202", 0, 2},
		{chain.KindExtension, "203", 480, 0},
		{chain.KindExtension, "299", 404, 0},
		{chain.KindExtension, "broken", 500, 0},
		{chain.KindInvalid, "", 404, 0},
		{chain.KindDID, "0312345678", 0, 2},
		{chain.KindDID, "0399999999", 404, 0},
		{chain.KindFixed, "0398765432", 0, 1},
	}
	for _, tt := range tests {
		a := &chain.Attempt{Dest: chain.Destination{Kind: tt.kind, Number: tt.number}}
		v := s.Run(context.Background(), a)
		if v.Status != tt.status || len(a.Targets) != tt.targets {
			t.Errorf("%s %s: status %d targets %d, want %d %d (%s)", tt.kind, tt.number, v.Status, len(a.Targets), tt.status, tt.targets, v.Reason)
		}
	}
}

func TestNoTrunk(t *testing.T) {
	s := Stage{Accounts: storetest.Accounts{}, Locations: registrar.New(registrar.Limits{}), Trunks: trunks{}}
	a := &chain.Attempt{Dest: chain.Destination{Kind: chain.KindFixed, Number: "0312345678"}}
	if v := s.Run(context.Background(), a); v.Status != 503 {
		t.Fatalf("no trunk: %+v", v)
	}
}
