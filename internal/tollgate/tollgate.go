// Package tollgate is the policy stage: it decides on the canonical
// destination only, never on dialled text. In this version the only
// destinations sekisho routes are its own extensions; every other kind is
// denied, so no call can leave the building. Deny is the default: a kind
// this stage does not know is refused.
package tollgate

import (
	"context"

	"github.com/sekisho/sekisho/internal/chain"
)

// Stage is the toll gate stage of the call chain.
type Stage struct{}

// Name implements chain.Stage.
func (Stage) Name() string { return "tollgate" }

// Run implements chain.Stage.
func (Stage) Run(_ context.Context, a *chain.Attempt) chain.Verdict {
	switch a.Dest.Kind {
	case chain.KindExtension:
		return chain.Pass("tollgate: internal call " + a.Caller + " -> " + a.Dest.Number)
	default:
		// Toll fraud guard: anything that is not provably internal is
		// refused until the gate knows how to price and limit it.
		return chain.Deny(403, "tollgate: destination kind "+string(a.Dest.Kind)+" not allowed for "+a.Caller)
	}
}
