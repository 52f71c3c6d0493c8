package pbx

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/b2bua"
	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/response"
	"github.com/sekisho/sekisho/internal/store"
)

// Feature codes a phone dials to change its own settings (and *86 and a
// slot, b2bua.PickupPrefix, to pick up a parked call, *8 to pick up a
// call ringing in its group, and *97 for its mailbox). Each sets or
// clears the caller's forward for one condition; a number to forward to
// follows the set codes, dialled as the phone would dial it.
var featureCodes = map[string]struct {
	when string
	set  bool
}{
	"*72": {store.ForwardAlways, true}, "*73": {store.ForwardAlways, false},
	"*90": {store.ForwardBusy, true}, "*91": {store.ForwardBusy, false},
	"*92": {store.ForwardNoAnswer, true}, "*93": {store.ForwardNoAnswer, false},
}

// feature handles a dialled feature code, if a.Dialled is one, and
// reports whether it did. Only an authenticated extension may use one,
// for itself: the code changes nothing anybody else owns. A forward set
// this way is decided by the toll gate as the CLI's is (admin.SetForward):
// a hijacked phone dialling *72 and a number abroad gets 403 and leaves
// evidence, not a forward.
func (s *Server) feature(req *sip.Request, tx sip.ServerTransaction, a *chain.Attempt) bool {
	if !strings.HasPrefix(a.Dialled, "*") {
		return false
	}
	fc, ok := featureCodes[a.Dialled[:min(3, len(a.Dialled))]]
	slot, pickup := b2bua.ParkSlot(a.Dialled, b2bua.PickupPrefix)
	mailbox := a.Dialled == VoicemailCode
	groupPickup := a.Dialled == b2bua.PickupCode
	if !ok && !pickup && !mailbox && !groupPickup {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v := s.chain.Until("dialplan").Run(ctx, a)
	switch {
	case v.Action == chain.Challenge:
		tx.Respond(response.ForVerdict(req, v))
		return true
	case v.Action != chain.Continue:
		tx.Respond(response.ForVerdict(req, v))
		return true
	case a.Trunk != "" || a.Caller == "":
		// A carrier changes no extension's settings.
		tx.Respond(response.New(req, 403))
		return true
	}
	if groupPickup {
		s.groupPickup(ctx, req, tx, a.Caller)
		return true
	}
	if mailbox {
		// The caller's own mailbox only: the extension authenticated, and
		// the PIN is asked for as well (a phone left unattended, or a
		// stolen SIP password, does not open the messages).
		s.retrieve(req, tx, a.Caller)
		return true
	}
	if pickup {
		// Picking up a parked call places no call: the parked leg was
		// decided and is counted already. Any extension of the office may.
		s.log.Info("pbx: pickup", "ext", a.Caller, "slot", slot)
		s.b2b.Pickup(req, tx, slot, a.Caller)
		return true
	}
	number := strings.TrimPrefix(a.Dialled, a.Dialled[:3])
	detail := ""
	var err error
	if fc.set {
		var c admin.Check
		c, err = admin.SetForward(ctx, s.store, a.Caller, fc.when, number, time.Now())
		detail = "forward (" + fc.when + ") set to " + number + " by feature code " + a.Dialled[:3]
		if err != nil {
			s.audit.Note(audit.Event{Type: audit.PolicyDenial, Source: a.Caller, Target: orDialled(c.E164, number),
				Detail: "feature code " + a.Dialled[:3] + ": forward refused: " + err.Error(), Sample: a.Dialled})
		}
	} else {
		if number != "" {
			err = errors.New("nothing may follow a clear code")
		} else if _, err = s.store.ClearForward(ctx, a.Caller, fc.when); err == nil {
			detail = "forward (" + fc.when + ") cleared by feature code " + a.Dialled[:3]
		}
	}
	if err != nil {
		s.log.Info("pbx: feature code refused", "ext", a.Caller, "code", a.Dialled[:3], "err", err)
		tx.Respond(response.New(req, 403))
		return true
	}
	s.audit.Record(audit.Event{Type: audit.ConfigChange, Source: "phone:" + a.Caller, Target: "extension " + a.Caller, Detail: detail})
	s.log.Info("pbx: feature code", "ext", a.Caller, "detail", detail)
	// Answered, then hung up: the phone shows a call that connected,
	// which is how a PBX says "done" to a phone without a prompt.
	s.b2b.AnswerAndEnd(req, tx, time.Second)
	return true
}

// groupPickup hands ext a call ringing at an extension it shares a ring
// group with (its pickup group), or answers 404.
func (s *Server) groupPickup(ctx context.Context, req *sip.Request, tx sip.ServerTransaction, ext string) {
	groups, err := s.store.Groups(ctx)
	if err != nil {
		s.log.Error("pbx: read ring groups for a pickup", "err", err)
		tx.Respond(response.New(req, 500))
		return
	}
	mates := map[string]bool{}
	for _, g := range groups {
		in := false
		for _, m := range g.Members {
			in = in || m == ext
		}
		if in {
			for _, m := range g.Members {
				mates[m] = true
			}
		}
	}
	s.b2b.GroupPickup(req, tx, ext, func(rung string) bool { return mates[rung] })
}

func orDialled(e164, dialled string) string {
	if e164 != "" {
		return e164
	}
	return dialled
}
