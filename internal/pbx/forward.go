package pbx

import (
	"context"
	"time"

	"github.com/sekisho/sekisho/internal/cdr"
	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/store"
)

// Call forwarding. A forward is a call the forwarding extension places:
// the forwarded leg is a new attempt with Feature "forward" on behalf of
// that extension, run through the whole chain, limits included, so its
// policy decides the destination and the call counts against its limits
// (the incident's kind of fraud, a forward to abroad set on a hijacked
// phone, meets the same gate as dialling it). One hop only: a forwarded
// leg is not forwarded again, so forwards cannot loop.

// forwardFor returns the forward of a's callee for when, if there is
// one and a may be forwarded.
func (s *Server) forwardFor(ctx context.Context, a *chain.Attempt, when string) (store.Forward, bool) {
	if a.CalleeExt == "" || a.Feature != "" {
		return store.Forward{}, false
	}
	fw, err := s.store.Forwards(ctx, a.CalleeExt)
	if err != nil {
		s.log.Error("pbx: read forwards", "ext", a.CalleeExt, "err", err)
		return store.Forward{}, false
	}
	for _, f := range fw {
		if f.When == when {
			return f, true
		}
	}
	return store.Forward{}, false
}

// forward decides the forwarded leg of a to f. On a refusal it returns
// nil: the refusal is evidence (a policy denial on behalf of the
// extension), and the call goes on as if there were no forward.
func (s *Server) forward(ctx context.Context, a *chain.Attempt, f store.Forward) *chain.Attempt {
	shown := a.Caller
	if shown == "" {
		shown = a.FromUser
	}
	fa := &chain.Attempt{Method: "INVITE", Feature: "forward", OnBehalfOf: f.Ext, FromUser: f.Ext, Dialled: f.To, Presented: shown,
		Source: a.Source, Transport: a.Transport, Secure: a.Secure}
	v := s.chain.Run(ctx, fa)
	s.evidence(fa, v)
	from := a.Caller
	if from == "" {
		from = a.FromUser
	}
	note := chain.Step{Stage: "forward", Verdict: chain.Pass("forward: call from " + from + " to " + f.Ext + " forwarded (" + f.When + ") to " + f.To)}
	if v.Action != chain.Continue {
		s.log.Warn("pbx: forward refused; the extension keeps the call", "ext", f.Ext, "to", f.To, "when", f.When, "reason", fa.Reasons())
		a.Trail = append(a.Trail, chain.Step{Stage: "forward", Verdict: chain.Pass("forward: " + f.Ext + " to " + f.To + " (" + f.When + ") refused: " + fa.Reasons())})
		return nil
	}
	fa.Trail = append(append(append([]chain.Step{}, a.Trail...), note), fa.Trail...)
	s.log.Info("pbx: call forwarded", "ext", f.Ext, "to", f.To, "when", f.When, "from", from)
	return fa
}

// forwardLeg is the B2BUA's Forward: the callee of a was busy or did not
// answer; the leg to ring instead, decided now with the forwarding
// extension's policy and limits, and written into the call's record.
func (s *Server) forwardLeg(a *chain.Attempt, why string, rec *cdr.Record) *chain.Attempt {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, ok := s.forwardFor(ctx, a, why)
	if !ok {
		return nil
	}
	fa := s.forward(ctx, a, f)
	if fa == nil {
		rec.Update(func(c *store.CDR) { c.ResultReason = a.Reasons() })
		return nil
	}
	// The record settles one reservation. The call being forwarded was to
	// a local extension, which reserves nothing (limits count outside
	// calls only), so the forwarded leg's is the only one to settle.
	if h := fa.Hold; h != nil {
		rec.OnFinish(func(c *store.CDR) { c.Cost = h.Settle(c.Duration) })
	}
	rec.Update(func(c *store.CDR) {
		c.Caller, c.Dialled, c.Callee, c.Direction = fa.Caller, fa.Dialled, fa.Dest.Number, fa.Direction()
		c.DestKind, c.DestE164, c.Country, c.ResultReason = string(fa.Dest.Kind), fa.Dest.E164, fa.Dest.Country, fa.Reasons()
		if len(fa.Targets) > 0 && fa.Targets[0].Trunk != "" {
			c.Trunk, c.SentNumber = fa.Targets[0].Trunk, fa.Targets[0].Number
		}
	})
	return fa
}
