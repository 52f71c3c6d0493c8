package centre

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/wire"
)

func TestStoreMigratesOnceAndBindsNumberedPlaceholders(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		ctx := t.Context()
		// A second run of the migrations finds them applied.
		if err := st.migrate(ctx); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := st.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != len(migrations) {
			t.Fatalf("%d migrations recorded, want %d", n, len(migrations))
		}
		// $N binds by number on both backends, used out of order and
		// more than once.
		var got string
		if err := st.db.QueryRowContext(ctx, `SELECT CAST($2 AS TEXT) || '-' || CAST($1 AS TEXT) || '-' || CAST($1 AS TEXT)`, "a", "b").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != "b-a-a" {
			t.Fatalf("placeholders bound as %q, want b-a-a", got)
		}
	})
}

func TestStoreSQLiteReopens(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(t.Context(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddToken(t.Context(), "aa", "", time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = OpenStore(t.Context(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := OpenStore(t.Context(), dir, "mysql://x"); err == nil || !strings.Contains(err.Error(), "--db") {
		t.Fatalf("a DSN of another kind: %v, want an error naming --db", err)
	}
}

func unitFor(id, group string) func(string) (Unit, error) {
	return func(g string) (Unit, error) {
		return Unit{ID: id, Name: "office " + id, Group: g, CertFingerprint: "fp-" + id, Enrolled: time.Now()}, nil
	}
}

func TestStoreTokenUsedOnceAndExpires(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		ctx := t.Context()
		now := time.Now()
		good, old := TokenHash([]byte("good")), TokenHash([]byte("old"))
		if err := st.AddToken(ctx, good, "tokyo", now, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := st.AddToken(ctx, old, "", now.Add(-2*time.Hour), now.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		u, _, err := st.Enrol(ctx, good, now, unitFor("u-1", ""))
		if err != nil {
			t.Fatal(err)
		}
		if u.Group != "tokyo" {
			t.Fatalf("group %q, want the token's (tokyo)", u.Group)
		}
		got, err := st.Unit(ctx, "u-1")
		if err != nil || got.Group != "tokyo" || got.CertFingerprint != "fp-u-1" {
			t.Fatalf("stored unit %+v, %v", got, err)
		}
		for _, c := range []struct{ hash, why string }{
			{good, "used already"}, {old, "expired"}, {TokenHash([]byte("never")), "unknown"},
		} {
			_, why, err := st.Enrol(ctx, c.hash, now, unitFor("u-x", ""))
			if !errors.Is(err, ErrTokenInvalid) || !strings.Contains(why, c.why) {
				t.Errorf("enrol: %v (%s), want ErrTokenInvalid: %s", err, why, c.why)
			}
		}
		// A failed issue (a bad CSR) leaves the token unused.
		spare := TokenHash([]byte("spare"))
		st.AddToken(ctx, spare, "", now, now.Add(time.Hour))
		if _, _, err := st.Enrol(ctx, spare, now, func(string) (Unit, error) { return Unit{}, ErrBadCSR }); !errors.Is(err, ErrBadCSR) {
			t.Fatalf("enrol with a failing issue: %v", err)
		}
		if _, _, err := st.Enrol(ctx, spare, now, unitFor("u-2", "")); err != nil {
			t.Fatalf("the token after a failed issue: %v", err)
		}
	})
}

func TestStoreTokenRaceMakesOneUnit(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		ctx := t.Context()
		h := TokenHash([]byte("race"))
		if err := st.AddToken(ctx, h, "", time.Now(), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins int
		)
		for i := range 8 {
			wg.Go(func() {
				_, _, err := st.Enrol(ctx, h, time.Now(), unitFor(fmt.Sprint("u-race-", i), ""))
				switch {
				case err == nil:
					mu.Lock()
					wins++
					mu.Unlock()
				case !errors.Is(err, ErrTokenInvalid):
					t.Errorf("racing enrolment: %v", err)
				}
			})
		}
		wg.Wait()
		us, err := st.Units(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if wins != 1 || len(us) != 1 {
			t.Fatalf("%d enrolments succeeded and %d units exist, want 1 and 1", wins, len(us))
		}
	})
}

func TestStoreBundleSeqUniqueAndSigned(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		ctx := t.Context()
		pub, key, _ := ed25519.GenerateKey(rand.Reader)
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			seqs []int
		)
		for i := range 10 {
			wg.Go(func() {
				g := ""
				if i%2 == 1 {
					g = "osaka"
				}
				b, err := st.AddBundle(ctx, key, wire.Bundle{Group: g, Note: fmt.Sprint("push ", i), BlockInternational: true,
					Rates: []policy.Rate{{Prefix: "+232", PerMinute: 250}}})
				if err != nil {
					t.Errorf("push %d: %v", i, err)
					return
				}
				mu.Lock()
				seqs = append(seqs, int(b.Seq))
				mu.Unlock()
			})
		}
		wg.Wait()
		sort.Ints(seqs)
		if fmt.Sprint(seqs) != "[1 2 3 4 5 6 7 8 9 10]" {
			t.Fatalf("seqs %v, want 1 to 10 once each", seqs)
		}
		for seq := uint64(1); seq <= 10; seq++ {
			b, err := st.BundleBySeq(ctx, seq)
			if err != nil {
				t.Fatal(err)
			}
			wb, err := b.Signed.Verify(pub)
			if err != nil {
				t.Fatalf("bundle %d as stored: %v", seq, err)
			}
			if wb.Seq != seq || b.Hash != b.Signed.Hash() || wb.Group != b.Group || !wb.BlockInternational || len(wb.Rates) != 1 {
				t.Fatalf("bundle %d: body %+v, row %+v", seq, wb, b)
			}
		}
		heads, err := st.GroupHeads(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all, _, _ := st.NewestBundle(ctx, "")
		osaka, _, _ := st.NewestBundle(ctx, "osaka")
		if all.Group != "" || all.Seq != heads[""] || osaka.Seq != 10 || len(heads) != 2 {
			t.Fatalf("newest for every unit %d, for osaka %d; heads %v", all.Seq, osaka.Seq, heads)
		}
		if _, err := st.BundleBySeq(ctx, 99); !errors.Is(err, ErrNotFound) {
			t.Fatalf("bundle 99: %v", err)
		}
	})
}

func TestStoreAlertKeptOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		ctx := t.Context()
		a := wire.Alert{Seq: 42, At: time.Now(), Kind: "suspension", Subject: "201", Detail: "intl-per-minute", Count: 1}
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			added int
		)
		for range 6 {
			wg.Go(func() {
				_, ok, err := st.AddAlert(ctx, "u-1", a, time.Now())
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					added++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if _, ok, err := st.AddAlert(ctx, "u-2", a, time.Now()); err != nil || !ok {
			t.Fatalf("the same seq from another unit: added %v, %v", ok, err)
		}
		as, err := st.Alerts(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if added != 1 || len(as) != 2 {
			t.Fatalf("added %d times, %d alerts stored; want 1 and 2", added, len(as))
		}
		pending, _ := st.PendingAlerts(ctx, 10)
		if len(pending) != 2 {
			t.Fatalf("%d pending, want 2", len(pending))
		}
		st.AlertFailed(ctx, pending[0].ID, "webhook https://hooks.example: HTTP 500")
		st.AlertDelivered(ctx, pending[1].ID, time.Now())
		pending, _ = st.PendingAlerts(ctx, 10)
		if len(pending) != 1 || pending[0].Attempts != 1 || pending[0].LastError == "" {
			t.Fatalf("pending after one failure and one delivery: %+v", pending)
		}
	})
}

func TestStoreCoverage(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		ctx := t.Context()
		now := time.Now()
		for i, g := range []string{"tokyo", "tokyo", "tokyo", "osaka", "tokyo"} {
			h := TokenHash(fmt.Append(nil, i))
			st.AddToken(ctx, h, g, now, now.Add(time.Hour))
			if _, _, err := st.Enrol(ctx, h, now, unitFor(fmt.Sprint("u-", i), "")); err != nil {
				t.Fatal(err)
			}
		}
		st.RevokeUnit(ctx, "u-4", now)
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		b, err := st.AddBundle(ctx, key, wire.Bundle{Group: "tokyo", BlockInternational: true})
		if err != nil {
			t.Fatal(err)
		}
		// u-0 applied it, u-1 refused it, u-2 has not answered; u-3 is
		// in another group and u-4 is revoked: neither counts.
		if err := st.SaveAck(ctx, "u-0", wire.Ack{Seq: b.Seq, Hash: b.Hash, OK: true}, now); err != nil {
			t.Fatal(err)
		}
		if err := st.SaveAck(ctx, "u-1", wire.Ack{Seq: b.Seq, Hash: b.Hash, OK: false, Error: "rates: invalid"}, now); err != nil {
			t.Fatal(err)
		}
		// An ok ack for a hash the centre never signed moves nothing.
		if err := st.SaveAck(ctx, "u-2", wire.Ack{Seq: b.Seq, Hash: "forged", OK: true}, now); err != nil {
			t.Fatal(err)
		}
		// A status made before the ack, arriving after it, does not undo it.
		if err := st.SaveStatus(ctx, "u-0", wire.Status{Applied: b.Seq - 1}, now); err != nil {
			t.Fatal(err)
		}
		c, err := st.Coverage(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if c.Seq != b.Seq || c.Applied != 1 || c.Total != 3 {
			t.Fatalf("coverage %d of %d for %d, want 1 of 3 for %d", c.Applied, c.Total, c.Seq, b.Seq)
		}
		if len(c.Refused) != 1 || c.Refused[0].UnitID != "u-1" || c.Refused[0].Error != "rates: invalid" {
			t.Fatalf("refused %+v", c.Refused)
		}
		if len(c.Stragglers) != 1 || c.Stragglers[0].UnitID != "u-2" {
			t.Fatalf("stragglers %+v", c.Stragglers)
		}
		if err := st.RevokeUnit(ctx, "u-404", now); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoke an unknown unit: %v", err)
		}
	})
}
