// Package tollgate is the policy stage: it decides on the canonical
// destination and the caller's identity only, never on dialled text. Deny
// is the default: a kind this stage does not know is refused.
//
// Until the toll gate issue brings classes of service, the rule is:
// extensions may call extensions and strictly domestic numbers; a call
// from a carrier trunk may only reach a DID, never anything else and never
// back out to a trunk.
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
	if a.Trunk != "" {
		// Hairpin guard: a call that came in from the carrier is only
		// ever delivered to a number the office owns. Letting it reach an
		// outside number would let anyone who can send to the trunk
		// address place calls billed to the office.
		if a.Dest.Kind == chain.KindDID {
			return chain.Pass("tollgate: inbound to " + a.Dest.Number + " from trunk " + a.Trunk)
		}
		return chain.Deny(403, "tollgate: trunk "+a.Trunk+" may only reach DIDs, not "+string(a.Dest.Kind))
	}
	switch a.Dest.Kind {
	case chain.KindExtension:
		return chain.Pass("tollgate: internal call " + a.Caller + " -> " + a.Dest.Number)
	case chain.KindDomestic:
		return chain.Pass("tollgate: domestic call " + a.Caller + " -> " + a.Dest.Number)
	default:
		// Toll fraud guard: anything not provably internal or strictly
		// domestic is refused until the gate can price and limit it.
		return chain.Deny(403, "tollgate: destination kind "+string(a.Dest.Kind)+" not allowed for "+a.Caller)
	}
}
