// Package policy holds the toll policy that an office edits: profiles
// (class of service, countries abroad, business hours for international
// calls, and the limits that contain a compromised extension), the limits
// of each trunk and of the whole PBX, and the per-prefix rate table that
// turns a call into an estimated cost. It parses and validates these and
// keeps the current snapshot, reloaded from the store, for the gate.
//
// It decides nothing about a call itself: package tollgate applies a
// profile to a canonical destination, package limits counts calls against
// the limits.
package policy

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Class is a class of service. Each includes the ones before it.
type Class string

// Classes of service.
const (
	ClassInternal      Class = "internal"      // extensions and emergency only
	ClassDomestic      Class = "domestic"      // + domestic fixed and toll-free
	ClassMobile        Class = "mobile"        // + mobile
	ClassInternational Class = "international" // + the countries on the list
)

var rank = map[Class]int{ClassInternal: 0, ClassDomestic: 1, ClassMobile: 2, ClassInternational: 3}

// AtLeast reports whether c includes everything class min allows. An
// unknown class includes nothing beyond internal (fail closed).
func (c Class) AtLeast(min Class) bool {
	r, ok := rank[c]
	if !ok {
		r = 0
	}
	return r >= rank[min]
}

// Known reports whether c is a class this binary knows.
func (c Class) Known() bool { _, ok := rank[c]; return ok }

// ParseClass validates a class name; "" or "default" means "inherit".
func ParseClass(s string) (Class, error) {
	if s == "" || s == "default" {
		return "", nil
	}
	c := Class(strings.ToLower(s))
	if !c.Known() {
		return "", fmt.Errorf("unknown class %q: use internal, domestic, mobile or international", s)
	}
	return c, nil
}

// ParseCountries validates a comma-separated list of ISO 3166 regions
// (US, SL, ...) and returns it sorted and deduplicated; "none" is empty.
// Regions, not calling codes: +1 is shared by the US, Canada and the
// Caribbean, where much toll fraud terminates, so allowing "US" must not
// allow "JM".
func ParseCountries(s string) (string, error) {
	if strings.TrimSpace(s) == "" || s == "none" {
		return "", nil
	}
	seen := map[string]bool{}
	for _, c := range strings.Split(s, ",") {
		c = strings.ToUpper(strings.TrimSpace(c))
		if len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
			return "", fmt.Errorf("country %q: use two-letter ISO 3166 codes such as US or SL", c)
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

// Limits contain what one extension (or a trunk, or the PBX) can spend
// before a person looks. Zero means "no limit" for a count and for the
// spend; every field is checked only for outbound calls to the public
// network, never for emergency numbers.
type Limits struct {
	// MaxCalls is the number of outbound calls in progress at once.
	MaxCalls int `json:"max_calls"`
	// IntlPerMinute and IntlPerHour count international call attempts
	// that passed the gate, in sliding windows.
	IntlPerMinute int `json:"intl_per_minute"`
	IntlPerHour   int `json:"intl_per_hour"`
	// SamePrefix is the number of international calls in a row to one
	// prefix (country code and the next three digits): the pattern of a
	// fraud run through a block of premium numbers.
	SamePrefix int `json:"same_prefix"`
	// DistinctPerHour is the number of different international numbers
	// called in an hour.
	DistinctPerHour int `json:"distinct_per_hour"`
	// DailySpend caps the estimated cost of a day's outbound calls, in
	// the rate table's unit (yen), reserved at call start and settled at
	// hang-up.
	DailySpend int64 `json:"daily_spend"`
}

// Profile is a named policy that extensions inherit.
type Profile struct {
	Name      string `json:"name"`
	Class     Class  `json:"class"`
	Countries string `json:"countries"` // ISO regions, comma-separated
	// Hours are the windows in which international calls are allowed;
	// empty means at any time.
	Hours string `json:"hours"`
	// MaxDuration is the longest an answered outbound call may last;
	// the PBX hangs up. Zero leaves only the PBX-wide limit.
	MaxDuration time.Duration `json:"max_duration"`
	Limits
}

// DefaultProfile is the profile every extension starts with. Out of the
// box: domestic fixed, mobile and emergency; nothing abroad, nothing
// premium; and limits that would have stopped the incident's run within
// minutes even for an extension later allowed abroad.
const DefaultProfile = "default"

// Default returns the shipped default profile.
func Default() Profile {
	return Profile{
		Name: DefaultProfile, Class: ClassMobile, MaxDuration: time.Hour,
		Limits: Limits{MaxCalls: 2, IntlPerMinute: 2, IntlPerHour: 10, SamePrefix: 5, DistinctPerHour: 10, DailySpend: 5000},
	}
}

// DefaultPBXLimits are the whole PBX's limits out of the box.
func DefaultPBXLimits() Limits {
	return Limits{MaxCalls: 20, IntlPerMinute: 5, IntlPerHour: 30, DistinctPerHour: 30, DailySpend: 30000}
}

// ValidName checks a profile name: short, lower-case letters, digits and
// dashes, so it is safe in every place it is printed.
func ValidName(n string) error {
	if n == "" || len(n) > 32 {
		return errors.New("profile name must be 1 to 32 characters")
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("profile name %q: use lower-case letters, digits and dashes", n)
		}
	}
	return nil
}

// Validate checks every field and names the one that is wrong.
func (p Profile) Validate() error {
	if err := ValidName(p.Name); err != nil {
		return err
	}
	if !p.Class.Known() {
		return fmt.Errorf("class %q: use internal, domestic, mobile or international", p.Class)
	}
	if _, err := ParseCountries(p.Countries); err != nil {
		return fmt.Errorf("countries: %w", err)
	}
	if _, err := ParseHours(p.Hours); err != nil {
		return fmt.Errorf("hours: %w", err)
	}
	if p.MaxDuration < 0 {
		return errors.New("max-duration: must not be negative")
	}
	return p.Limits.Validate()
}

// Validate checks that no limit is negative.
func (l Limits) Validate() error {
	for name, v := range map[string]int64{
		"max-calls": int64(l.MaxCalls), "intl-per-minute": int64(l.IntlPerMinute), "intl-per-hour": int64(l.IntlPerHour),
		"same-prefix": int64(l.SamePrefix), "distinct-per-hour": int64(l.DistinctPerHour), "daily-spend": l.DailySpend,
	} {
		if v < 0 {
			return fmt.Errorf("%s: must be 0 (no limit) or more, got %d", name, v)
		}
	}
	return nil
}

// Hours is a set of weekly windows in local time.
type Hours struct {
	windows []window
}

type window struct {
	days       [7]bool // by time.Weekday
	start, end int     // minutes after midnight, end exclusive
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseHours parses windows such as "mon-fri 08:00-20:00, sat 09:00-13:00".
// "" or "always" means any time; "never" means no time at all. A day
// range may wrap (fri-mon); a window does not cross midnight.
func ParseHours(s string) (Hours, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || s == "always" {
		return Hours{}, nil
	}
	if s == "never" {
		return Hours{windows: []window{{}}}, nil
	}
	var h Hours
	for _, part := range strings.Split(s, ",") {
		f := strings.Fields(part)
		if len(f) != 2 {
			return Hours{}, fmt.Errorf("window %q: want DAYS HH:MM-HH:MM, such as mon-fri 08:00-20:00", strings.TrimSpace(part))
		}
		var w window
		if err := parseDays(f[0], &w.days); err != nil {
			return Hours{}, err
		}
		a, b, ok := strings.Cut(f[1], "-")
		if !ok {
			return Hours{}, fmt.Errorf("times %q: want HH:MM-HH:MM", f[1])
		}
		var err error
		if w.start, err = clock(a); err != nil {
			return Hours{}, err
		}
		if w.end, err = clock(b); err != nil {
			return Hours{}, err
		}
		if w.end <= w.start {
			return Hours{}, fmt.Errorf("times %q: the end must be after the start (a window cannot cross midnight; use two)", f[1])
		}
		h.windows = append(h.windows, w)
	}
	return h, nil
}

func parseDays(s string, days *[7]bool) error {
	if s == "daily" || s == "all" {
		for i := range days {
			days[i] = true
		}
		return nil
	}
	a, b, isRange := strings.Cut(s, "-")
	from, to := dayIndex(a), dayIndex(b)
	if !isRange {
		to = from
	}
	if from < 0 || to < 0 {
		return fmt.Errorf("days %q: use mon, tue, ..., a range such as mon-fri, or daily", s)
	}
	for i := from; ; i = (i + 1) % 7 {
		days[i] = true
		if i == to {
			return nil
		}
	}
}

func dayIndex(s string) int {
	for i, d := range dayNames {
		if s == d {
			return i
		}
	}
	return -1
}

func clock(s string) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if !ok || err1 != nil || err2 != nil || len(mm) != 2 || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("time %q: want HH:MM, 00:00 to 24:00", s)
	}
	return h*60 + m, nil
}

// Always reports whether h allows any time.
func (h Hours) Always() bool { return len(h.windows) == 0 }

// Contains reports whether t (in its own location) falls in a window.
func (h Hours) Contains(t time.Time) bool {
	if h.Always() {
		return true
	}
	min := t.Hour()*60 + t.Minute()
	for _, w := range h.windows {
		if w.days[t.Weekday()] && min >= w.start && min < w.end {
			return true
		}
	}
	return false
}
