// Package route is the route stage: it turns a canonical destination into
// the places to ring. For an extension that is every registered contact.
package route

import (
	"context"
	"errors"
	"strconv"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/registrar"
	"github.com/sekisho/sekisho/internal/store"
)

// Accounts looks extensions up. *store.Store satisfies it.
type Accounts interface {
	Extension(ctx context.Context, number string) (store.Extension, error)
}

// Stage is the route stage of the call chain.
type Stage struct {
	Accounts  Accounts
	Locations *registrar.Registrar
}

// Name implements chain.Stage.
func (Stage) Name() string { return "route" }

// Run implements chain.Stage. It sets a.Targets.
func (s Stage) Run(ctx context.Context, a *chain.Attempt) chain.Verdict {
	if a.Dest.Kind != chain.KindExtension {
		return chain.Deny(404, "route: no route for "+string(a.Dest.Kind))
	}
	n := a.Dest.Number
	if _, err := s.Accounts.Extension(ctx, n); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return chain.Deny(404, "route: no extension "+n)
		}
		return chain.Deny(500, "route: extension lookup failed: "+err.Error())
	}
	bs := s.Locations.Lookup(n)
	if len(bs) == 0 {
		return chain.Deny(480, "route: "+n+" has no registered contact")
	}
	a.Targets = a.Targets[:0]
	for _, b := range bs {
		a.Targets = append(a.Targets, chain.Target{Extension: n, Contact: b.Contact, Transport: b.Transport, Source: b.Source})
	}
	return chain.Pass("route: " + n + " at " + strconv.Itoa(len(bs)) + " contact(s)")
}
