package policy

import (
	"fmt"
	"strings"
	"time"
)

// Rate is the estimated price per minute of calls to numbers starting
// with Prefix (E.164, with its +).
type Rate struct {
	Prefix    string `json:"prefix"`
	PerMinute int64  `json:"per_minute"`
	Note      string `json:"note,omitempty"`
}

// DefaultRates is the bundled rate table in yen per minute: rough public
// figures for Japanese business lines, worst case where carriers differ,
// and a high catch-all so that a destination nobody priced is expensive,
// never free. Edit it to the carrier's tariff (`sekisho rate set`).
func DefaultRates() []Rate {
	return []Rate{
		{"+", 300, "any destination not listed: priced high on purpose"},
		{"+81", 10, "Japan, fixed"},
		{"+8170", 20, "Japan, mobile"},
		{"+8180", 20, "Japan, mobile"},
		{"+8190", 20, "Japan, mobile"},
		{"+8150", 10, "Japan, IP phone (050)"},
		{"+81120", 0, "Japan, toll-free"},
		{"+81800", 0, "Japan, toll-free"},
		{"+1", 30, "NANP (US, Canada); Caribbean listed apart"},
		{"+1876", 150, "Jamaica"},
		{"+1809", 150, "Dominican Republic"},
		{"+1268", 150, "Antigua and Barbuda"},
		{"+1284", 150, "British Virgin Islands"},
		{"+1473", 150, "Grenada"},
		{"+1649", 150, "Turks and Caicos"},
		{"+1767", 150, "Dominica"},
		{"+44", 40, "United Kingdom"},
		{"+82", 40, "South Korea"},
		{"+86", 40, "China"},
		{"+232", 250, "Sierra Leone: the incident's destination"},
		{"+882", 500, "international networks"},
		{"+883", 500, "international networks"},
	}
}

// ValidPrefix checks a rate prefix: + followed by up to 15 digits.
func ValidPrefix(p string) error {
	if !strings.HasPrefix(p, "+") || len(p) > 16 {
		return fmt.Errorf("prefix %q: want + and up to 15 digits, such as +232 or +8190", p)
	}
	for _, c := range p[1:] {
		if c < '0' || c > '9' {
			return fmt.Errorf("prefix %q: want + and digits only", p)
		}
	}
	return nil
}

// Rates is a rate table for longest-prefix lookups. The zero value prices
// nothing; Lookup then returns the fallback.
type Rates struct {
	byPrefix map[string]int64
	maxLen   int
}

// Fallback is the price per minute of a number no row matches, when the
// table has no "+" row either: high, so the unknown is never free.
const Fallback = 300

// NewRates builds a table from rows.
func NewRates(rows []Rate) Rates {
	r := Rates{byPrefix: make(map[string]int64, len(rows))}
	for _, row := range rows {
		r.byPrefix[row.Prefix] = row.PerMinute
		r.maxLen = max(r.maxLen, len(row.Prefix))
	}
	return r
}

// Lookup returns the price per minute of e164 and the prefix that set it.
func (r Rates) Lookup(e164 string) (int64, string) {
	for n := min(len(e164), r.maxLen); n >= 1; n-- {
		if v, ok := r.byPrefix[e164[:n]]; ok {
			return v, e164[:n]
		}
	}
	return Fallback, ""
}

// Cost is the price of d at perMinute, per second and rounded up: a
// started second is paid.
func Cost(perMinute int64, d time.Duration) int64 {
	if d <= 0 || perMinute <= 0 {
		return 0
	}
	secs := int64((d + time.Second - 1) / time.Second)
	return (perMinute*secs + 59) / 60
}

// Affordable is the longest duration that budget pays for at perMinute.
func Affordable(perMinute, budget int64) time.Duration {
	if perMinute <= 0 {
		return time.Duration(1<<62 - 1)
	}
	if budget <= 0 {
		return 0
	}
	return time.Duration(budget*60/perMinute) * time.Second
}
