// Package dialplan is the canonicalise stage: the one parse of what a
// caller dialled into a typed destination. Nothing after it looks at the
// dialled text again, so no later stage and no outgoing leg can read the
// string differently from the decision that was made on it.
//
// The incident's bypass (a symbol in front of 010) is impossible by
// construction here, not by a deny list: after one percent-decoding the
// text must be ASCII digits with at most a leading +, and what the region's
// habits (outside-line prefix, 184/186, carrier-selection codes, 010) leave
// must be a number libphonenumber calls valid. Anything else is invalid.
package dialplan

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/nyaruka/phonenumbers"

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

// region holds the dialling habits libphonenumber does not know.
type region struct {
	emergency []string
	// intlPrefix is the international access code dialled after the
	// outside-line prefix (010 in Japan, 011 in North America, 00 in
	// most of the world).
	intlPrefix string
	// nationalPrefix starts every national number dialled from inside the
	// region (0 in Japan); required says a national number without it
	// is invalid (in North America "1" may be left out).
	nationalPrefix string
	required       bool
	// callerIDPrefixes are dialled before a number to hide (184) or show
	// (186) the caller's number.
	withhold, present string
	// carrierCodes select a long-distance or international carrier
	// before the number; sekisho's trunk is the carrier, so they are
	// removed and never sent. An X matches any one digit (the North
	// American dial-around 1010XXX).
	carrierCodes []string
}

// regions are the dialling habits sekisho knows. Facts, not guesses: a
// region missing here is refused at start rather than half understood.
var regions = map[string]region{
	"JP": {
		emergency:      []string{"110", "118", "119"},
		intlPrefix:     "010",
		nationalPrefix: "0",
		required:       true,
		withhold:       "184",
		present:        "186",
		carrierCodes:   []string{"0033", "0036", "0041", "0061", "0088", "0091", "001"},
	},
	"US": nanp,
	"CA": nanp,
	"GB": {
		emergency:      []string{"999", "112"},
		intlPrefix:     "00",
		nationalPrefix: "0",
		required:       true,
		withhold:       "141",
	},
}

var nanp = region{
	emergency:      []string{"911"},
	intlPrefix:     "011",
	nationalPrefix: "1",
	carrierCodes:   []string{"1010XXX"},
}

// carrierCode returns the length of the carrier-selection code that rest
// starts with, or 0.
func (h region) carrierCode(rest string) int {
	for _, c := range h.carrierCodes {
		if len(rest) < len(c) {
			continue
		}
		match := true
		for i := 0; i < len(c) && match; i++ {
			match = c[i] == rest[i] || (c[i] == 'X' && rest[i] >= '0' && rest[i] <= '9')
		}
		if match {
			return len(c)
		}
	}
	return 0
}

// Supported reports whether the dialling habits of region are known. A
// region without them would not know its emergency numbers, so the
// server refuses to start with one.
func Supported(region string) bool { _, ok := regions[region]; return ok }

// Regions lists the regions whose habits are known, sorted.
func Regions() []string {
	out := make([]string, 0, len(regions))
	for r := range regions {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// Plan holds the region's rules. It is immutable after New.
type Plan struct {
	region        string
	habits        region
	outsidePrefix string
}

// New returns a Plan for region (ISO 3166 alpha-2, e.g. "JP") with the
// default outside-line prefix "0".
func New(region string) *Plan {
	return &Plan{region: region, habits: regions[region], outsidePrefix: "0"}
}

// WithOutsidePrefix returns a copy of p using prefix to reach the public
// network (digits only; "" means numbers are dialled without one).
func (p *Plan) WithOutsidePrefix(prefix string) *Plan {
	q := *p
	q.outsidePrefix = prefix
	return &q
}

// ValidExtension reports whether n may be used as an extension number, and
// why not.
func (p *Plan) ValidExtension(n string) error {
	if len(n) < MinExtensionLen || len(n) > MaxExtensionLen {
		return fmt.Errorf("dialplan: extension %q must be %d to %d digits", n, MinExtensionLen, MaxExtensionLen)
	}
	if !digits(n) {
		return fmt.Errorf("dialplan: extension %q must be ASCII digits only", n)
	}
	if n[0] == '0' || (p.outsidePrefix != "" && strings.HasPrefix(n, p.outsidePrefix)) {
		return fmt.Errorf("dialplan: extension %q must not start with 0 or the outside-line prefix %q", n, p.outsidePrefix)
	}
	if p.emergency(n) {
		return fmt.Errorf("dialplan: extension %q is an emergency number", n)
	}
	return nil
}

func (p *Plan) emergency(n string) bool {
	for _, e := range p.habits.emergency {
		if n == e {
			return true
		}
	}
	return false
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

var invalid = chain.Destination{Kind: chain.KindInvalid}

// Canonical parses the user part of a Request-URI from a phone into a
// destination. It percent-decodes exactly once; the result must be ASCII
// digits with at most one leading +. Symbols (* # , p w), letters,
// separators, ;phone-context, full-width digits and a second layer of
// percent-encoding all make the destination invalid.
func (p *Plan) Canonical(user string) chain.Destination {
	dec, err := url.PathUnescape(user)
	if err != nil {
		return invalid
	}
	plus := strings.HasPrefix(dec, "+")
	body := strings.TrimPrefix(dec, "+")
	if !digits(body) {
		return invalid
	}
	if plus {
		// +CC... : an E.164 number as smartphones dial it.
		return p.public("+"+body, false)
	}
	if p.ValidExtension(body) == nil {
		return chain.Destination{Kind: chain.KindExtension, Number: body}
	}
	if p.emergency(body) {
		return chain.Destination{Kind: chain.KindEmergency, Number: body}
	}
	if p.outsidePrefix == "" || !strings.HasPrefix(body, p.outsidePrefix) {
		return invalid
	}
	rest := body[len(p.outsidePrefix):]
	if p.emergency(rest) {
		return chain.Destination{Kind: chain.KindEmergency, Number: rest}
	}
	// 184/186 and a carrier-selection code may each come first, once.
	withhold := false
	for range 2 {
		switch {
		case p.habits.withhold != "" && strings.HasPrefix(rest, p.habits.withhold):
			rest, withhold = rest[len(p.habits.withhold):], true
		case p.habits.present != "" && strings.HasPrefix(rest, p.habits.present):
			rest = rest[len(p.habits.present):]
		default:
			rest = rest[p.habits.carrierCode(rest):]
		}
	}
	if p.habits.intlPrefix != "" && strings.HasPrefix(rest, p.habits.intlPrefix) {
		return p.public("+"+rest[len(p.habits.intlPrefix):], withhold)
	}
	if np := p.habits.nationalPrefix; p.habits.required && (!strings.HasPrefix(rest, np) || strings.HasPrefix(rest, np+np)) {
		// Japan: a national number is 0 and a non-zero digit; "00..."
		// would be a carrier or international code gone wrong.
		return invalid
	}
	return p.public(rest, withhold)
}

// public classifies a national (0...) or E.164 (+...) number with
// libphonenumber. Only numbers it calls valid are classified; a type it
// cannot name with certainty is invalid.
func (p *Plan) public(n string, withhold bool) chain.Destination {
	num, err := phonenumbers.Parse(n, p.region)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return invalid
	}
	d := chain.Destination{
		E164:        phonenumbers.Format(num, phonenumbers.E164),
		Country:     phonenumbers.GetRegionCodeForNumber(num),
		CountryCode: int(num.GetCountryCode()),
		Withhold:    withhold,
	}
	if d.Country != p.region {
		d.Kind, d.Number = chain.KindInternational, d.E164
		return d
	}
	d.Number = p.habits.nationalPrefix + phonenumbers.GetNationalSignificantNumber(num)
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.FIXED_LINE, phonenumbers.FIXED_LINE_OR_MOBILE, phonenumbers.VOIP:
		d.Kind = chain.KindFixed
	case phonenumbers.MOBILE:
		d.Kind = chain.KindMobile
	case phonenumbers.TOLL_FREE:
		d.Kind = chain.KindTollFree
	case phonenumbers.SHARED_COST, phonenumbers.UAN:
		d.Kind = chain.KindSharedCost
	case phonenumbers.PREMIUM_RATE:
		d.Kind = chain.KindPremium
	default:
		return invalid
	}
	return d
}

// Inbound parses the user part of a Request-URI from a carrier: the number
// it delivers, digits with an optional leading +.
func (p *Plan) Inbound(user string) chain.Destination {
	dec, err := url.PathUnescape(user)
	if err != nil {
		return invalid
	}
	n := strings.TrimPrefix(dec, "+")
	if len(n) < 2 || len(n) > 15 || !digits(n) {
		return invalid
	}
	return chain.Destination{Kind: chain.KindDID, Number: dec}
}

// Number formats a carrier trunk may want in the Request-URI.
const (
	// FormatMixed: domestic numbers in national form (0312345678),
	// international in E.164 (+23276123456).
	FormatMixed = "mixed"
	// FormatNational: what a phone on the carrier's own line would dial:
	// national form at home, the region's international prefix abroad
	// (01023276123456 in Japan).
	FormatNational = "national"
	// FormatE164: every number in E.164 (+81312345678).
	FormatE164 = "e164"
)

// ValidFormat checks a trunk's number format name.
func ValidFormat(f string) error {
	switch f {
	case FormatMixed, FormatNational, FormatE164:
		return nil
	}
	return fmt.Errorf("number format %q: use mixed, national or e164", f)
}

// Format writes the approved destination d as a trunk with format wants
// it. It is built from the canonical fields only, never from dialled
// text, so the result is digits with at most a leading +. Emergency
// numbers are always sent as their short code.
func (p *Plan) Format(d chain.Destination, format string) (string, error) {
	if d.Kind == chain.KindEmergency || d.E164 == "" {
		return d.Number, nil
	}
	switch format {
	case FormatMixed, "":
		return d.Number, nil
	case FormatE164:
		return d.E164, nil
	case FormatNational:
		if d.Kind != chain.KindInternational {
			return d.Number, nil
		}
		if p.habits.intlPrefix == "" {
			return "", fmt.Errorf("dialplan: region %s has no international prefix for the national format", p.region)
		}
		return p.habits.intlPrefix + strings.TrimPrefix(d.E164, "+"), nil
	}
	return "", ValidFormat(format)
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
