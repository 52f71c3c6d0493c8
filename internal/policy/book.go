package policy

import (
	"context"
	"sync/atomic"
	"time"
)

// Freeze is the PBX-wide freeze of international calls.
type Freeze struct {
	Reason   string    // "" when not frozen
	Unfrozen time.Time // when a person last lifted a freeze
	// Fleet is why the vendor's centre blocks calls abroad on every unit
	// (its bundle), "" when it does not. Only a newer bundle lifts it.
	Fleet string
}

// Source is where the policy is kept. *store.Store satisfies it.
type Source interface {
	Profiles(ctx context.Context) ([]Profile, error)
	ScopeLimits(ctx context.Context) (map[string]Limits, error)
	Rates(ctx context.Context) ([]Rate, error)
	IntlFreeze(ctx context.Context) (Freeze, error)
}

// Snapshot is the policy at one moment. It is never changed once built.
type Snapshot struct {
	profiles map[string]Profile
	hours    map[string]Hours
	scopes   map[string]Limits
	Rates    Rates
	Freeze   Freeze
}

// Profile returns the named profile ("" is the default). A name that does
// not exist gets the default profile with class internal: fail closed, a
// typo must never widen what an extension may call.
func (s *Snapshot) Profile(name string) (Profile, Hours) {
	if name == "" {
		name = DefaultProfile
	}
	if p, ok := s.profiles[name]; ok {
		return p, s.hours[name]
	}
	p := Default()
	p.Name, p.Class = name, ClassInternal
	return p, Hours{}
}

// Scope returns the limits of a scope ("pbx", "trunk:NAME"); none set
// means no limits at that scope.
func (s *Snapshot) Scope(scope string) Limits { return s.scopes[scope] }

// Book keeps the current snapshot. Safe for concurrent use.
type Book struct {
	src Source
	cur atomic.Pointer[Snapshot]
}

// NewBook returns a book on src; Reload must succeed once before use.
func NewBook(src Source) *Book { return &Book{src: src} }

// Current returns the snapshot in force.
func (b *Book) Current() *Snapshot { return b.cur.Load() }

// Reload reads the policy from the source and swaps it in. On error the
// previous snapshot stays in force.
func (b *Book) Reload(ctx context.Context) error {
	ps, err := b.src.Profiles(ctx)
	if err != nil {
		return err
	}
	sn := &Snapshot{profiles: map[string]Profile{}, hours: map[string]Hours{}}
	for _, p := range ps {
		h, err := ParseHours(p.Hours)
		if err != nil {
			// Stored by an older or hand-edited database: never open.
			h = Hours{windows: []window{{}}}
		}
		sn.profiles[p.Name], sn.hours[p.Name] = p, h
	}
	if sn.scopes, err = b.src.ScopeLimits(ctx); err != nil {
		return err
	}
	rs, err := b.src.Rates(ctx)
	if err != nil {
		return err
	}
	sn.Rates = NewRates(rs)
	if sn.Freeze, err = b.src.IntlFreeze(ctx); err != nil {
		return err
	}
	b.cur.Store(sn)
	return nil
}

// Static returns a book holding fixed values, for tests and dry runs.
func Static(profiles []Profile, scopes map[string]Limits, rates []Rate, f Freeze) *Book {
	b := NewBook(staticSource{profiles, scopes, rates, f})
	b.Reload(context.Background())
	return b
}

type staticSource struct {
	ps []Profile
	sc map[string]Limits
	rs []Rate
	f  Freeze
}

func (s staticSource) Profiles(context.Context) ([]Profile, error)            { return s.ps, nil }
func (s staticSource) ScopeLimits(context.Context) (map[string]Limits, error) { return s.sc, nil }
func (s staticSource) Rates(context.Context) ([]Rate, error)                  { return s.rs, nil }
func (s staticSource) IntlFreeze(context.Context) (Freeze, error)             { return s.f, nil }
