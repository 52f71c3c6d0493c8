// Package limits is the stage that contains a compromised extension which
// is allowed to call out: it counts every outbound call that passed the
// toll gate against the limits of the caller's profile, of the trunk and
// of the whole PBX (calls in progress, international calls per minute and
// per hour, calls in a row to one prefix, distinct numbers abroad, and a
// daily spend estimated from the rate table), and reserves the worst case
// of each call until it ends.
//
// A breach of an extension's limit suspends the extension; a breach of a
// trunk's or the PBX's limit freezes international calls PBX-wide. Both
// stay until a person lifts them (`sekisho ext unlock`, `sekisho limits
// unfreeze`): an attacker who trips a limit must not simply wait for a
// window to slide. Calls to emergency numbers are never counted or refused.
//
// Counters live in memory and are rebuilt from the day's call records on
// start, so restarting the PBX resets nothing.
package limits

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/store"
)

// Scopes of a limit.
const (
	ScopeExtension = "extension"
	ScopeTrunk     = "trunk"
	ScopePBX       = "pbx"
)

// Breach is a limit that a call attempt would have exceeded.
type Breach struct {
	Scope   string // ScopeExtension, ScopeTrunk or ScopePBX
	Subject string // the extension number, the trunk name, or "pbx"
	Limit   string // "max-calls", "intl-per-minute", ...
	Detail  string // what was counted, for the alert
}

func (b Breach) String() string {
	s := b.Scope
	if b.Scope != ScopePBX {
		s += " " + b.Subject
	}
	return s + ": " + b.Limit + " exceeded (" + b.Detail + ")"
}

// Actions are what the PBX does on a breach. Both must record the breach
// durably, alert, and end the calls concerned; they run before the
// attempt that breached is refused.
type Actions interface {
	Suspend(ctx context.Context, ext string, b Breach) error
	FreezeIntl(ctx context.Context, b Breach) error
}

// counter is one subject's usage.
type counter struct {
	active   int                  // outbound calls in progress
	intl     []time.Time          // international calls in the last hour, oldest first
	dests    map[string]time.Time // international numbers called in the last hour
	prefix   string               // prefix of the last international call
	run      int                  // international calls in a row to prefix
	day      string               // the local day spent and reserved belong to
	spent    int64                // settled cost today
	reserved int64                // worst case of calls in progress
	// tripped is the breach that stopped this subject, "" if none. It
	// holds until a person unlocks (extension) or unfreezes (PBX),
	// whatever the store says, so a failed write cannot reopen the door.
	tripped   string
	trippedAt time.Time
}

func newCounter() *counter { return &counter{dests: map[string]time.Time{}} }

// roll moves the counter to now: windows slide, and a new day starts the
// spend from zero (reservations of calls in progress carry over).
func (c *counter) roll(now time.Time) {
	if d := now.Format("2006-01-02"); d != c.day {
		c.day, c.spent = d, 0
	}
	hourAgo := now.Add(-time.Hour)
	i := 0
	for i < len(c.intl) && !c.intl[i].After(hourAgo) {
		i++
	}
	c.intl = c.intl[i:]
	for n, t := range c.dests {
		if !t.After(hourAgo) {
			delete(c.dests, n)
		}
	}
}

func (c *counter) lastMinute(now time.Time) int {
	n := 0
	for i := len(c.intl) - 1; i >= 0 && c.intl[i].After(now.Add(-time.Minute)); i-- {
		n++
	}
	return n
}

// Keeper holds the counters. Safe for concurrent use.
type Keeper struct {
	book    *policy.Book
	maxCall time.Duration // the PBX-wide longest call: bounds the worst case
	now     func() time.Time

	mu     sync.Mutex
	exts   map[string]*counter // guarded by mu
	trunks map[string]*counter // guarded by mu
	pbx    *counter            // guarded by mu
}

// NewKeeper returns a keeper using book's limits and rates. maxCall is
// the PBX-wide maximum call duration; now is the clock (nil: time.Now).
func NewKeeper(book *policy.Book, maxCall time.Duration, now func() time.Time) *Keeper {
	if now == nil {
		now = time.Now
	}
	return &Keeper{book: book, maxCall: maxCall, now: now,
		exts: map[string]*counter{}, trunks: map[string]*counter{}, pbx: newCounter()}
}

func get(m map[string]*counter, k string) *counter {
	c, ok := m[k]
	if !ok {
		c = newCounter()
		m[k] = c
	}
	return c
}

// prefixOf is the country code and the next three digits of an E.164
// number: a block of numbers that one operator (or one fraudster's
// premium range) holds.
func prefixOf(d chain.Destination) string {
	n := 1 + len(strconv.Itoa(d.CountryCode)) + 3
	return d.E164[:min(n, len(d.E164))]
}

// scoped is one counter with its limits, in the order they are checked.
type scoped struct {
	scope, subject string
	c              *counter
	l              policy.Limits
}

func (s scoped) name() string {
	if s.scope == ScopePBX {
		return ScopePBX
	}
	return s.scope + " " + s.subject
}

// Load rebuilds the counters from call records (oldest first is not
// required): the day's spend and the last hour's international calls.
func (k *Keeper) Load(recs []store.CDR) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	for i := len(recs) - 1; i >= 0; i-- { // records come newest first
		r := recs[i]
		if r.Direction != "outbound" || r.DestKind == string(chain.KindEmergency) || r.SentNumber == "" {
			continue // not a call the gate let out: it cost and counts nothing
		}
		for _, c := range []*counter{get(k.exts, r.Caller), get(k.trunks, r.Trunk), k.pbx} {
			c.roll(now)
			if r.Started.Format("2006-01-02") == c.day {
				c.spent += r.Cost
			}
			if r.DestKind != string(chain.KindInternational) || !r.Started.After(now.Add(-time.Hour)) {
				continue
			}
			c.intl = append(c.intl, r.Started)
			c.dests[r.DestE164] = r.Started
		}
	}
}

type hold struct {
	k       *Keeper
	cs      []*counter
	reserve int64
	rate    int64
	once    sync.Once
}

// Settle implements chain.Hold.
func (h *hold) Settle(answered time.Duration) int64 {
	cost := policy.Cost(h.rate, answered)
	h.once.Do(func() {
		h.k.mu.Lock()
		defer h.k.mu.Unlock()
		now := h.k.now()
		for _, c := range h.cs {
			c.roll(now)
			c.active--
			c.reserved -= h.reserve
			c.spent += cost
		}
	})
	return cost
}

// Decision is what Reserve decided.
type Decision struct {
	Verdict chain.Verdict
	Breach  *Breach // set when a limit was breached (not for capacity)
}

// Reserve counts an attempt that the gate let through. For an outbound
// call it either refuses it (with the breach, if it was one) or takes a
// hold and sets a.Hold and a.MaxDuration.
func (k *Keeper) Reserve(a *chain.Attempt) Decision {
	if a.Direction() != "outbound" || a.Dest.Kind == chain.KindEmergency {
		return Decision{Verdict: chain.Pass("limits: not counted")}
	}
	sn := k.book.Current()
	if sn == nil {
		return Decision{Verdict: chain.Deny(500, "limits: no policy loaded")}
	}
	intl := a.Dest.Kind == chain.KindInternational
	rate, ratePrefix := sn.Rates.Lookup(a.Dest.E164)
	trunk := a.Targets[0].Trunk

	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	ext := get(k.exts, a.Caller)
	if ext.tripped != "" && a.Unlocked.After(ext.trippedAt) {
		// A person unlocked the extension: start it afresh.
		ext = newCounter()
		k.exts[a.Caller] = ext
	}
	if k.pbx.tripped != "" && sn.Freeze.Unfrozen.After(k.pbx.trippedAt) {
		k.pbx.tripped = ""
		k.pbx.intl, k.pbx.dests, k.pbx.run = nil, map[string]time.Time{}, 0
		for _, t := range k.trunks {
			t.intl, t.dests, t.run = nil, map[string]time.Time{}, 0
		}
	}
	scopes := []scoped{
		{ScopeExtension, a.Caller, ext, a.Profile.Limits},
		{ScopeTrunk, trunk, get(k.trunks, trunk), sn.Scope(store.TrunkScope(trunk))},
		{ScopePBX, "pbx", k.pbx, sn.Scope(store.ScopePBX)},
	}
	for _, s := range scopes {
		s.c.roll(now)
	}
	if ext.tripped != "" {
		return Decision{Verdict: chain.Deny(403, "limits: extension "+a.Caller+" suspended: "+ext.tripped)}
	}
	if intl && k.pbx.tripped != "" {
		return Decision{Verdict: chain.Deny(403, "limits: international calls frozen: "+k.pbx.tripped)}
	}

	// The longest this call may last: the PBX's and the profile's limit,
	// then whatever each daily budget still pays for.
	maxDur := k.maxCall
	if d := a.Profile.MaxDuration; d > 0 && (maxDur <= 0 || d < maxDur) {
		maxDur = d
	}
	prefix := ""
	if intl {
		prefix = prefixOf(a.Dest)
	}
	for _, s := range scopes {
		l, c := s.l, s.c
		var limit, detail string
		switch {
		case l.MaxCalls > 0 && c.active+1 > l.MaxCalls:
			if s.scope != ScopeExtension {
				// Capacity, not fraud: the office is busy. Refuse, but
				// freeze nothing.
				return Decision{Verdict: chain.Deny(503, fmt.Sprintf("limits: %s has %d calls in progress (max-calls %d)", s.name(), c.active, l.MaxCalls))}
			}
			limit, detail = "max-calls", fmt.Sprintf("%d calls in progress, limit %d", c.active, l.MaxCalls)
		case intl && l.IntlPerMinute > 0 && c.lastMinute(now)+1 > l.IntlPerMinute:
			limit, detail = "intl-per-minute", fmt.Sprintf("%d international calls in the last minute, limit %d", c.lastMinute(now), l.IntlPerMinute)
		case intl && l.IntlPerHour > 0 && len(c.intl)+1 > l.IntlPerHour:
			limit, detail = "intl-per-hour", fmt.Sprintf("%d international calls in the last hour, limit %d", len(c.intl), l.IntlPerHour)
		case intl && l.SamePrefix > 0 && c.prefix == prefix && c.run+1 > l.SamePrefix:
			limit, detail = "same-prefix", fmt.Sprintf("%d calls in a row to %s, limit %d", c.run, prefix, l.SamePrefix)
		case intl && l.DistinctPerHour > 0 && !hasKey(c.dests, a.Dest.E164) && len(c.dests)+1 > l.DistinctPerHour:
			limit, detail = "distinct-per-hour", fmt.Sprintf("%d different numbers abroad in the last hour, limit %d", len(c.dests), l.DistinctPerHour)
		case l.DailySpend > 0 && rate > 0 && policy.Affordable(rate, l.DailySpend-c.spent) < time.Minute:
			limit, detail = "daily-spend", fmt.Sprintf("spent %d of %d today; %s costs %d a minute", c.spent, l.DailySpend, ratePrefix, rate)
		case l.DailySpend > 0 && rate > 0 && policy.Affordable(rate, l.DailySpend-c.spent-c.reserved) < time.Minute:
			// The budget is not spent, only held by calls in progress:
			// refuse this one, suspend nobody.
			return Decision{Verdict: chain.Deny(403, fmt.Sprintf("limits: %s: the rest of today's budget (%d) is reserved by calls in progress",
				s.name(), l.DailySpend-c.spent))}
		default:
			if l.DailySpend > 0 {
				maxDur = min(maxDur, policy.Affordable(rate, l.DailySpend-c.spent-c.reserved))
			}
			continue
		}
		b := &Breach{Scope: s.scope, Subject: s.subject, Limit: limit, Detail: detail}
		if s.scope == ScopeExtension {
			ext.tripped, ext.trippedAt = b.String(), now
		} else {
			k.pbx.tripped, k.pbx.trippedAt = b.String(), now
		}
		return Decision{Verdict: chain.Deny(403, "limits: "+b.String()), Breach: b}
	}

	reserve := policy.Cost(rate, maxDur)
	h := &hold{k: k, reserve: reserve, rate: rate}
	for _, s := range scopes {
		c := s.c
		c.active++
		c.reserved += reserve
		if intl {
			c.intl = append(c.intl, now)
			c.dests[a.Dest.E164] = now
			if c.prefix == prefix {
				c.run++
			} else {
				c.prefix, c.run = prefix, 1
			}
		}
		h.cs = append(h.cs, c)
	}
	a.Hold, a.MaxDuration = h, maxDur
	return Decision{Verdict: chain.Pass(fmt.Sprintf("limits: reserved %d (%s at %d a minute) for at most %s", reserve, ratePrefix, rate, maxDur))}
}

func hasKey(m map[string]time.Time, k string) bool { _, ok := m[k]; return ok }

// Evidence reports whether the evidence log is being written.
// *audit.Recorder satisfies it.
type Evidence interface{ Healthy() bool }

// Stage is the limits stage of the call chain.
type Stage struct {
	Keeper   *Keeper
	Actions  Actions
	Evidence Evidence // nil: not checked
}

// Name implements chain.Stage.
func (Stage) Name() string { return "limits" }

// Run implements chain.Stage.
func (s Stage) Run(ctx context.Context, a *chain.Attempt) chain.Verdict {
	if s.Evidence != nil && !s.Evidence.Healthy() && a.Direction() == "outbound" && a.Dest.Kind != chain.KindEmergency {
		// Fail closed: while nothing can be written down, no call that
		// costs money is placed. Internal and emergency calls go on.
		return chain.Deny(503, "limits: the evidence log cannot be written; outside calls refused until it can")
	}
	d := s.Keeper.Reserve(a)
	if d.Breach != nil && s.Actions != nil {
		var err error
		if d.Breach.Scope == ScopeExtension {
			err = s.Actions.Suspend(ctx, d.Breach.Subject, *d.Breach)
		} else {
			err = s.Actions.FreezeIntl(ctx, *d.Breach)
		}
		if err != nil {
			// The keeper already holds the subject tripped in memory:
			// the door stays shut even though the record failed.
			d.Verdict.Reason += "; recording the breach failed: " + err.Error()
		}
	}
	return d.Verdict
}
