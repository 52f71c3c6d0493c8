// Package tollgate is the policy stage: it decides on the canonical
// destination and the caller's identity only, never on dialled text. Deny
// is the default: a kind or class this stage does not know is refused.
//
// Each extension has a class of service, inherited from the default
// profile when unset, and a list of countries it may call abroad (none by
// default). Emergency numbers are always allowed; premium and shared-cost
// numbers never are. A call from a carrier trunk may only reach a DID,
// never back out to a trunk.
package tollgate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/store"
)

// Class is a class of service. Each includes the ones before it.
type Class string

// Classes of service.
const (
	ClassInternal      Class = "internal"      // extensions and emergency only
	ClassDomestic      Class = "domestic"      // + domestic fixed and toll-free
	ClassMobile        Class = "mobile"        // + mobile
	ClassInternational Class = "international" // + the countries on the extension's list
)

// DefaultClass is the profile of an extension with no class set: domestic
// fixed, mobile and emergency; nothing abroad, nothing premium.
const DefaultClass = ClassMobile

var rank = map[Class]int{ClassInternal: 0, ClassDomestic: 1, ClassMobile: 2, ClassInternational: 3}

// ParseClass validates a class name; "" or "default" is the default.
func ParseClass(s string) (Class, error) {
	if s == "" || s == "default" {
		return "", nil
	}
	c := Class(strings.ToLower(s))
	if _, ok := rank[c]; !ok {
		return "", fmt.Errorf("tollgate: unknown class %q: use internal, domestic, mobile or international", s)
	}
	return c, nil
}

// ParseCountries validates a comma-separated list of ISO 3166 regions
// (US, SL, ...) and returns it sorted and deduplicated. Regions, not
// calling codes: +1 is shared by the US, Canada and the Caribbean, where
// much toll fraud terminates, so allowing "US" must not allow "JM".
func ParseCountries(s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", nil
	}
	seen := map[string]bool{}
	for _, c := range strings.Split(s, ",") {
		c = strings.ToUpper(strings.TrimSpace(c))
		if len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
			return "", fmt.Errorf("tollgate: country %q: use two-letter ISO 3166 codes such as US or SL", c)
		}
		seen[c] = true
	}
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Strings(out)
	return strings.Join(out, ","), nil
}

// Policy is what an extension may call.
type Policy struct {
	Class     Class
	Countries map[string]bool
}

// PolicyOf builds the policy of an extension from its stored settings. A
// stored class this binary does not know falls back to internal: fail
// closed, never open.
func PolicyOf(e store.Extension) Policy {
	p := Policy{Class: Class(e.Class), Countries: map[string]bool{}}
	if p.Class == "" {
		p.Class = DefaultClass
	}
	if _, ok := rank[p.Class]; !ok {
		p.Class = ClassInternal
	}
	for _, c := range strings.Split(e.Countries, ",") {
		if c != "" {
			p.Countries[c] = true
		}
	}
	return p
}

func (p Policy) atLeast(c Class) bool { return rank[p.Class] >= rank[c] }

// Decide returns whether the policy allows d, and why.
func (p Policy) Decide(d chain.Destination) (bool, string) {
	switch d.Kind {
	case chain.KindExtension:
		return true, "internal call"
	case chain.KindEmergency:
		return true, "emergency numbers are always allowed"
	case chain.KindFixed, chain.KindTollFree:
		return p.atLeast(ClassDomestic), "class " + string(p.Class) + ", " + string(d.Kind) + " " + d.E164
	case chain.KindMobile:
		return p.atLeast(ClassMobile), "class " + string(p.Class) + ", mobile " + d.E164
	case chain.KindInternational:
		// Toll fraud guard: the incident's calls went to +232. Abroad
		// needs the international class and the country on the list.
		if !p.atLeast(ClassInternational) {
			return false, "class " + string(p.Class) + " may not call abroad (" + d.E164 + ", " + d.Country + ")"
		}
		if !p.Countries[d.Country] {
			return false, "country " + d.Country + " (" + d.E164 + ") not on the allow list"
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
type Stage struct{ Accounts Accounts }

// Name implements chain.Stage.
func (Stage) Name() string { return "tollgate" }

// Run implements chain.Stage.
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
	ok, why := PolicyOf(e).Decide(a.Dest)
	if !ok {
		return chain.Deny(403, "tollgate: "+a.Caller+": "+why)
	}
	return chain.Pass("tollgate: " + a.Caller + ": " + why)
}
