// Package dialplan is the canonicalise stage: the one parse of what a
// caller dialled into a typed destination. Nothing after it looks at the
// dialled text again, so no later stage and no outgoing leg can read the
// string differently from the decision that was made on it.
//
// In this version only extensions are classified; everything else is
// invalid and denied. The toll gate issue adds public-network numbers.
package dialplan

import (
	"context"
	"fmt"
	"net/url"

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
	region string
}

// New returns a Plan for region (ISO 3166 alpha-2, e.g. "JP").
func New(region string) *Plan { return &Plan{region: region} }

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

// Canonical parses the user part of a Request-URI. It percent-decodes once
// and then accepts only a valid extension number; anything else is invalid.
func (p *Plan) Canonical(user string) chain.Destination {
	dec, err := url.PathUnescape(user)
	if err != nil {
		return chain.Destination{Kind: chain.KindInvalid}
	}
	if p.ValidExtension(dec) == nil {
		return chain.Destination{Kind: chain.KindExtension, Number: dec}
	}
	return chain.Destination{Kind: chain.KindInvalid}
}

// Stage is the canonicalise stage of the call chain.
type Stage struct{ Plan *Plan }

// Name implements chain.Stage.
func (Stage) Name() string { return "dialplan" }

// Run implements chain.Stage. It sets a.Dest.
func (s Stage) Run(_ context.Context, a *chain.Attempt) chain.Verdict {
	a.Dest = s.Plan.Canonical(a.Dialled)
	if a.Dest.Kind == chain.KindInvalid {
		return chain.Deny(484, fmt.Sprintf("dialplan: %q is not a valid destination", a.Dialled))
	}
	return chain.Pass(fmt.Sprintf("dialplan: %s %s", a.Dest.Kind, a.Dest.Number))
}
