package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

type memStore struct {
	mu   sync.Mutex
	bans map[string]store.Ban
	fail bool
}

func (m *memStore) Bans(context.Context) ([]store.Ban, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Ban
	for _, b := range m.bans {
		out = append(out, b)
	}
	return out, nil
}

func (m *memStore) PutBan(_ context.Context, b store.Ban) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("disk full")
	}
	m.bans[b.Address] = b
	return nil
}

type alerts struct{ got []string }

func (a *alerts) Raise(_ context.Context, kind, subject, _ string) error {
	a.got = append(a.got, kind+" "+subject)
	return nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newGuard(t *testing.T, cfg Config) (*Guard, *memStore, *alerts, *clock) {
	t.Helper()
	st := &memStore{bans: map[string]store.Ban{}}
	al := &alerts{}
	c := &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	trunk := netip.MustParseAddr("127.0.0.10")
	g, err := New(context.Background(), cfg, st, al, func(a netip.Addr) bool { return a == trunk }, DefaultScanners(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	g.now = c.now
	return g, st, al, c
}

var attacker = netip.MustParseAddr("127.0.0.66")

// TestBanAfterFailures: the BanAfter-th failure inside the window bans the
// source, stores the ban, and the source is dropped; a repeat offender's
// ban is twice as long; failures spread wider than the window never ban.
func TestBanAfterFailures(t *testing.T) {
	ctx := context.Background()
	g, st, _, c := newGuard(t, Config{BanAfter: 3, Window: time.Minute, BanTime: 10 * time.Minute})
	for i := range 2 {
		if g.Failure(ctx, attacker, "201") {
			t.Fatalf("banned after %d failures", i+1)
		}
	}
	if !g.Admit(attacker) {
		t.Fatal("source dropped before its ban")
	}
	if !g.Failure(ctx, attacker, "201") || g.Admit(attacker) || !g.Banned(attacker) {
		t.Fatal("third failure did not ban")
	}
	if n := g.Flush(ctx); n != 0 {
		t.Fatalf("%d bans not stored", n)
	}
	b := st.bans["127.0.0.66"]
	if b.Offences != 1 || !b.Until.Equal(c.t.Add(10*time.Minute)) {
		t.Fatalf("stored ban %+v", b)
	}
	c.t = c.t.Add(11 * time.Minute)
	if !g.Admit(attacker) {
		t.Fatal("still dropped after the ban ended")
	}
	for range 3 {
		g.Failure(ctx, attacker, "201")
	}
	g.Flush(ctx)
	if b := st.bans["127.0.0.66"]; b.Offences != 2 || !b.Until.Equal(c.t.Add(20*time.Minute)) {
		t.Fatalf("repeat offender's ban %+v, want 20 minutes", b)
	}
	slow := netip.MustParseAddr("127.0.0.67")
	for range 10 {
		g.Failure(ctx, slow, "201")
		c.t = c.t.Add(31 * time.Second) // two failures a minute
	}
	if g.Banned(slow) {
		t.Fatal("failures outside the window banned a source")
	}
}

// TestBansSurviveAndReload: bans come back from the store; an unban made
// with the CLI (the row's end moved to now) is honoured on reload; a ban
// whose store write failed holds anyway.
func TestBansSurviveAndReload(t *testing.T) {
	ctx := context.Background()
	g, st, _, c := newGuard(t, Config{})
	g.Ban(ctx, attacker, "scanner", 0, "pbx")
	g.Flush(ctx)
	g2, err := New(ctx, Config{}, st, nil, nil, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	g2.now = c.now
	g2.Reload(ctx)
	if g2.Admit(attacker) {
		t.Fatal("a ban did not survive a restart")
	}
	b := st.bans["127.0.0.66"]
	b.Until = c.t
	st.bans["127.0.0.66"] = b
	g2.Reload(ctx)
	if !g2.Admit(attacker) {
		t.Fatal("unban not honoured")
	}
	st.fail = true
	other := netip.MustParseAddr("127.0.0.68")
	g2.Ban(ctx, other, "scanner", 0, "pbx")
	g2.Reload(ctx)
	if g2.Admit(other) {
		t.Fatal("a ban that could not be stored was forgotten on reload")
	}
}

// TestRateLimit: a source gets its burst, then its rate; a trunk peer a
// higher ceiling; and a flood from many spoofed sources tracks a bounded
// number of them and shares one bucket per shard beyond that.
func TestRateLimit(t *testing.T) {
	g, _, _, c := newGuard(t, Config{Rate: 10, Burst: 10, TrunkRate: 100, TrunkBurst: 100, MaxSources: 32})
	phone := netip.MustParseAddr("127.0.0.3")
	n := 0
	for range 50 {
		if g.Admit(phone) {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("admitted %d of a burst of 50, want 10", n)
	}
	c.t = c.t.Add(time.Second)
	if !g.Admit(phone) {
		t.Fatal("no refill after a second")
	}
	n = 0
	for range 200 {
		if g.Admit(netip.MustParseAddr("127.0.0.10")) {
			n++
		}
	}
	if n != 100 {
		t.Fatalf("trunk peer admitted %d, want 100", n)
	}
	admitted := 0
	for i := range 100_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if g.Admit(a) {
			admitted++
		}
	}
	tracked := 0
	for i := range g.shards {
		tracked += len(g.shards[i].sources)
	}
	if tracked > 32 {
		t.Fatalf("tracking %d sources, bound is 32", tracked)
	}
	if admitted > 32*10+shardCount*10 {
		t.Fatalf("a spoofed flood got %d packets in without time passing", admitted)
	}
	if g.Dropped() == 0 {
		t.Fatal("no drops counted")
	}
}

// TestAccountGuessedFromManySources: one alert per window when an account
// fails from AccountSources sources; the account's own phone is not banned.
func TestAccountGuessedFromManySources(t *testing.T) {
	ctx := context.Background()
	g, _, al, _ := newGuard(t, Config{AccountSources: 3})
	for i := range 6 {
		g.Failure(ctx, netip.AddrFrom4([4]byte{127, 0, 1, byte(i)}), "201")
	}
	if len(al.got) != 1 || al.got[0] != "account-guessed account 201" {
		t.Fatalf("alerts %v", al.got)
	}
	if !g.Admit(netip.MustParseAddr("127.0.0.3")) {
		t.Fatal("the account's phone was refused")
	}
}

func TestScanner(t *testing.T) {
	g, _, _, _ := newGuard(t, Config{ScannerBan: true})
	for ua, want := range map[string]string{"friendly-scanner": "friendly-scanner", "SIPVicious 0.3": "sipvicious",
		"sipcli/v1.8": "sipcli", "Yealink SIP-T46S 66.86": "", "": ""} {
		if got := g.Scanner(ua); got != want {
			t.Errorf("Scanner(%q) = %q, want %q", ua, got, want)
		}
	}
	g.cfg.ScannerBan = false
	if g.Scanner("friendly-scanner") != "" {
		t.Error("fingerprint ban switched off still matched")
	}
}

// BenchmarkAdmitBanned is the cost of dropping a packet from a banned
// source, and BenchmarkAdmit of letting a phone's packet through.
func BenchmarkAdmitBanned(b *testing.B) {
	g, err := New(context.Background(), Config{}, &memStore{bans: map[string]store.Ban{}}, nil, nil, "", slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	g.Ban(context.Background(), attacker, "bench", time.Hour, "admin")
	b.ReportAllocs()
	for b.Loop() {
		g.Admit(attacker)
	}
}

func BenchmarkAdmit(b *testing.B) {
	g, err := New(context.Background(), Config{Rate: 1e9, Burst: 1e9}, &memStore{bans: map[string]store.Ban{}}, nil, nil, "", slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	addrs := make([]netip.Addr, 1000)
	for i := range addrs {
		addrs[i] = netip.MustParseAddr(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		g.Admit(addrs[i%len(addrs)])
		i++
	}
}

// flakyStore fails its first failN writes, like a store too busy to take
// them under a flood.
type flakyStore struct {
	memStore
	failN  int
	writes int
}

func (f *flakyStore) PutBan(ctx context.Context, b store.Ban) error {
	f.mu.Lock()
	f.writes++
	fail := f.writes <= f.failN
	f.mu.Unlock()
	if fail {
		return errors.New("database is locked")
	}
	return f.memStore.PutBan(ctx, b)
}

func (f *flakyStore) stored(addr string) (store.Ban, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.bans[addr]
	return b, ok
}

// TestBanStoredAfterRetries: a ban applies at once, however busy the
// store is, and is written down once the store takes writes again.
func TestBanStoredAfterRetries(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := &flakyStore{memStore: memStore{bans: map[string]store.Ban{}}, failN: 3}
	g, err := New(ctx, Config{}, st, nil, nil, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	g.Ban(ctx, attacker, "test", 0, "pbx")
	if g.Admit(attacker) {
		t.Fatal("ban did not apply at once")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := st.stored(attacker.String()); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ban not stored after %d writes; pending %d", st.writes, g.Pending())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if g.Pending() != 0 {
		t.Fatalf("%d bans still pending after the write", g.Pending())
	}
	if st.writes < 4 {
		t.Fatalf("stored after %d writes, want the 4th", st.writes)
	}
	cancel()
	<-done
}

// TestPendingBanSurvivesReload: while a ban waits to be written, a reload
// that finds the source's old, ended ban in the store must not lift it.
func TestPendingBanSurvivesReload(t *testing.T) {
	ctx := context.Background()
	g, st, _, c := newGuard(t, Config{})
	st.bans[attacker.String()] = store.Ban{Address: attacker.String(), Until: c.t.Add(-time.Hour), Offences: 1, By: "pbx"}
	g.Reload(ctx)
	st.fail = true
	b := g.Ban(ctx, attacker, "again", 0, "pbx")
	if b.Offences != 2 {
		t.Fatalf("offences %d, want 2", b.Offences)
	}
	if n := g.Flush(canceled()); n != 1 {
		t.Fatalf("Flush reported %d unstored, want 1", n)
	}
	g.Reload(ctx)
	if g.Admit(attacker) {
		t.Fatal("reload lifted a ban that was waiting to be stored")
	}
	st.fail = false
	if n := g.Flush(ctx); n != 0 || g.Pending() != 0 {
		t.Fatalf("not flushed: %d %d", n, g.Pending())
	}
	if got := st.bans[attacker.String()]; got.Offences != 2 {
		t.Fatalf("stored %+v", got)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
