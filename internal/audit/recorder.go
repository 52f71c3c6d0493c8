package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// Event types. Aggregated types collapse per (type, source, target) inside
// the window; the others are always records of their own.
const (
	AuthFailure   = "auth-failure"   // aggregated; target empty, samples are user names
	PolicyDenial  = "policy-denial"  // aggregated; source the caller, target the destination
	Ban           = "ban"            // a ban starting
	Unban         = "unban"          // a ban lifted by a person
	NewSource     = "new-source"     // an extension registered from a new address
	Suspension    = "suspension"     // an extension suspended
	Unlock        = "unlock"         // a suspension lifted
	Freeze        = "freeze"         // calls abroad frozen PBX-wide
	Unfreeze      = "unfreeze"       // a freeze lifted
	CallAbroad    = "call-abroad"    // an international call let out
	ConfigChange  = "config-change"  // who, what, before, after
	AuditFailure  = "audit-failure"  // the log could not be written for a while
	ExportFailure = "export-failure" // an off-box copy failed
	Summary       = "summary"        // a day's count of one type, kept when its records are pruned
	Dropped       = "dropped"        // aggregated; packets the door dropped unread, per source and why
	Prune         = "prune"          // records removed for age or size, and why
	BundleApplied = "bundle-applied" // a policy bundle from the vendor's centre put in force
	BundleRefused = "bundle-refused" // a bundle refused: bad signature, stale, invalid
	// A maintenance session from the vendor's centre: opened (with the
	// operator the centre's signed grant names), closed, or declined.
	MaintenanceOpen     = "maintenance-open"
	MaintenanceClose    = "maintenance-close"
	MaintenanceDeclined = "maintenance-declined"
)

// Event is one thing that happened.
type Event struct {
	Type   string
	Source string // who did it: an address, an extension, "cli"
	Target string // what it was done to
	At     time.Time
	Detail string // for an aggregate, the first occurrence's detail
	Sample string // for an aggregate, kept if among the first distinct ones
}

// Config tunes a Recorder. Zero values take the defaults.
type Config struct {
	Window          time.Duration // aggregation window; 60 s
	MaxOpen         int           // aggregates open at once; 10,000
	Samples         int           // distinct samples kept per aggregate; 5
	FlushEvery      time.Duration // write interval; 250 ms
	CheckpointEvery time.Duration // sign a checkpoint at least this often when the log grew; 1 min
}

// Store is where records go. *store.Store satisfies it.
type Store interface {
	AppendAudit(ctx context.Context, recs []store.AuditRecord, chain store.ChainFunc) ([]store.AuditRecord, error)
	PutAuditCheckpoint(ctx context.Context, c store.AuditCheckpoint) error
}

// Alerter raises alerts. *alert.Notifier satisfies it.
type Alerter interface {
	Raise(ctx context.Context, kind, subject, detail string) error
}

type aggKey struct{ typ, source, target string }

type agg struct {
	first, last time.Time
	count       int64
	detail      string
	samples     []string
}

// Recorder aggregates events and writes them to the evidence log. Safe
// for concurrent use. Run must be running for records to reach the store.
type Recorder struct {
	cfg   Config
	st    Store
	key   ed25519.PrivateKey
	alert Alerter
	log   *slog.Logger

	mu       sync.Mutex
	open     map[aggKey]*agg     // guarded by mu
	overflow map[string]*agg     // per type, when open is full; guarded by mu
	queue    []store.AuditRecord // ready to write, in order; guarded by mu

	healthy atomic.Bool

	wmu      sync.Mutex // one writer at a time (Run, Flush, Prune)
	lastHash []byte     // of the last record written; guarded by wmu
	size     int64      // records in the log; guarded by wmu
	signed   int64      // size at the last checkpoint; guarded by wmu
}

// New returns a Recorder on st signing with key.
func New(cfg Config, st Store, key ed25519.PrivateKey, alerts Alerter, log *slog.Logger) *Recorder {
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.MaxOpen <= 0 {
		cfg.MaxOpen = 10_000
	}
	if cfg.Samples <= 0 {
		cfg.Samples = 5
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 250 * time.Millisecond
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = time.Minute
	}
	r := &Recorder{cfg: cfg, st: st, key: key, alert: alerts, log: log, open: map[aggKey]*agg{}, overflow: map[string]*agg{}}
	r.healthy.Store(true)
	return r
}

// Healthy reports whether the log is being written. While it is not, the
// PBX places no new outside calls (fail closed: a call nobody can account
// for is a call not made).
func (r *Recorder) Healthy() bool { return r.healthy.Load() }

// Note counts an event into its aggregate.
func (r *Recorder) Note(e Event) { r.Add(e, 1) }

// Add counts n events alike into their aggregate.
func (r *Recorder) Add(e Event, n int64) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	k := aggKey{e.Type, e.Source, e.Target}
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.open[k]
	if a == nil {
		if len(r.open) >= r.cfg.MaxOpen {
			// Bounded memory under a flood from very many sources: the
			// rest of the window is counted per type, still exactly.
			a = r.overflow[e.Type]
			if a == nil {
				a = &agg{first: e.At, detail: "more sources than aggregates can be kept apart"}
				r.overflow[e.Type] = a
			}
		} else {
			a = &agg{first: e.At, detail: e.Detail}
			r.open[k] = a
		}
	}
	a.count += n
	a.last = e.At
	if e.Sample != "" && len(a.samples) < r.cfg.Samples {
		seen := false
		for _, s := range a.samples {
			seen = seen || s == e.Sample
		}
		if !seen {
			a.samples = append(a.samples, e.Sample)
		}
	}
}

// Record queues an event as a record of its own.
func (r *Recorder) Record(e Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	r.mu.Lock()
	r.queue = append(r.queue, store.AuditRecord{Type: e.Type, Source: e.Source, Target: e.Target, Count: 1,
		First: e.At, Last: e.At, Detail: e.Detail})
	r.mu.Unlock()
}

func (a *agg) record(k aggKey) store.AuditRecord {
	d := a.detail
	if len(a.samples) > 0 {
		b, _ := json.Marshal(struct {
			Detail  string   `json:"detail,omitempty"`
			Samples []string `json:"samples"`
		}{a.detail, a.samples})
		d = string(b)
	}
	return store.AuditRecord{Type: k.typ, Source: k.source, Target: k.target, Count: a.count, First: a.first, Last: a.last, Detail: d}
}

// close moves aggregates whose window has passed (all, if every) to the
// queue. Called with mu held.
func (r *Recorder) close(now time.Time, every bool) {
	for k, a := range r.open {
		if every || now.Sub(a.first) >= r.cfg.Window {
			r.queue = append(r.queue, a.record(k))
			delete(r.open, k)
		}
	}
	for typ, a := range r.overflow {
		if every || now.Sub(a.first) >= r.cfg.Window {
			r.queue = append(r.queue, a.record(aggKey{typ: typ, source: "*"}))
			delete(r.overflow, typ)
		}
	}
}

// Run writes records until ctx ends; then Flush.
func (r *Recorder) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.FlushEvery)
	defer t.Stop()
	lastSign := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.mu.Lock()
			r.close(now, false)
			r.mu.Unlock()
			r.write(ctx)
			if now.Sub(lastSign) >= r.cfg.CheckpointEvery {
				r.checkpoint(ctx, now)
				lastSign = now
			}
		}
	}
}

// Flush writes everything open and queued and signs a checkpoint. It
// returns how many records could not be written.
func (r *Recorder) Flush(ctx context.Context) int {
	r.mu.Lock()
	r.close(time.Now(), true)
	r.mu.Unlock()
	for {
		if r.write(ctx) {
			break
		}
		select {
		case <-ctx.Done():
			r.mu.Lock()
			defer r.mu.Unlock()
			return len(r.queue)
		case <-time.After(200 * time.Millisecond):
		}
	}
	r.checkpoint(ctx, time.Now())
	return 0
}

// write appends the queue; it reports whether the queue is empty after.
func (r *Recorder) write(ctx context.Context) bool {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.Lock()
	batch := r.queue
	r.mu.Unlock()
	if len(batch) == 0 {
		return true
	}
	now := time.Now()
	for i := range batch {
		batch[i].At = now
	}
	stored, err := r.st.AppendAudit(ctx, batch, Hash)
	if err != nil {
		if r.healthy.Swap(false) {
			r.log.Error("audit: the evidence log cannot be written; outside calls are refused until it can", "err", err, "pending", len(batch))
			if r.alert != nil {
				r.alert.Raise(ctx, "audit-failure", "evidence log", "cannot write the evidence log: "+err.Error()+"; new outside calls are refused until it recovers")
			}
		}
		return false
	}
	r.mu.Lock()
	r.queue = r.queue[len(batch):]
	empty := len(r.queue) == 0
	r.mu.Unlock()
	last := stored[len(stored)-1]
	r.lastHash, r.size = last.Hash, last.Seq
	if !r.healthy.Swap(true) {
		r.log.Warn("audit: the evidence log is written again")
		r.Record(Event{Type: AuditFailure, Source: "pbx", Detail: "the evidence log could not be written for a while; nothing was lost (records were held in memory)"})
	}
	return empty
}

func (r *Recorder) checkpoint(ctx context.Context, now time.Time) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.size <= r.signed {
		return
	}
	c := Sign(r.key, r.size, r.lastHash, now)
	if err := r.st.PutAuditCheckpoint(ctx, c); err != nil {
		r.log.Error("audit: could not store a checkpoint", "err", err)
		return
	}
	r.signed = r.size
}

// PruneStore is what Prune needs. *store.Store satisfies it.
type PruneStore interface {
	AuditPruneCandidate(ctx context.Context, cutoff time.Time, keepNewest int64) (int64, error)
	AuditSize(ctx context.Context) (int64, int64, error)
	SummarizeAudit(ctx context.Context, upto int64) ([]store.AuditSummary, error)
	PruneAudit(ctx context.Context, upto int64) error
}

// Prune removes records older than keep, or the oldest fifth while the
// log is over maxBytes. Before anything goes, a summary record per day and
// type and a prune record saying what was removed and why are written:
// every gap is explained, and the rest still verifies (from the anchor).
// It reports how many records it removed.
func (r *Recorder) Prune(ctx context.Context, st PruneStore, keep time.Duration, maxBytes int64) (int64, error) {
	upto, err := st.AuditPruneCandidate(ctx, time.Now().Add(-keep), 0)
	if err != nil {
		return 0, err
	}
	why := "older than " + keep.String()
	if n, bytes, err := st.AuditSize(ctx); err != nil {
		return 0, err
	} else if maxBytes > 0 && bytes > maxBytes {
		bySize, err := st.AuditPruneCandidate(ctx, time.Now().Add(time.Hour), n-n*4/5)
		if err != nil {
			return 0, err
		}
		if bySize > upto {
			upto, why = bySize, fmt.Sprintf("the log holds %d bytes, over %d", bytes, maxBytes)
		}
	}
	if upto <= 0 {
		return 0, nil
	}
	sums, err := st.SummarizeAudit(ctx, upto)
	if err != nil {
		return 0, err
	}
	for _, s := range sums {
		r.Record(Event{Type: Summary, Source: "pbx", Target: s.Day + " " + s.Type,
			Detail: fmt.Sprintf("%d %s events on %s (UTC), from %d records pruned", s.Count, s.Type, s.Day, s.Rows)})
	}
	r.Record(Event{Type: Prune, Source: "pbx", Target: fmt.Sprintf("records up to %d", upto),
		Detail: "removed: " + why + "; daily summaries kept"})
	if !r.write(ctx) {
		return 0, errors.New("audit: prune: the summaries could not be written; nothing removed")
	}
	if err := st.PruneAudit(ctx, upto); err != nil {
		return 0, err
	}
	return upto, nil
}
