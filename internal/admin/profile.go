package admin

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/store"
)

// ProfileChange is an edit of a policy profile; nil fields stay as they
// are (or as the shipped defaults, for a new profile).
type ProfileChange struct {
	Class       *string        `json:"class,omitempty"`
	Countries   *string        `json:"countries,omitempty"`
	Hours       *string        `json:"hours,omitempty"`
	MaxDuration *time.Duration `json:"-"`
	// Limits (0: no limit).
	MaxCalls        *int   `json:"max_calls,omitempty"`
	IntlPerMinute   *int   `json:"intl_per_minute,omitempty"`
	IntlPerHour     *int   `json:"intl_per_hour,omitempty"`
	SamePrefix      *int   `json:"same_prefix,omitempty"`
	DistinctPerHour *int   `json:"distinct_per_hour,omitempty"`
	DailySpend      *int64 `json:"daily_spend,omitempty"`
}

// ApplyLimits copies the limits that ch sets onto l.
func (ch ProfileChange) ApplyLimits(l *policy.Limits) {
	set := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	set(&l.MaxCalls, ch.MaxCalls)
	set(&l.IntlPerMinute, ch.IntlPerMinute)
	set(&l.IntlPerHour, ch.IntlPerHour)
	set(&l.SamePrefix, ch.SamePrefix)
	set(&l.DistinctPerHour, ch.DistinctPerHour)
	if ch.DailySpend != nil {
		l.DailySpend = *ch.DailySpend
	}
}

// PutProfile creates (create) or edits profile name with ch, validated
// whole before anything is stored.
func PutProfile(ctx context.Context, st *store.Store, name string, ch ProfileChange, create bool) (policy.Profile, error) {
	p := policy.Default() // a new profile starts from the shipped defaults
	p.Name = name
	if !create {
		var err error
		if p, err = st.Profile(ctx, name); err != nil {
			return p, &FieldError{Field: "name", Msg: "no profile " + name, Err: err}
		}
	}
	if ch.Class != nil {
		cl, err := policy.ParseClass(*ch.Class)
		if err != nil || cl == "" {
			return p, refuse("class", "use internal, domestic, mobile or international")
		}
		p.Class = cl
	}
	if ch.Countries != nil {
		c, err := policy.ParseCountries(*ch.Countries)
		if err != nil {
			return p, refuse("countries", "%v", err)
		}
		p.Countries = c
	}
	if ch.Hours != nil {
		if _, err := policy.ParseHours(*ch.Hours); err != nil {
			return p, refuse("hours", "%v", err)
		}
		p.Hours = strings.TrimSpace(*ch.Hours)
	}
	if ch.MaxDuration != nil {
		p.MaxDuration = *ch.MaxDuration
	}
	ch.ApplyLimits(&p.Limits)
	if err := p.Validate(); err != nil {
		return p, refuse("name", "profile %s: %v", p.Name, err)
	}
	if err := st.PutProfile(ctx, p, create); err != nil {
		if errors.Is(err, store.ErrExists) {
			return p, &FieldError{Field: "name", Msg: "profile " + name + " exists already", Err: err}
		}
		return p, err
	}
	return p, nil
}
