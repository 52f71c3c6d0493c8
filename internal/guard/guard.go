// Package guard is sekisho's door: it decides, before anything else looks
// at a request, whether its source may talk to the PBX at all. It keeps
// the ban list (persistent, growing for repeat offenders), counts failed
// authentications per source and per account, rate-limits each source
// with token buckets that cost bounded memory even under a spoofed flood,
// and recognises scanners by their User-Agent.
//
// The hot path (Admit) is a lock-free ban lookup and one bucket update
// under a sharded lock; everything that writes to the store happens only
// when a ban starts or ends.
package guard

import (
	"context"
	_ "embed"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// Config tunes the guard. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// BanAfter failed authentications from one source within Window ban
	// it. Brute force (svcrack) is stopped long before a dictionary
	// reaches a real password.
	BanAfter int
	Window   time.Duration
	// BanTime is the first ban; each further offence doubles it, up to
	// MaxBan: a scanner that comes back stays out longer each time.
	BanTime time.Duration
	MaxBan  time.Duration
	// AccountSources failing sources on one account within Window raise
	// an alert: a distributed guess at one password. The account itself
	// is not locked, so its phone keeps working from its own address.
	AccountSources int
	// Rate and Burst bound the requests a second one source may send;
	// trunk peers get TrunkRate and TrunkBurst: higher, never unlimited,
	// because a spoofed carrier address must not bypass the door.
	Rate, Burst           float64
	TrunkRate, TrunkBurst float64
	// MaxSources bounds the sources tracked for rate and failures. Past
	// it, new sources share one bucket, so a flood from spoofed addresses
	// is throttled as a whole and cannot grow memory.
	MaxSources int
	// ScannerBan bans a source on its first request from a known scanner.
	ScannerBan bool
	// OnBan is told of every ban that starts, for the evidence log.
	OnBan func(store.Ban)
}

// DefaultConfig is what sekisho runs with unless told otherwise.
func DefaultConfig() Config {
	return Config{
		BanAfter: 10, Window: 10 * time.Minute, BanTime: 15 * time.Minute, MaxBan: 30 * 24 * time.Hour,
		AccountSources: 5, Rate: 50, Burst: 200, TrunkRate: 2000, TrunkBurst: 4000,
		MaxSources: 100_000, ScannerBan: true,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.BanAfter <= 0 {
		c.BanAfter = d.BanAfter
	}
	if c.Window <= 0 {
		c.Window = d.Window
	}
	if c.BanTime <= 0 {
		c.BanTime = d.BanTime
	}
	if c.MaxBan <= 0 {
		c.MaxBan = d.MaxBan
	}
	if c.AccountSources <= 0 {
		c.AccountSources = d.AccountSources
	}
	if c.Rate <= 0 {
		c.Rate, c.Burst = d.Rate, d.Burst
	}
	if c.Burst < 1 {
		c.Burst = max(1, c.Rate)
	}
	if c.TrunkRate <= 0 {
		c.TrunkRate, c.TrunkBurst = d.TrunkRate, d.TrunkBurst
	}
	if c.TrunkBurst < 1 {
		c.TrunkBurst = max(1, c.TrunkRate)
	}
	if c.MaxSources <= 0 {
		c.MaxSources = d.MaxSources
	}
}

// Store keeps bans. *store.Store satisfies it.
type Store interface {
	Bans(ctx context.Context) ([]store.Ban, error)
	PutBan(ctx context.Context, b store.Ban) error
}

// batchStore is a Store that can write several bans in one transaction
// (*store.Store can): under a flood, one write lock for a batch of bans
// instead of one each.
type batchStore interface {
	PutBans(ctx context.Context, bans []store.Ban) error
}

// Alerter raises alerts. *alert.Notifier satisfies it.
type Alerter interface {
	Raise(ctx context.Context, kind, subject, detail string) error
}

//go:embed scanners.txt
var defaultScanners string

// DefaultScanners is the bundled scanner list, in the file format.
func DefaultScanners() string { return defaultScanners }

// Guard is the door. Safe for concurrent use.
type Guard struct {
	cfg      Config
	st       Store
	alert    Alerter
	log      *slog.Logger
	now      func() time.Time
	isTrunk  func(netip.Addr) bool
	scanners []string

	banned atomic.Pointer[map[netip.Addr]time.Time] // address -> until; replaced, never changed

	seed   maphash.Seed
	shards [shardCount]shard

	dropMu sync.Mutex
	drops  map[DropKey]uint64 // packets dropped since the last DrainDrops; guarded by dropMu

	mu       sync.Mutex
	bans     map[netip.Addr]store.Ban            // every ban row; guarded by mu
	pending  map[netip.Addr]store.Ban            // bans not yet written to the store; guarded by mu
	wake     chan struct{}                       // a ban is pending (buffered, 1)
	accounts map[string]map[netip.Addr]time.Time // account -> failing sources; guarded by mu
	alerted  map[string]time.Time                // account -> when its alert went out; guarded by mu
	dropped  atomic.Uint64
}

const shardCount = 16

type shard struct {
	mu       sync.Mutex
	sources  map[netip.Addr]*source
	overflow bucket
}

type source struct {
	b        bucket
	fails    []time.Time // failures inside the window, oldest first
	lastSeen time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// take refills b at rate up to burst and takes one token if there is one.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if b.at.IsZero() {
		b.tokens, b.at = burst, now
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.at).Seconds()*rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// New returns a guard with the bans in st loaded. isTrunk tells trunk
// peers (nil: none); scanners is the scanner list in the file format.
func New(ctx context.Context, cfg Config, st Store, alerts Alerter, isTrunk func(netip.Addr) bool, scanners string, log *slog.Logger) (*Guard, error) {
	cfg.fill()
	if isTrunk == nil {
		isTrunk = func(netip.Addr) bool { return false }
	}
	g := &Guard{cfg: cfg, st: st, alert: alerts, log: log, now: time.Now, isTrunk: isTrunk,
		scanners: parseScanners(scanners), seed: maphash.MakeSeed(),
		drops: map[DropKey]uint64{}, bans: map[netip.Addr]store.Ban{}, pending: map[netip.Addr]store.Ban{}, wake: make(chan struct{}, 1), accounts: map[string]map[netip.Addr]time.Time{}, alerted: map[string]time.Time{}}
	for i := range g.shards {
		g.shards[i].sources = map[netip.Addr]*source{}
	}
	empty := map[netip.Addr]time.Time{}
	g.banned.Store(&empty)
	if err := g.Reload(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

// Reload reads the bans from the store (bans added or lifted with the
// CLI reach the running server this way).
func (g *Guard) Reload(ctx context.Context) error {
	rows, err := g.st.Bans(ctx)
	if err != nil {
		return fmt.Errorf("guard: load bans: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	bans := make(map[netip.Addr]store.Ban, len(rows))
	for _, b := range rows {
		a, err := netip.ParseAddr(b.Address)
		if err != nil {
			g.log.Error("guard: ignoring ban of an unparsable address", "address", b.Address)
			continue
		}
		bans[a.Unmap()] = b
	}
	// Fail closed: a ban whose store write failed is not in the rows; it
	// stays. A row in the store (an unban included) is the truth, except
	// for a ban still waiting to be written: that one is newer than any
	// row (an old, expired ban of the same source must not replace it).
	now := g.now()
	for a, b := range g.bans {
		if _, stored := bans[a]; !stored && b.Active(now) {
			bans[a] = b
		}
	}
	for a, b := range g.pending {
		bans[a] = b
	}
	g.bans = bans
	g.publish()
	return nil
}

// publish swaps in the active-ban snapshot. Called with mu held.
func (g *Guard) publish() {
	now := g.now()
	m := make(map[netip.Addr]time.Time, len(g.bans))
	for a, b := range g.bans {
		if b.Active(now) {
			m[a] = b.Until
		}
	}
	g.banned.Store(&m)
}

// Banned reports whether addr is banned now.
func (g *Guard) Banned(addr netip.Addr) bool {
	until, ok := (*g.banned.Load())[addr.Unmap()]
	return ok && g.now().Before(until)
}

// DropKey counts drops per source and why: so the evidence log can say
// how often a banned attacker kept trying, not only that it was banned.
type DropKey struct {
	Addr   netip.Addr // the zero Addr: sources beyond the tracking bound
	Banned bool       // false: over its rate
}

func (g *Guard) noteDrop(addr netip.Addr, banned bool) {
	g.dropped.Add(1)
	k := DropKey{addr, banned}
	g.dropMu.Lock()
	if _, ok := g.drops[k]; !ok && len(g.drops) >= g.cfg.MaxSources {
		k.Addr = netip.Addr{}
	}
	g.drops[k]++
	g.dropMu.Unlock()
}

// DrainDrops returns the drops counted since the last call and resets them.
func (g *Guard) DrainDrops() map[DropKey]uint64 {
	g.dropMu.Lock()
	defer g.dropMu.Unlock()
	d := g.drops
	g.drops = map[DropKey]uint64{}
	return d
}

// Admit is the first check on every packet and connection: false means
// drop it without a word (a banned source, or one over its rate).
func (g *Guard) Admit(addr netip.Addr) bool {
	addr = addr.Unmap()
	if g.Banned(addr) {
		g.noteDrop(addr, true)
		return false
	}
	rate, burst := g.cfg.Rate, g.cfg.Burst
	if g.isTrunk(addr) {
		rate, burst = g.cfg.TrunkRate, g.cfg.TrunkBurst
	}
	now := g.now()
	sh := &g.shards[maphash.Comparable(g.seed, addr)%shardCount]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	src := sh.sources[addr]
	if src == nil {
		if len(sh.sources) >= g.cfg.MaxSources/shardCount {
			g.sweep(sh, now)
		}
		if len(sh.sources) >= g.cfg.MaxSources/shardCount {
			// Flood guard: too many sources to track one by one (a
			// spoofed flood). New ones share this shard's overflow bucket.
			ok := sh.overflow.take(now, rate, burst)
			if !ok {
				g.noteDrop(netip.Addr{}, false)
			}
			return ok
		}
		src = &source{}
		sh.sources[addr] = src
	}
	src.lastSeen = now
	if !src.b.take(now, rate, burst) {
		g.noteDrop(addr, false)
		return false
	}
	return true
}

// sweep forgets sources idle long enough that their bucket is full again
// and their failures have left the window. Called with sh.mu held.
func (g *Guard) sweep(sh *shard, now time.Time) {
	idle := max(g.cfg.Window, time.Duration(g.cfg.Burst/g.cfg.Rate*float64(time.Second)))
	for a, s := range sh.sources {
		if now.Sub(s.lastSeen) > idle {
			delete(sh.sources, a)
		}
	}
}

// Dropped returns how many packets and connections Admit refused.
func (g *Guard) Dropped() uint64 { return g.dropped.Load() }

// Failure records a failed authentication from addr for account (the
// user name tried, "" if none). It bans addr when it reaches BanAfter in
// the window, and alerts once per window when one account fails from
// AccountSources different sources. It reports whether addr is now banned.
func (g *Guard) Failure(ctx context.Context, addr netip.Addr, account string) bool {
	addr = addr.Unmap()
	now := g.now()
	sh := &g.shards[maphash.Comparable(g.seed, addr)%shardCount]
	sh.mu.Lock()
	src := sh.sources[addr]
	if src == nil {
		src = &source{lastSeen: now}
		if len(sh.sources) < g.cfg.MaxSources/shardCount {
			sh.sources[addr] = src
		}
	}
	cut := 0
	for cut < len(src.fails) && now.Sub(src.fails[cut]) > g.cfg.Window {
		cut++
	}
	src.fails = append(src.fails[cut:], now)
	n := len(src.fails)
	if n >= g.cfg.BanAfter {
		src.fails = src.fails[:0]
	}
	sh.mu.Unlock()

	if account != "" {
		g.noteAccount(ctx, addr, account, now)
	}
	if n >= g.cfg.BanAfter {
		g.Ban(ctx, addr, fmt.Sprintf("%d failed authentications within %s (last as %q)", n, g.cfg.Window, account), 0, "pbx")
		return true
	}
	return false
}

func (g *Guard) noteAccount(ctx context.Context, addr netip.Addr, account string, now time.Time) {
	g.mu.Lock()
	srcs := g.accounts[account]
	if srcs == nil {
		if len(g.accounts) >= g.cfg.MaxSources {
			g.mu.Unlock()
			return // bounded: a flood of made-up user names grows nothing more
		}
		srcs = map[netip.Addr]time.Time{}
		g.accounts[account] = srcs
	}
	srcs[addr] = now
	for a, t := range srcs {
		if now.Sub(t) > g.cfg.Window {
			delete(srcs, a)
		}
	}
	n := len(srcs)
	raise := n >= g.cfg.AccountSources && now.Sub(g.alerted[account]) > g.cfg.Window
	if raise {
		g.alerted[account] = now
	}
	g.mu.Unlock()
	if raise && g.alert != nil {
		g.alert.Raise(ctx, "account-guessed", "account "+account,
			fmt.Sprintf("failed authentications for %s from %d sources within %s; the account is not locked, its sources are banned one by one", account, n, g.cfg.Window))
	}
}

// Ban bans addr for d (0: the next step of the offender's ban time) and
// stores it. by is "pbx" or "admin".
func (g *Guard) Ban(ctx context.Context, addr netip.Addr, reason string, d time.Duration, by string) store.Ban {
	addr = addr.Unmap()
	now := g.now()
	g.mu.Lock()
	prev, seen := g.bans[addr]
	if seen && prev.Active(now) && d == 0 {
		g.mu.Unlock()
		return prev // already out: one record per ban
	}
	b := store.Ban{Address: addr.String(), Reason: reason, Offences: prev.Offences + 1, Created: now, By: by}
	if d <= 0 {
		d = g.cfg.BanTime
		for i := 1; i < b.Offences && d < g.cfg.MaxBan; i++ {
			d *= 2
		}
		d = min(d, g.cfg.MaxBan)
	}
	b.Until = now.Add(d)
	g.bans[addr] = b
	g.publish()
	// The ban applies from here on, in memory. Writing it down is left to
	// Run, which batches and retries: under the flood that causes bans
	// the store may be too busy to take the write within a request's
	// time, and a ban that is dropped then would be forgotten at the next
	// restart, letting the attacker straight back in.
	g.pending[addr] = b
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
	g.log.Warn("guard: banned", "source", b.Address, "until", b.Until.UTC().Format(time.RFC3339), "offences", b.Offences, "reason", reason)
	if g.cfg.OnBan != nil {
		g.cfg.OnBan(b)
	}
	return b
}

// Retry bounds for writing bans: the first retry after retryMin, each
// next one twice as late, up to retryMax.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

// Run writes bans to the store as they start, until ctx is done: in
// batches, retrying with backoff while the store refuses, so that no ban
// is lost however busy the store is. Flush writes what is left at
// shutdown.
func (g *Guard) Run(ctx context.Context) {
	delay := time.Duration(0) // 0: wait for a ban
	fails := 0
	for {
		var t *time.Timer
		var timer <-chan time.Time
		if delay > 0 {
			t = time.NewTimer(delay)
			timer = t.C
		}
		select {
		case <-ctx.Done():
		case <-g.wake:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		n, err := g.flushOnce(ctx)
		switch {
		case err == nil:
			if fails > 0 {
				g.log.Info("guard: bans stored after retrying", "attempts", fails+1)
			}
			delay, fails = 0, 0
		case ctx.Err() != nil:
			return
		default:
			fails++
			delay = min(max(2*delay, retryMin), retryMax)
			g.log.Warn("guard: could not store bans yet; they hold in memory, retrying", "bans", n, "attempt", fails, "retry_in", delay.String(), "err", err)
		}
	}
}

// Flush writes the pending bans, retrying until ctx is done, and returns
// how many could not be written.
func (g *Guard) Flush(ctx context.Context) int {
	delay := retryMin
	for {
		n, err := g.flushOnce(ctx)
		if err == nil {
			return 0
		}
		select {
		case <-ctx.Done():
			g.log.Error("guard: bans not stored at shutdown; they are lost at this restart", "bans", n, "err", err)
			return n
		case <-time.After(delay):
		}
		delay = min(2*delay, retryMax)
	}
}

// Pending returns how many bans wait to be written.
func (g *Guard) Pending() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pending)
}

// flushOnce writes every pending ban once. A ban replaced while it was
// being written (the same source banned again) stays pending.
func (g *Guard) flushOnce(ctx context.Context) (int, error) {
	g.mu.Lock()
	batch := make([]store.Ban, 0, len(g.pending))
	for _, b := range g.pending {
		batch = append(batch, b)
	}
	g.mu.Unlock()
	if len(batch) == 0 {
		return 0, nil
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	if bs, ok := g.st.(batchStore); ok {
		err = bs.PutBans(wctx, batch)
	} else {
		for _, b := range batch {
			if err = g.st.PutBan(wctx, b); err != nil {
				break
			}
		}
	}
	if err != nil {
		return len(batch), fmt.Errorf("guard: store %d bans: %w", len(batch), err)
	}
	g.mu.Lock()
	for _, b := range batch {
		a, perr := netip.ParseAddr(b.Address)
		if perr != nil {
			continue
		}
		if cur, ok := g.pending[a]; ok && cur.Created.Equal(b.Created) && cur.Offences == b.Offences && cur.Until.Equal(b.Until) {
			delete(g.pending, a)
		}
	}
	g.mu.Unlock()
	return 0, nil
}

// Scanner reports which scanner fingerprint userAgent matches, "" if none.
func (g *Guard) Scanner(userAgent string) string {
	if !g.cfg.ScannerBan || userAgent == "" {
		return ""
	}
	return matchScanner(g.scanners, userAgent)
}
