package limits

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/dialplan"
	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/store"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time                 { return c.t }
func (c *clock) add(d time.Duration)            { c.t = c.t.Add(d) }
func newClock() *clock                          { return &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.Local)} }
func unlimited(p policy.Profile) policy.Profile { p.Limits = policy.Limits{}; return p }

var plan = dialplan.New("JP")

// attempt is an outbound call from ext to dial through trunk "carrier".
func attempt(ext, dial string, prof policy.Profile) *chain.Attempt {
	d := plan.Canonical(dial)
	return &chain.Attempt{Caller: ext, Dest: d, Profile: prof,
		Targets: []chain.Target{{Trunk: "carrier", Number: d.Number}}}
}

func book(pbx policy.Limits, rates []policy.Rate, f policy.Freeze) *policy.Book {
	return policy.Static(nil, map[string]policy.Limits{store.ScopePBX: pbx}, rates, f)
}

func abroad(l policy.Limits) policy.Profile {
	p := policy.Default()
	p.Class, p.Countries, p.Limits = policy.ClassInternational, "SL", l
	return p
}

func mustPass(t *testing.T, k *Keeper, a *chain.Attempt) chain.Hold {
	t.Helper()
	d := k.Reserve(a)
	if d.Verdict.Action != chain.Continue || d.Breach != nil {
		t.Fatalf("%s -> %s refused: %q", a.Caller, a.Dest.Number, d.Verdict.Reason)
	}
	return a.Hold
}

func mustBreach(t *testing.T, k *Keeper, a *chain.Attempt, scope, limit string) {
	t.Helper()
	d := k.Reserve(a)
	if d.Verdict.Action == chain.Continue || d.Breach == nil || d.Breach.Scope != scope || d.Breach.Limit != limit {
		t.Fatalf("%s -> %s: %+v %+v, want a %s breach of %s", a.Caller, a.Dest.Number, d.Verdict, d.Breach, scope, limit)
	}
	if a.Hold != nil {
		t.Fatal("a refused attempt holds a reservation")
	}
}

// TestExtensionSuspendedUntilUnlock: the incident's pattern (calls to
// Sierra Leone, one after another) trips the per-minute limit; the
// extension then stays refused, even when the window has slid, until a
// person unlocks it.
func TestExtensionSuspendedUntilUnlock(t *testing.T) {
	c := newClock()
	k := NewKeeper(book(policy.Limits{}, nil, policy.Freeze{}), 3*time.Hour, c.now)
	p := abroad(policy.Limits{IntlPerMinute: 2})
	for range 2 {
		mustPass(t, k, attempt("201", "+23276123456", p)).Settle(30 * time.Second)
		c.add(time.Second)
	}
	mustBreach(t, k, attempt("201", "+23276123456", p), ScopeExtension, "intl-per-minute")
	c.add(time.Hour)
	d := k.Reserve(attempt("201", "00312345678", p))
	if d.Verdict.Action == chain.Continue || !strings.Contains(d.Verdict.Reason, "suspended") {
		t.Fatalf("after the window slid, a suspended extension placed a call: %+v", d.Verdict)
	}
	mustPass(t, k, attempt("202", "+23276123456", p)) // others are not affected
	a := attempt("201", "+23276123456", p)
	a.Unlocked = c.now()
	mustPass(t, k, a)
	// Emergency numbers are never counted or refused.
	for range 10 {
		if d := k.Reserve(attempt("203", "110", policy.Profile{})); d.Verdict.Action != chain.Continue || d.Breach != nil {
			t.Fatal("emergency refused")
		}
	}
}

// TestEachLimit: every limit of an extension trips on the call that would
// exceed it, and not before.
func TestEachLimit(t *testing.T) {
	for _, tt := range []struct {
		limit  string
		l      policy.Limits
		allow  int
		dials  func(i int) string
		settle bool
	}{
		{"max-calls", policy.Limits{MaxCalls: 2}, 2, func(int) string { return "00312345678" }, false},
		{"intl-per-hour", policy.Limits{IntlPerHour: 3}, 3, func(int) string { return "+23276123456" }, true},
		{"same-prefix", policy.Limits{SamePrefix: 4}, 4, func(i int) string { return "+2327612345" + string(rune('0'+i)) }, true},
		{"distinct-per-hour", policy.Limits{DistinctPerHour: 3}, 3, func(i int) string { return []string{"+23276123456", "+12025550123", "+12025550124", "+12025550125"}[i] }, true},
	} {
		t.Run(tt.limit, func(t *testing.T) {
			c := newClock()
			k := NewKeeper(book(policy.Limits{}, nil, policy.Freeze{}), 3*time.Hour, c.now)
			p := abroad(tt.l)
			p.Countries = "SL,US"
			for i := range tt.allow {
				h := mustPass(t, k, attempt("201", tt.dials(i), p))
				if tt.settle {
					h.Settle(10 * time.Second)
				}
				c.add(2 * time.Minute)
			}
			mustBreach(t, k, attempt("201", tt.dials(tt.allow), p), ScopeExtension, tt.limit)
		})
	}
}

// TestSamePrefixRunResets: calls in a row to one prefix count only while
// no other prefix is called.
func TestSamePrefixRunResets(t *testing.T) {
	c := newClock()
	k := NewKeeper(book(policy.Limits{}, nil, policy.Freeze{}), 3*time.Hour, c.now)
	p := abroad(policy.Limits{SamePrefix: 2})
	p.Countries = "SL,US"
	for _, d := range []string{"+23276123456", "+23276123457", "+12025550123", "+23276123458", "+23276123459"} {
		mustPass(t, k, attempt("201", d, p)).Settle(0)
	}
	mustBreach(t, k, attempt("201", "+23276123450", p), ScopeExtension, "same-prefix")
}

// TestDailySpend: the worst case is reserved at start, so parallel calls
// cannot together overrun the cap; the call is cut to what the budget
// pays for; the settled cost frees the rest of the reservation.
func TestDailySpend(t *testing.T) {
	c := newClock()
	rates := []policy.Rate{{Prefix: "+", PerMinute: 300}, {Prefix: "+232", PerMinute: 250}}
	k := NewKeeper(book(policy.Limits{}, rates, policy.Freeze{}), 3*time.Hour, c.now)
	p := abroad(policy.Limits{DailySpend: 1000})
	a := attempt("201", "+23276123456", p)
	h := mustPass(t, k, a)
	if a.MaxDuration != 4*time.Minute {
		t.Fatalf("max duration %s, want 4m (1000 at 250 a minute)", a.MaxDuration)
	}
	// The budget is held, not spent: refused, but no breach.
	if d := k.Reserve(attempt("201", "+23276123456", p)); d.Verdict.Action == chain.Continue || d.Breach != nil {
		t.Fatalf("second call while the first holds the budget: %+v %+v", d.Verdict, d.Breach)
	}
	h.Settle(4 * time.Minute) // the first call used all of it
	mustBreach(t, k, attempt("201", "+23276123456", p), ScopeExtension, "daily-spend")

	c2 := newClock()
	k = NewKeeper(book(policy.Limits{}, rates, policy.Freeze{}), 3*time.Hour, c2.now)
	h = mustPass(t, k, attempt("201", "+23276123456", p))
	if cost := h.Settle(61 * time.Second); cost != 255 { // 61 s at 250 a minute, rounded up
		t.Fatalf("cost %d, want 255", cost)
	}
	if again := h.Settle(time.Hour); again != policy.Cost(250, time.Hour) {
		t.Fatalf("second settle computed %d", again)
	}
	a = attempt("201", "+23276123456", p)
	mustPass(t, k, a)
	if want := policy.Affordable(250, 1000-255); a.MaxDuration != want {
		t.Fatalf("after spending 255, max duration %s, want %s", a.MaxDuration, want)
	}
	// The next day starts from zero spend.
	c2.add(24 * time.Hour)
	a.Hold.Settle(0)
	mustPass(t, k, attempt("201", "+23276123456", p))
}

// TestPBXFreeze: a PBX-wide breach freezes calls abroad for everyone
// (domestic calls go on) until the freeze is lifted.
func TestPBXFreeze(t *testing.T) {
	c := newClock()
	f := &policy.Freeze{}
	src := &mutableSource{pbx: policy.Limits{IntlPerHour: 2}, f: f}
	b := policy.NewBook(src)
	b.Reload(context.Background())
	k := NewKeeper(b, 3*time.Hour, c.now)
	p := abroad(policy.Limits{})
	mustPass(t, k, attempt("201", "+23276123456", p)).Settle(0)
	mustPass(t, k, attempt("202", "+23276123456", p)).Settle(0)
	mustBreach(t, k, attempt("203", "+23276123456", p), ScopePBX, "intl-per-hour")
	if d := k.Reserve(attempt("204", "+23276123456", p)); d.Verdict.Action == chain.Continue {
		t.Fatal("international call placed while frozen")
	}
	mustPass(t, k, attempt("204", "00312345678", p)).Settle(0)
	c.add(time.Minute)
	src.mu.Lock()
	f.Unfrozen = c.now()
	src.mu.Unlock()
	b.Reload(context.Background())
	mustPass(t, k, attempt("204", "+23276123456", p))
}

// TestCapacityIsNotABreach: a full trunk refuses with 503 and freezes
// nothing.
func TestCapacityIsNotABreach(t *testing.T) {
	c := newClock()
	k := NewKeeper(book(policy.Limits{MaxCalls: 1}, nil, policy.Freeze{}), 3*time.Hour, c.now)
	p := unlimited(policy.Default())
	h := mustPass(t, k, attempt("201", "00312345678", p))
	d := k.Reserve(attempt("202", "00312345678", p))
	if d.Verdict.Status != 503 || d.Breach != nil {
		t.Fatalf("full PBX: %+v %+v", d.Verdict, d.Breach)
	}
	h.Settle(0)
	mustPass(t, k, attempt("202", "00312345678", p))
}

// TestLoadFromRecords: a restart does not reset the counters.
func TestLoadFromRecords(t *testing.T) {
	c := newClock()
	k := NewKeeper(book(policy.Limits{}, nil, policy.Freeze{}), 3*time.Hour, c.now)
	var recs []store.CDR
	for i := range 3 {
		recs = append(recs, store.CDR{Direction: "outbound", Caller: "201", Trunk: "carrier", SentNumber: "+23276123456",
			DestKind: "international", DestE164: "+23276123456", Started: c.now().Add(-time.Duration(i+1) * time.Minute), Cost: 100})
	}
	recs = append(recs, store.CDR{Direction: "outbound", Caller: "201", DestKind: "international", DestE164: "+23276123456",
		Started: c.now().Add(-time.Minute)}) // refused: never sent, counts nothing
	k.Load(recs)
	p := abroad(policy.Limits{IntlPerHour: 4, DailySpend: 1000})
	mustPass(t, k, attempt("201", "+23276123456", p)).Settle(0)
	mustBreach(t, k, attempt("201", "+23276123456", p), ScopeExtension, "intl-per-hour")
}

type mutableSource struct {
	mu  sync.Mutex
	pbx policy.Limits
	f   *policy.Freeze
}

func (m *mutableSource) Profiles(context.Context) ([]policy.Profile, error) { return nil, nil }
func (m *mutableSource) ScopeLimits(context.Context) (map[string]policy.Limits, error) {
	return map[string]policy.Limits{store.ScopePBX: m.pbx}, nil
}
func (m *mutableSource) Rates(context.Context) ([]policy.Rate, error) { return nil, nil }
func (m *mutableSource) IntlFreeze(context.Context) (policy.Freeze, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return *m.f, nil
}

type actions struct {
	suspended []string
	frozen    int
}

func (a *actions) Suspend(_ context.Context, ext string, _ Breach) error {
	a.suspended = append(a.suspended, ext)
	return nil
}
func (a *actions) FreezeIntl(context.Context, Breach) error { a.frozen++; return nil }

// TestStageActs: the stage hands a breach to the PBX to suspend or freeze.
func TestStageActs(t *testing.T) {
	c := newClock()
	k := NewKeeper(book(policy.Limits{IntlPerHour: 3}, nil, policy.Freeze{}), 3*time.Hour, c.now)
	act := &actions{}
	st := Stage{Keeper: k, Actions: act}
	p := abroad(policy.Limits{IntlPerMinute: 1})
	st.Run(context.Background(), attempt("201", "+23276123456", p))
	if v := st.Run(context.Background(), attempt("201", "+23276123456", p)); v.Status != 403 || len(act.suspended) != 1 || act.suspended[0] != "201" {
		t.Fatalf("extension breach: %+v, suspended %v", v, act.suspended)
	}
	st.Run(context.Background(), attempt("202", "+23276123456", p))
	st.Run(context.Background(), attempt("203", "+23276123456", p))
	if v := st.Run(context.Background(), attempt("204", "+23276123456", p)); v.Status != 403 || act.frozen != 1 {
		t.Fatalf("PBX breach: %+v, frozen %d", v, act.frozen)
	}
}

// BenchmarkReserve measures the limits stage for an outbound call, the
// hot path every call out takes.
func BenchmarkReserve(b *testing.B) {
	k := NewKeeper(book(policy.DefaultPBXLimits(), policy.DefaultRates(), policy.Freeze{}), 3*time.Hour, nil)
	p := unlimited(policy.Default())
	proto := attempt("201", "00312345678", p)
	b.ReportAllocs()
	for b.Loop() {
		a := &chain.Attempt{Caller: proto.Caller, Dest: proto.Dest, Profile: p, Targets: proto.Targets}
		if d := k.Reserve(a); a.Hold == nil {
			b.Fatal(d.Verdict.Reason)
		}
		a.Hold.Settle(0) // unanswered: no spend, so the loop never hits the cap
	}
}

type evidence bool

func (e evidence) Healthy() bool { return bool(e) }

// TestNoEvidenceNoOutsideCalls: while the evidence log cannot be written,
// outside calls are refused; emergency and internal calls go on.
func TestNoEvidenceNoOutsideCalls(t *testing.T) {
	k := NewKeeper(book(policy.Limits{}, nil, policy.Freeze{}), 3*time.Hour, nil)
	st := Stage{Keeper: k, Evidence: evidence(false)}
	p := unlimited(policy.Default())
	if v := st.Run(context.Background(), attempt("201", "00312345678", p)); v.Status != 503 {
		t.Fatalf("outside call with no evidence log: %+v", v)
	}
	if v := st.Run(context.Background(), attempt("201", "110", p)); v.Action != chain.Continue {
		t.Fatalf("emergency call refused: %+v", v)
	}
	internal := &chain.Attempt{Caller: "201", Dest: plan.Canonical("202"), Targets: []chain.Target{{Extension: "202"}}}
	if v := st.Run(context.Background(), internal); v.Action != chain.Continue {
		t.Fatalf("internal call refused: %+v", v)
	}
}
