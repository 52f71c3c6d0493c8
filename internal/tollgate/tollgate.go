// Package tollgate is the policy stage: it decides on the canonical
// destination and the caller's identity only, never on dialled text. Deny
// is the default: a kind or class this stage does not know is refused.
//
// Each extension inherits a profile (package policy): a class of service,
// the countries it may call abroad (none by default) and the hours in
// which it may. The extension's own class and countries, when set,
// override its profile's. Emergency numbers are always allowed, even for
// a suspended extension and during a freeze; premium and shared-cost
// numbers never are. A suspended extension keeps internal calls and loses
// every outside call until a person unlocks it. A call from a carrier
// trunk may only reach a DID, never back out to a trunk.
package tollgate

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/store"
)

// Policy is what one extension may call, resolved from its profile.
type Policy struct {
	Profile   policy.Profile // effective: the extension's overrides applied
	Hours     policy.Hours
	Countries map[string]bool
	Suspended string // why the extension is suspended; "" if it is not
	Frozen    string // why international calls are frozen PBX-wide; "" if they are not
	Blocked   string // why the vendor's centre blocks calls abroad; "" if it does not
}

// PolicyOf resolves the policy of extension e from the snapshot.
func PolicyOf(e store.Extension, sn *policy.Snapshot) Policy {
	prof, hours := sn.Profile(e.Profile)
	if e.Class != "" {
		// A stored class this binary does not know stays as it is and
		// ranks as internal: fail closed, never open.
		prof.Class = policy.Class(e.Class)
	}
	if e.Countries != "" {
		prof.Countries = e.Countries
	}
	p := Policy{Profile: prof, Hours: hours, Countries: map[string]bool{}, Frozen: sn.Freeze.Reason, Blocked: sn.Freeze.Fleet}
	for _, c := range strings.Split(prof.Countries, ",") {
		if c != "" {
			p.Countries[c] = true
		}
	}
	if !e.Suspended.IsZero() {
		p.Suspended = e.SuspendReason
		if p.Suspended == "" {
			p.Suspended = "suspended"
		}
	}
	return p
}

func (p Policy) class() string { return "class " + string(p.Profile.Class) }

// Decide returns whether the policy allows d at time now, and why.
func (p Policy) Decide(d chain.Destination, now time.Time) (bool, string) {
	switch d.Kind {
	case chain.KindExtension:
		return true, "internal call"
	case chain.KindEmergency:
		return true, "emergency numbers are always allowed"
	}
	if p.Suspended != "" {
		// Containment: after a breach the extension's credentials are
		// presumed stolen; no outside call until a person unlocks it.
		return false, "extension suspended (" + p.Suspended + "); unlock with: sekisho ext unlock"
	}
	switch d.Kind {
	case chain.KindFixed, chain.KindTollFree:
		return p.Profile.Class.AtLeast(policy.ClassDomestic), p.class() + ", " + string(d.Kind) + " " + d.E164
	case chain.KindMobile:
		return p.Profile.Class.AtLeast(policy.ClassMobile), p.class() + ", mobile " + d.E164
	case chain.KindInternational:
		// Toll fraud guard: the incident's calls went to +232. Abroad
		// needs the international class, the country on the list, the
		// hours, and no PBX-wide freeze.
		if p.Frozen != "" {
			return false, "international calls are frozen PBX-wide (" + p.Frozen + "); lift with: sekisho limits unfreeze"
		}
		// The vendor's emergency stop for the whole fleet (the incident's
		// vendor pushed its block unit by unit, too late for some).
		if p.Blocked != "" {
			return false, "international calls are blocked by the vendor's centre (" + p.Blocked + ")"
		}
		if !p.Profile.Class.AtLeast(policy.ClassInternational) {
			return false, p.class() + " may not call abroad (" + d.E164 + ", " + d.Country + ")"
		}
		if !p.Countries[d.Country] {
			return false, "country " + d.Country + " (" + d.E164 + ") not on the allow list"
		}
		if !p.Hours.Contains(now) {
			// Fraud runs at night and at weekends, when nobody watches.
			return false, "international calls allowed only " + p.Profile.Hours + " (profile " + p.Profile.Name + ")"
		}
		return true, "international " + d.E164 + ", " + d.Country + " allowed"
	}
	// Premium, shared-cost, anything unknown.
	return false, "destination kind " + string(d.Kind) + " " + d.E164 + " is never allowed"
}

// Accounts looks extensions up. *store.Store satisfies it.
type Accounts interface {
	Extension(ctx context.Context, number string) (store.Extension, error)
}

// Stage is the toll gate stage of the call chain.
type Stage struct {
	Accounts Accounts
	Policy   *policy.Book
	Now      func() time.Time // nil: time.Now
	// Hold, when set and saying why, makes outside calls wait (503): the
	// fleet link holds them from reconnecting to the centre until the
	// newest bundle is in force, so a unit back from an outage cannot
	// place a call its fleet has since blocked.
	Hold func() string
}

// Name implements chain.Stage.
func (Stage) Name() string { return "tollgate" }

// Run implements chain.Stage. For an allowed caller it sets a.Profile and
// a.Unlocked for the limits stage.
func (s Stage) Run(ctx context.Context, a *chain.Attempt) chain.Verdict {
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
	e, err := s.Accounts.Extension(ctx, a.Caller)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return chain.Deny(403, "tollgate: caller "+a.Caller+" has no extension")
		}
		return chain.Deny(500, "tollgate: policy lookup failed: "+err.Error())
	}
	sn := s.Policy.Current()
	if sn == nil {
		return chain.Deny(500, "tollgate: no policy loaded")
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	p := PolicyOf(e, sn)
	if s.Hold != nil && a.Dest.Kind != chain.KindExtension && a.Dest.Kind != chain.KindEmergency {
		if why := s.Hold(); why != "" {
			return chain.Deny(503, "tollgate: outside calls wait: "+why)
		}
	}
	ok, why := p.Decide(a.Dest, now())
	if !ok {
		return chain.Deny(403, "tollgate: "+a.Caller+": "+why)
	}
	a.Profile, a.Unlocked = p.Profile, e.Unlocked
	return chain.Pass("tollgate: " + a.Caller + ": " + why)
}
