package pbx

import (
	"context"

	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/auth"
	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/dialplan"
	"github.com/sekisho/sekisho/internal/limits"
	"github.com/sekisho/sekisho/internal/route"
	"github.com/sekisho/sekisho/internal/tollgate"
)

// newChain fixes the order every call attempt passes. The order is the
// design; change it only with a reason written here.
//
//  1. auth: nothing is decided for a caller we have not identified; an
//     unauthenticated attempt learns nothing about the dial plan. A
//     carrier is identified by its source address, and only that.
//  2. dialplan: the one canonical parse of the dialled text. Later
//     stages read only the canonical destination.
//  3. tollgate: policy on the canonical destination and the
//     authenticated caller, before anything is looked up or rung, so a
//     denied destination costs nothing and reaches no one.
//  4. route: where to ring, from the canonical destination only.
//  5. limits: count the call against the caller's, the trunk's and the
//     PBX's limits and reserve its worst-case cost. Last, because it
//     needs the trunk route chose, and because only a call that will
//     really be placed may use up a limit: an attempt refused earlier
//     must not let an attacker exhaust an honest user's allowance.
//
// Originate (the B2BUA) follows the chain, not inside it: it runs only
// when every stage said continue.
func newChain(s *Server) *chain.Chain {
	return chain.New(
		auth.Stage{A: s.auth, Trunks: s.trunks},
		dialplan.Stage{Plan: s.plan},
		tollgate.Stage{Accounts: s.store, Policy: s.book, Hold: s.holding},
		route.Stage{Accounts: s.store, Locations: s.reg, Trunks: s.trunks, Plan: s.plan},
		limits.Stage{Keeper: s.keeper, Actions: s, Evidence: s.audit},
	)
}

// gate decides a leg that already exists and that a feature joins on
// behalf of an extension: an attended transfer's target, dialled (and
// counted) earlier. The stages up to the policy, in their order; auth
// takes the responsible extension from the attempt instead of a digest
// answer. No new leg is placed, so there is nothing to route (the party
// may not even be registered: it may have called in) and nothing to
// count again (limits counted the leg when it was dialled). A new leg
// goes through place.
func (s *Server) gate(ctx context.Context, feature, responsible string, target sip.Uri) (*chain.Attempt, chain.Verdict) {
	a := &chain.Attempt{Method: "INVITE", Feature: feature, OnBehalfOf: responsible, FromUser: responsible, Dialled: dialled(target)}
	return a, s.chain.Until("route").Run(ctx, a)
}
