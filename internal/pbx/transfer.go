package pbx

import (
	"context"

	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/cdr"
	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/store"
)

// place is the B2BUA's Place: a leg a feature creates inside a call that
// is up (a blind transfer's target) is a call the responsible extension
// places. It runs the whole chain, limits included, on that extension's
// behalf, so its policy decides the destination and the leg counts
// against its limits: a transfer of an outside caller to a number abroad
// meets the same gate as dialling it (toll fraud guard). Allowed, the leg
// gets a call record of its own, which settles its reservation when it
// finishes; refused, the refusal is evidence and the status is the one a
// dialled call would get.
func (s *Server) place(ctx context.Context, feature, responsible string, target sip.Uri, callID string) (*chain.Attempt, *cdr.Record, int) {
	a := &chain.Attempt{Method: "INVITE", Feature: feature, OnBehalfOf: responsible, FromUser: responsible, Dialled: dialled(target)}
	v := s.chain.Run(ctx, a)
	s.evidence(a, v)
	if v.Action != chain.Continue {
		code := v.Status
		if v.Action != chain.Reject || code < 300 || code > 699 {
			code = 403 // a challenge or a drop cannot happen here; fail closed
		}
		return a, nil, code
	}
	r := store.CDR{
		CallID: callID, Caller: a.Caller, Dialled: a.Dialled, Callee: a.Dest.Number, Direction: a.Direction(),
		DestKind: string(a.Dest.Kind), DestE164: a.Dest.E164, Country: a.Dest.Country, ResultReason: a.Reasons(),
	}
	if len(a.Targets) > 0 && a.Targets[0].Trunk != "" {
		r.Trunk, r.SentNumber = a.Targets[0].Trunk, a.Targets[0].Number
	}
	rec := s.cdrs.Start(r)
	if h := a.Hold; h != nil {
		rec.OnFinish(func(c *store.CDR) { c.Cost = h.Settle(c.Duration) })
	}
	return a, rec, 0
}
