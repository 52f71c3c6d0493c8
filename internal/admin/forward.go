package admin

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/store"
)

// SetForward forwards ext's calls to the number to when the condition
// when holds, if the toll gate lets ext itself dial that number: a
// forward is a call the extension places, so it can never reach a
// destination the extension could not dial (the incident's fraud ran
// through exactly such settings). The gate decides again on every call
// that follows the forward, with ext's policy and limits then in force.
// The check is returned either way; a refusal is a FieldError on "to"
// carrying the gate's reasons.
func SetForward(ctx context.Context, st *store.Store, ext, when, to string, now time.Time) (Check, error) {
	switch when {
	case store.ForwardAlways, store.ForwardBusy, store.ForwardNoAnswer:
	default:
		return Check{}, refuse("when", "%q: want always, busy or noanswer", when)
	}
	to = strings.TrimSpace(to)
	if to == "" {
		return Check{}, refuse("to", "give the number to forward to, as the extension would dial it")
	}
	if to == ext {
		return Check{}, refuse("to", "an extension cannot forward to itself")
	}
	c, err := CheckNumber(ctx, st, ext, to)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) && fe.Field == "dialled" {
			fe.Field = "to"
		}
		return c, err
	}
	if c.Decision != "allow" {
		return c, refuse("to", "the toll gate refuses %s for %s: %s", to, ext, strings.Join(c.Reasons, "; "))
	}
	if c.Kind == string(chain.KindEmergency) {
		// Emergency numbers are always allowed to be dialled, but calls
		// to an office are not to be sent to them.
		return c, refuse("to", "calls cannot be forwarded to an emergency number")
	}
	return c, st.SetForward(ctx, store.Forward{Ext: ext, When: when, To: to, Created: now})
}
