package pbx

import (
	"context"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/dialplan"
	"github.com/sekisho/sekisho/internal/limits"
	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/route"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/tollgate"
	"github.com/sekisho/sekisho/internal/trunk"
)

type oneTrunk struct{}

func (oneTrunk) Outbound() (trunk.Trunk, bool) {
	return trunk.Trunk{Trunk: store.Trunk{Name: "carrier", NumberFormat: "mixed"}}, true
}

// BenchmarkChainOutbound is the set-up cost of an outbound call after
// authentication, with the toll gate (tollgate and limits stages, on the
// real SQLite store) and without it: what the gate adds to every call.
func BenchmarkChainOutbound(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.AddExtension(ctx, store.Extension{Number: "201", Realm: "r", HA1MD5: "x", HA1SHA256: "y", Digest: "md5"}); err != nil {
		b.Fatal(err)
	}
	book := policy.NewBook(st)
	if err := book.Reload(ctx); err != nil {
		b.Fatal(err)
	}
	plan := dialplan.New("JP")
	keeper := limits.NewKeeper(book, 3*time.Hour, nil)
	rt := route.Stage{Accounts: st, Trunks: oneTrunk{}, Plan: plan}
	for _, c := range []struct {
		name string
		ch   *chain.Chain
	}{
		{"gate=off", chain.New(dialplan.Stage{Plan: plan}, rt)},
		{"gate=on", chain.New(dialplan.Stage{Plan: plan}, tollgate.Stage{Accounts: st, Policy: book}, rt, limits.Stage{Keeper: keeper})},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a := &chain.Attempt{Caller: "201", Dialled: "00312345678"}
				if v := c.ch.Run(ctx, a); v.Action != chain.Continue {
					b.Fatal(a.Reasons())
				}
				if a.Hold != nil {
					a.Hold.Settle(0)
				}
			}
		})
	}
}
