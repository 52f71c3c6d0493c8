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

// TestGroups: ring-all is one round of every registered member; hunt is
// a round per registered member in order; overflow groups follow, and a
// loop of overflows ends.
func TestGroups(t *testing.T) {
	reg := registrar.New(registrar.Limits{})
	for _, n := range []string{"201", "202"} {
		reg.Apply(registrar.Request{AOR: n, CallID: "c" + n, CSeq: 1, Transport: "UDP",
			Changes: []registrar.Change{{Contact: "sip:" + n + "@127.0.0.2:5060", Expires: time.Hour}}})
	}
	ring := 10 * time.Second
	acc := storetest.Accounts{
		Exts: map[string]store.Extension{"201": {Number: "201"}, "202": {Number: "202"}, "203": {Number: "203"}},
		Groups: map[string]store.Group{
			"600": {Number: "600", Strategy: store.RingAll, Ring: ring, Members: []string{"201", "202", "203"}},
			"610": {Number: "610", Strategy: store.Hunt, Ring: ring, Members: []string{"203", "202", "201"}, Overflow: "600"},
			"620": {Number: "620", Strategy: store.Hunt, Ring: ring, Members: []string{"201"}, Overflow: "621"},
			"621": {Number: "621", Strategy: store.Hunt, Ring: ring, Members: []string{"202"}, Overflow: "620"},
			"630": {Number: "630", Strategy: store.RingAll, Ring: ring, Members: []string{"203"}},
			"640": {Number: "640", Strategy: store.RingAll, Ring: ring, Members: []string{"203"}, Overflow: "202"},
		},
		DIDs: map[string]store.DID{"0312340000": {Number: "0312340000", Extension: "610"}},
	}
	s := Stage{Accounts: acc, Locations: reg}
	run := func(kind chain.Kind, n string) (*chain.Attempt, chain.Verdict) {
		a := &chain.Attempt{Dest: chain.Destination{Kind: kind, Number: n}}
		return a, s.Run(context.Background(), a)
	}
	exts := func(ts []chain.Target) (out []string) {
		for _, t := range ts {
			out = append(out, t.Extension)
		}
		return out
	}
	if a, v := run(chain.KindExtension, "600"); v.Action != chain.Continue || len(a.Targets) != 2 || len(a.Next) != 0 || a.Ring != ring || a.CalleeExt != "" {
		t.Fatalf("ring-all: %+v %v", a, v)
	}
	a, v := run(chain.KindDID, "0312340000")
	if v.Action != chain.Continue || exts(a.Targets)[0] != "202" || len(a.Next) != 2 || exts(a.Next[0].Targets)[0] != "201" || len(a.Next[1].Targets) != 2 {
		t.Fatalf("hunt then overflow, through a DID: %+v %v", a, v)
	}
	if a, v := run(chain.KindExtension, "620"); v.Action != chain.Continue || len(a.Next) != 1 {
		t.Fatalf("an overflow loop: %d rounds after the first, %v", len(a.Next), v)
	}
	if _, v := run(chain.KindExtension, "630"); v.Status != 480 {
		t.Fatalf("no member registered: %+v", v)
	}
	// Overflow to a mailbox: nobody registered, but the call is for 202's
	// voicemail (the group's number is no extension: CalleeExt stays "").
	if a, v := run(chain.KindExtension, "640"); v.Status != 480 || a.Mailbox != "202" || a.CalleeExt != "" {
		t.Fatalf("overflow to a mailbox: %+v %+v", a, v)
	}
	if _, v := run(chain.KindExtension, "699"); v.Status != 404 {
		t.Fatalf("no such group: %+v", v)
	}
}
