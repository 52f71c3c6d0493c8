// Package registrar keeps the location service of RFC 3261 section 10:
// which contact addresses each extension (address-of-record) is reachable
// at, with their expiry. Bindings live in memory; phones refresh them.
package registrar

import (
	"errors"
	"sort"
	"sync"
	"time"
)

// Binding is one registered contact of an extension.
type Binding struct {
	Contact    string // Contact URI exactly as the phone registered it
	Source     string // transport source address of the REGISTER
	Transport  string // "udp" or "tcp"
	UserAgent  string
	CallID     string
	CSeq       uint32
	Expires    time.Time
	Registered time.Time
}

// Change is one contact in a REGISTER request.
type Change struct {
	Contact string
	Expires time.Duration // 0 removes the binding
}

// Request is a REGISTER reduced to what the location service needs.
type Request struct {
	AOR       string
	Changes   []Change
	Wildcard  bool // "Contact: *" with Expires 0: remove every binding
	CallID    string
	CSeq      uint32
	Source    string
	Transport string
	UserAgent string
}

// Errors returned by Apply; the caller maps them to SIP responses.
var (
	ErrTooBrief   = errors.New("registrar: interval too brief")    // 423
	ErrOutOfOrder = errors.New("registrar: out-of-order REGISTER") // 500 with Retry-After, RFC 3261 10.3 step 7
	ErrTooMany    = errors.New("registrar: too many contacts")     // 403
)

// Limits bound what a registration may ask for.
type Limits struct {
	Min, Max, Default time.Duration
	MaxContacts       int // per extension; bounds memory per account
}

// DefaultLimits are used for zero fields.
var DefaultLimits = Limits{Min: 60 * time.Second, Max: time.Hour, Default: time.Hour, MaxContacts: 10}

// Registrar is the in-memory location service. Safe for concurrent use.
type Registrar struct {
	limits Limits
	now    func() time.Time

	mu       sync.RWMutex
	bindings map[string][]Binding // AOR -> live bindings; guarded by mu
}

// New returns an empty Registrar.
func New(l Limits) *Registrar {
	if l.Min <= 0 {
		l.Min = DefaultLimits.Min
	}
	if l.Max <= 0 {
		l.Max = DefaultLimits.Max
	}
	if l.Default <= 0 {
		l.Default = DefaultLimits.Default
	}
	if l.MaxContacts <= 0 {
		l.MaxContacts = DefaultLimits.MaxContacts
	}
	return &Registrar{limits: l, now: time.Now, bindings: make(map[string][]Binding)}
}

// Limits returns the registrar's limits (Min-Expires for a 423).
func (r *Registrar) Limits() Limits { return r.limits }

// Apply performs RFC 3261 10.3 steps 6-8 for req and returns the bindings
// now current for the AOR.
func (r *Registrar) Apply(req Request) ([]Binding, error) {
	now := r.now()
	for _, c := range req.Changes {
		if c.Expires > 0 && c.Expires < r.limits.Min {
			return nil, ErrTooBrief
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := live(r.bindings[req.AOR], now)
	if req.Wildcard {
		for _, b := range cur {
			if b.CallID == req.CallID && req.CSeq <= b.CSeq {
				return nil, ErrOutOfOrder
			}
		}
		delete(r.bindings, req.AOR)
		return nil, nil
	}
	for _, c := range req.Changes {
		i := indexOf(cur, c.Contact)
		if i >= 0 && cur[i].CallID == req.CallID && req.CSeq <= cur[i].CSeq {
			return nil, ErrOutOfOrder
		}
		if c.Expires == 0 {
			if i >= 0 {
				cur = append(cur[:i], cur[i+1:]...)
			}
			continue
		}
		exp := min(c.Expires, r.limits.Max)
		b := Binding{
			Contact: c.Contact, Source: req.Source, Transport: req.Transport, UserAgent: req.UserAgent,
			CallID: req.CallID, CSeq: req.CSeq, Expires: now.Add(exp), Registered: now,
		}
		if i >= 0 {
			cur[i] = b
			continue
		}
		if len(cur) >= r.limits.MaxContacts {
			return nil, ErrTooMany
		}
		cur = append(cur, b)
	}
	if len(cur) == 0 {
		delete(r.bindings, req.AOR)
		return nil, nil
	}
	r.bindings[req.AOR] = cur
	return append([]Binding(nil), cur...), nil
}

// Lookup returns the live bindings of aor, oldest first.
func (r *Registrar) Lookup(aor string) []Binding {
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	return live(r.bindings[aor], now)
}

// Remove drops every binding of aor (the extension was deleted).
func (r *Registrar) Remove(aor string) {
	r.mu.Lock()
	delete(r.bindings, aor)
	r.mu.Unlock()
}

// All returns a snapshot of every live binding, by AOR.
func (r *Registrar) All() map[string][]Binding {
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string][]Binding, len(r.bindings))
	for aor, bs := range r.bindings {
		if l := live(bs, now); len(l) > 0 {
			out[aor] = l
		}
	}
	return out
}

// Sweep removes expired bindings; call it periodically so that memory
// follows the live registrations.
func (r *Registrar) Sweep() {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for aor, bs := range r.bindings {
		if l := live(bs, now); len(l) == 0 {
			delete(r.bindings, aor)
		} else {
			r.bindings[aor] = l
		}
	}
}

// live returns a fresh slice of the unexpired bindings, oldest first.
func live(bs []Binding, now time.Time) []Binding {
	out := make([]Binding, 0, len(bs))
	for _, b := range bs {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Registered.Before(out[j].Registered) })
	return out
}

func indexOf(bs []Binding, contact string) int {
	for i, b := range bs {
		if b.Contact == contact {
			return i
		}
	}
	return -1
}
