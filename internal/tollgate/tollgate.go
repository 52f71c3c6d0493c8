// Package tollgate is the policy stage: it decides on the canonical
// destination and the caller's identity only, never on dialled text. Deny
// is the default: a kind this stage does not know is refused.
//
// Until classes of service arrive, every extension has the default
// profile: extensions, emergency numbers, domestic fixed, mobile and
// toll-free numbers; nothing abroad, nothing premium or shared-cost. A call
// from a carrier trunk may only reach a DID, never back out to a trunk.
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
	case chain.KindEmergency:
		// Emergency numbers are always allowed.
		return chain.Pass("tollgate: emergency call " + a.Caller + " -> " + a.Dest.Number)
	case chain.KindFixed, chain.KindMobile, chain.KindTollFree:
		return chain.Pass("tollgate: " + string(a.Dest.Kind) + " call " + a.Caller + " -> " + a.Dest.E164)
	case chain.KindInternational:
		// Toll fraud guard: the incident's calls went to +232. Nothing
		// abroad until per-country allow lists and limits exist.
		return chain.Deny(403, "tollgate: destination "+a.Dest.E164+" ("+a.Dest.Country+") not allowed for "+a.Caller)
	default:
		// Premium, shared-cost and any kind this stage does not know.
		return chain.Deny(403, "tollgate: destination kind "+string(a.Dest.Kind)+" "+a.Dest.E164+" not allowed for "+a.Caller)
	}
}
