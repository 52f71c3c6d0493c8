// Package route is the route stage: it turns a canonical destination into
// the places to ring: every registered contact of an extension (directly,
// or through a DID), or the outbound trunk for a public number.
package route

import (
	"context"
	"errors"
	"strconv"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/dialplan"
	"github.com/sekisho/sekisho/internal/registrar"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/trunk"
)

// Accounts looks extensions and DIDs up. *store.Store satisfies it.
type Accounts interface {
	Extension(ctx context.Context, number string) (store.Extension, error)
	LookupDID(ctx context.Context, number string) (store.DID, error)
}

// Trunks chooses the trunk for outbound calls.
type Trunks interface {
	Outbound() (trunk.Trunk, bool)
}

// Stage is the route stage of the call chain.
type Stage struct {
	Accounts  Accounts
	Locations *registrar.Registrar
	Trunks    Trunks         // nil: no trunks
	Plan      *dialplan.Plan // writes numbers in each trunk's format
}

// Name implements chain.Stage.
func (Stage) Name() string { return "route" }

// Run implements chain.Stage. It sets a.Targets.
func (s Stage) Run(ctx context.Context, a *chain.Attempt) chain.Verdict {
	a.Targets = a.Targets[:0]
	switch a.Dest.Kind {
	case chain.KindExtension:
		return s.extension(ctx, a, a.Dest.Number)
	case chain.KindDID:
		d, err := s.Accounts.LookupDID(ctx, a.Dest.Number)
		if errors.Is(err, store.ErrNotFound) {
			return chain.Deny(404, "route: no DID "+a.Dest.Number)
		}
		if err != nil {
			return chain.Deny(500, "route: DID lookup failed: "+err.Error())
		}
		return s.extension(ctx, a, d.Extension)
	case chain.KindEmergency, chain.KindFixed, chain.KindMobile, chain.KindTollFree,
		chain.KindSharedCost, chain.KindPremium, chain.KindInternational:
		if s.Trunks == nil {
			return chain.Deny(503, "route: no trunk configured")
		}
		t, ok := s.Trunks.Outbound()
		if !ok {
			return chain.Deny(503, "route: no trunk configured")
		}
		// The number sent is the canonical number in the trunk's format,
		// never the dialled text.
		n, err := s.Plan.Format(a.Dest, t.NumberFormat)
		if err != nil {
			return chain.Deny(500, "route: trunk "+t.Name+": "+err.Error())
		}
		a.Targets = append(a.Targets, chain.Target{Trunk: t.Name, Number: n, Transport: t.Transport})
		return chain.Pass("route: " + n + " via trunk " + t.Name)
	}
	return chain.Deny(404, "route: no route for "+string(a.Dest.Kind))
}

func (s Stage) extension(ctx context.Context, a *chain.Attempt, n string) chain.Verdict {
	a.CalleeExt = ""
	if _, err := s.Accounts.Extension(ctx, n); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return chain.Deny(404, "route: no extension "+n)
		}
		return chain.Deny(500, "route: extension lookup failed: "+err.Error())
	}
	a.CalleeExt = n
	bs := s.Locations.Lookup(n)
	if len(bs) == 0 {
		return chain.Deny(480, "route: "+n+" has no registered contact")
	}
	for _, b := range bs {
		a.Targets = append(a.Targets, chain.Target{Extension: n, Contact: b.Contact, Transport: b.Transport, Source: b.Source})
	}
	return chain.Pass("route: " + n + " at " + strconv.Itoa(len(bs)) + " contact(s)")
}
