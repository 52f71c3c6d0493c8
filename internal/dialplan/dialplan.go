// Package dialplan is the canonicalise stage: the one parse of what a
// caller dialled into a typed destination. Nothing after it looks at the
// dialled text again, so no later stage and no outgoing leg can read the
// string differently from the decision that was made on it.
//
// It knows extensions, numbers a carrier delivers (DIDs), and, until the
// toll gate issue brings full classification, one strict domestic pattern
// for outbound calls. Everything else is invalid and denied.
package dialplan

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/sekisho/sekisho/internal/chain"
)

// Extension number rules. They are digits only, so no symbol, letter or
// visual separator can ever be part of a number sekisho routes; they do not
// start with 0 (the outside-line prefix in Japan) and are not an emergency
// number, so an extension can never shadow a public number.
const (
	MinExtensionLen = 2
	MaxExtensionLen = 8
)

// emergency numbers per region that no extension may take.
var emergency = map[string][]string{
	"JP": {"110", "118", "119"},
}

// Plan holds the region's rules. It is immutable after New.
type Plan struct {
	region        string
	outsidePrefix string
}

// New returns a Plan for region (ISO 3166 alpha-2, e.g. "JP") with the
// default outside-line prefix "0".
func New(region string) *Plan { return &Plan{region: region, outsidePrefix: "0"} }

// WithOutsidePrefix returns a copy of p using prefix to reach the public
// network (digits only; "" means numbers are dialled without one).
func (p *Plan) WithOutsidePrefix(prefix string) *Plan {
	q := *p
	q.outsidePrefix = prefix
	return &q
}

// jpNotDomestic are national prefixes the interim domestic rule refuses
// even though they start like a domestic number: 010 is the international
// prefix (the incident), 0990 premium-rate, 0570 shared-cost, 0180
// information and televoting services, 020 pagers and M2M.
var jpNotDomestic = []string{"010", "0990", "0570", "0180", "020"}

// domestic reports whether national (after the outside-line prefix) is a
// strictly domestic number for the region: for JP, digits only, a trunk
// prefix 0 then a non-zero digit, 10 or 11 digits, and none of
// jpNotDomestic. Other regions have no domestic rule yet: nothing leaves.
func (p *Plan) domestic(national string) bool {
	if p.region != "JP" {
		return false
	}
	if len(national) != 10 && len(national) != 11 {
		return false
	}
	if !digits(national) || national[0] != '0' || national[1] == '0' {
		return false
	}
	for _, bad := range jpNotDomestic {
		if strings.HasPrefix(national, bad) {
			return false
		}
	}
	if len(national) == 11 {
		// 11 digits only for mobile (070/080/090), IP phones (050) and
		// 0800 toll-free.
		ok := false
		for _, pre := range []string{"070", "080", "090", "050", "0800"} {
			ok = ok || strings.HasPrefix(national, pre)
		}
		return ok
	}
	return true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// ValidExtension reports whether n may be used as an extension number, and
// why not.
func (p *Plan) ValidExtension(n string) error {
	if len(n) < MinExtensionLen || len(n) > MaxExtensionLen {
		return fmt.Errorf("dialplan: extension %q must be %d to %d digits", n, MinExtensionLen, MaxExtensionLen)
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return fmt.Errorf("dialplan: extension %q must be ASCII digits only", n)
		}
	}
	if n[0] == '0' {
		return fmt.Errorf("dialplan: extension %q must not start with 0 (the outside-line prefix)", n)
	}
	for _, e := range emergency[p.region] {
		if n == e {
			return fmt.Errorf("dialplan: extension %q is an emergency number", n)
		}
	}
	return nil
}

// Canonical parses the user part of a Request-URI from a phone. It
// percent-decodes once and then accepts a valid extension number, or the
// outside-line prefix followed by a strictly domestic number; anything else
// (symbols, letters, separators, a prefix in front of 010) is invalid.
func (p *Plan) Canonical(user string) chain.Destination {
	dec, err := url.PathUnescape(user)
	if err != nil {
		return chain.Destination{Kind: chain.KindInvalid}
	}
	if p.ValidExtension(dec) == nil {
		return chain.Destination{Kind: chain.KindExtension, Number: dec}
	}
	if p.outsidePrefix != "" && strings.HasPrefix(dec, p.outsidePrefix) {
		if national := dec[len(p.outsidePrefix):]; p.domestic(national) {
			return chain.Destination{Kind: chain.KindDomestic, Number: national}
		}
	}
	return chain.Destination{Kind: chain.KindInvalid}
}

// Inbound parses the user part of a Request-URI from a carrier: the number
// it delivers, digits with an optional leading +.
func (p *Plan) Inbound(user string) chain.Destination {
	dec, err := url.PathUnescape(user)
	if err != nil {
		return chain.Destination{Kind: chain.KindInvalid}
	}
	n := strings.TrimPrefix(dec, "+")
	if len(n) < 2 || len(n) > 15 || !digits(n) {
		return chain.Destination{Kind: chain.KindInvalid}
	}
	return chain.Destination{Kind: chain.KindDID, Number: dec}
}

// Stage is the canonicalise stage of the call chain.
type Stage struct{ Plan *Plan }

// Name implements chain.Stage.
func (Stage) Name() string { return "dialplan" }

// Run implements chain.Stage. It sets a.Dest.
func (s Stage) Run(_ context.Context, a *chain.Attempt) chain.Verdict {
	if a.Trunk != "" {
		a.Dest = s.Plan.Inbound(a.Dialled)
	} else {
		a.Dest = s.Plan.Canonical(a.Dialled)
	}
	if a.Dest.Kind == chain.KindInvalid {
		return chain.Deny(484, fmt.Sprintf("dialplan: %q is not a valid destination", a.Dialled))
	}
	return chain.Pass(fmt.Sprintf("dialplan: %s %s", a.Dest.Kind, a.Dest.Number))
}
