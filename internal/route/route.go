// Package route is the route stage: it turns a canonical destination into
// the places to ring: every registered contact of an extension (directly,
// or through a DID), a ring group's members in rounds, or the outbound
// trunk for a public number.
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
	Group(ctx context.Context, number string) (store.Group, error)
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
	a.CalleeExt, a.Group, a.Ring, a.Next = "", "", 0, nil
	if _, err := s.Accounts.Extension(ctx, n); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return s.group(ctx, a, n)
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

// maxOverflow bounds a chain of overflow groups, which could otherwise
// loop (A overflows to B, B to A).
const maxOverflow = 4

// group routes to ring group n: its members with a registered contact,
// all in one round (ring-all) or one round each (hunt), each for the
// group's ring time, then its overflow groups' rounds likewise.
func (s Stage) group(ctx context.Context, a *chain.Attempt, n string) chain.Verdict {
	g, err := s.Accounts.Group(ctx, n)
	if errors.Is(err, store.ErrNotFound) {
		return chain.Deny(404, "route: no extension or group "+n)
	}
	if err != nil {
		return chain.Deny(500, "route: group lookup failed: "+err.Error())
	}
	a.Group = n
	var rounds []chain.Round
	seen := map[string]bool{}
	for hop := 0; hop < maxOverflow && !seen[g.Number]; hop++ {
		seen[g.Number] = true
		rounds = append(rounds, s.groupRounds(g)...)
		if g.Overflow == "" {
			break
		}
		next, err := s.Accounts.Group(ctx, g.Overflow)
		if err != nil {
			// Not a group: an extension's mailbox takes what nobody
			// answered (or a group deleted since: ring what there is).
			a.Mailbox = g.Overflow
			break
		}
		g = next
	}
	if len(rounds) == 0 {
		return chain.Deny(480, "route: group "+n+" has no member with a registered contact")
	}
	a.Targets, a.Ring, a.Next = rounds[0].Targets, rounds[0].Ring, rounds[1:]
	return chain.Pass("route: group " + n + " (" + g.Strategy + ") in " + strconv.Itoa(len(rounds)) + " round(s)")
}

func (s Stage) groupRounds(g store.Group) []chain.Round {
	var rounds []chain.Round
	var all []chain.Target
	for _, m := range g.Members {
		var ts []chain.Target
		for _, b := range s.Locations.Lookup(m) {
			ts = append(ts, chain.Target{Extension: m, Contact: b.Contact, Transport: b.Transport, Source: b.Source})
		}
		if len(ts) == 0 {
			continue
		}
		if g.Strategy == store.Hunt {
			rounds = append(rounds, chain.Round{Targets: ts, Ring: g.Ring})
		} else {
			all = append(all, ts...)
		}
	}
	if len(all) > 0 {
		rounds = append(rounds, chain.Round{Targets: all, Ring: g.Ring})
	}
	return rounds
}
