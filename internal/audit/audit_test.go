package audit

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sekisho/sekisho/internal/store"
)

// logWith makes a store in dir holding n records and a checkpoint after
// every 10, written through a Recorder.
func logWith(t *testing.T, dir string, n int) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, err := LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := New(Config{}, st, key, nil, slog.New(slog.DiscardHandler))
	for i := range n {
		r.Record(Event{Type: Ban, Source: fmt.Sprintf("127.0.1.%d", i), Detail: "test"})
		if (i+1)%10 == 0 {
			if left := r.Flush(ctx); left != 0 {
				t.Fatalf("%d records not written", left)
			}
		}
	}
	r.Flush(ctx)
}

func verifyDir(t *testing.T, dir string) error {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, _ := LoadKey(dir)
	rs, _ := st.AuditRecords(ctx, store.AuditFilter{})
	cps, _ := st.AuditCheckpoints(ctx)
	return Verify(rs, cps, key.Public().(ed25519.PublicKey))
}

// TestTamper: each way of altering the SQLite file is caught and the
// first record concerned is named.
func TestTamper(t *testing.T) {
	for _, tt := range []struct {
		name    string
		sql     string
		wantSeq int64
		want    string
	}{
		{"none", "", 0, ""},
		{"edit a row", `UPDATE audit SET source = '10.0.0.1' WHERE seq = 7`, 7, "does not match the chain"},
		{"delete a row", `DELETE FROM audit WHERE seq = 12`, 12, "missing"},
		{"swap two rows", `UPDATE audit SET seq = -3 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = -3`, 3, "does not match the chain"},
		{"truncate", `DELETE FROM audit WHERE seq > 25`, 26, "cut off"},
		{"edit the last row after the last checkpoint", `UPDATE audit SET detail = 'x' WHERE seq = 30`, 30, "does not match"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			logWith(t, dir, 30)
			if tt.sql != "" {
				db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, store.DBFile))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.Exec(tt.sql); err != nil {
					t.Fatal(err)
				}
				db.Close()
			}
			err := verifyDir(t, dir)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("untouched log: %v", err)
				}
				return
			}
			var p *Problem
			if !errors.As(err, &p) || p.Seq != tt.wantSeq || !strings.Contains(p.Reason, tt.want) {
				t.Fatalf("got %v, want record %d: %s", err, tt.wantSeq, tt.want)
			}
		})
	}
}

// TestRewriteWithTheKey: someone holding the local key rewrites a row and
// re-chains and re-signs everything. The local checks pass; the
// checkpoints exported before catch it.
func TestRewriteWithTheKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	logWith(t, dir, 20)
	st, _ := store.Open(ctx, dir)
	defer st.Close()
	key, _ := LoadKey(dir)
	exported, _ := st.AuditCheckpoints(ctx)

	rs, _ := st.AuditRecords(ctx, store.AuditFilter{})
	rs[4].Source = "10.9.9.9"
	var prev []byte
	for i := range rs {
		rs[i].Hash = Hash(prev, rs[i])
		prev = rs[i].Hash
	}
	forged := []store.AuditCheckpoint{Sign(key, 20, prev, time.Now())}
	pub := key.Public().(ed25519.PublicKey)
	if err := Verify(rs, forged, pub); err != nil {
		t.Fatalf("the forged log should pass on its own: %v", err)
	}
	var p *Problem
	if err := Verify(rs, exported, pub); !errors.As(err, &p) || !strings.Contains(p.Reason, "rewritten") {
		t.Fatalf("the exported checkpoints did not catch the rewrite: %v", err)
	}
}

// TestAggregationExact: 100,000 failures from 10 sources become one record
// per source with the exact count, a few samples, and little space.
func TestAggregationExact(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, _ := LoadKey(dir)
	r := New(Config{Window: time.Hour}, st, key, nil, slog.New(slog.DiscardHandler))
	for i := range 100_000 {
		r.Note(Event{Type: AuthFailure, Source: fmt.Sprintf("127.0.1.%d", i%10), Sample: fmt.Sprintf("%d", 100+i%50), Detail: "wrong password"})
	}
	r.Record(Event{Type: Ban, Source: "127.0.1.1"}) // a state change stays a record of its own
	if left := r.Flush(ctx); left != 0 {
		t.Fatal(left)
	}
	rs, _ := st.AuditRecords(ctx, store.AuditFilter{Type: AuthFailure})
	if len(rs) != 10 {
		t.Fatalf("%d aggregate records, want 10", len(rs))
	}
	size := 0
	for _, rec := range rs {
		if rec.Count != 10_000 {
			t.Errorf("%s: count %d, want 10000 exactly", rec.Source, rec.Count)
		}
		if !strings.Contains(rec.Detail, "samples") || strings.Count(rec.Detail, ",") > 6 {
			t.Errorf("%s: samples %s", rec.Source, rec.Detail)
		}
		size += len(rec.Detail) + len(rec.Source) + len(rec.Type) + 64
	}
	if size > 10_000 {
		t.Errorf("the records take %d bytes", size)
	}
	if bans, _ := st.AuditRecords(ctx, store.AuditFilter{Type: Ban}); len(bans) != 1 {
		t.Errorf("%d ban records, want 1", len(bans))
	}
	if err := verifyDir(t, dir); err != nil {
		t.Fatal(err)
	}
}

type brokenStore struct{ fail bool }

func (b *brokenStore) AppendAudit(_ context.Context, recs []store.AuditRecord, chain store.ChainFunc) ([]store.AuditRecord, error) {
	if b.fail {
		return nil, errors.New("disk full")
	}
	var prev []byte
	for i := range recs {
		recs[i].Seq = int64(i + 1)
		recs[i].Hash = chain(prev, recs[i])
		prev = recs[i].Hash
	}
	return recs, nil
}
func (b *brokenStore) PutAuditCheckpoint(context.Context, store.AuditCheckpoint) error { return nil }

// TestUnhealthyHoldsRecords: while the store refuses writes the recorder
// reports unhealthy (the PBX then refuses outside calls) and loses
// nothing; when writes work again everything goes out and the outage is
// itself recorded.
func TestUnhealthyHoldsRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	bs := &brokenStore{fail: true}
	key, _ := LoadKey(t.TempDir())
	r := New(Config{}, bs, key, nil, slog.New(slog.DiscardHandler))
	r.Record(Event{Type: Ban, Source: "a"})
	if r.write(ctx) || r.Healthy() {
		t.Fatal("a failed write reported success")
	}
	bs.fail = false
	if !r.write(ctx) || !r.Healthy() {
		t.Fatal("no recovery")
	}
	r.mu.Lock()
	q := r.queue
	r.mu.Unlock()
	if len(q) != 1 || q[0].Type != AuditFailure {
		t.Fatalf("the outage was not recorded: %+v", q)
	}
}

// BenchmarkNote is the cost of counting one event into its aggregate,
// the hot path under a flood.
func BenchmarkNote(b *testing.B) {
	key, _ := LoadKey(b.TempDir())
	r := New(Config{Window: time.Hour}, &brokenStore{}, key, nil, slog.New(slog.DiscardHandler))
	srcs := make([]string, 100)
	for i := range srcs {
		srcs[i] = fmt.Sprintf("127.0.1.%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Note(Event{Type: AuthFailure, Source: srcs[i%100], Sample: "201", At: time.Unix(1, 0)})
		i++
	}
}

// TestPrune: old records become daily summaries and a prune record that
// says why; what remains verifies from the anchor, and an edit after the
// prune is still caught.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	logWith(t, dir, 30)
	st, _ := store.Open(ctx, dir)
	defer st.Close()
	key, _ := LoadKey(dir)
	r := New(Config{}, st, key, nil, slog.New(slog.DiscardHandler))
	time.Sleep(5 * time.Millisecond)
	n, err := r.Prune(ctx, st, time.Millisecond, 0)
	if err != nil || n != 30 {
		t.Fatalf("Prune = %d, %v; want 30", n, err)
	}
	r.Flush(ctx)
	rs, _ := st.AuditRecords(ctx, store.AuditFilter{})
	if len(rs) != 2 || rs[0].Type != Summary || !strings.Contains(rs[0].Detail, "30 ban events") || rs[1].Type != Prune {
		t.Fatalf("after pruning: %+v", rs)
	}
	aseq, ahash, _ := st.AuditAnchor(ctx)
	cps, _ := st.AuditCheckpoints(ctx)
	pub := key.Public().(ed25519.PublicKey)
	if err := VerifyFrom(aseq, ahash, rs, cps, pub); err != nil {
		t.Fatalf("pruned log does not verify: %v", err)
	}
	rs[1].Detail = "nothing to see"
	var p *Problem
	if err := VerifyFrom(aseq, ahash, rs, cps, pub); !errors.As(err, &p) || p.Seq != 32 {
		t.Fatalf("an edit after pruning: %v", err)
	}
}

// BenchmarkAbsorb pushes a million failed logins from 100 sources, spread
// over 1,000 s of event time, through aggregation into SQLite, and reports
// the events absorbed per second and the bytes stored per million events.
func BenchmarkAbsorb(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		st, err := store.Open(ctx, dir)
		if err != nil {
			b.Fatal(err)
		}
		key, _ := LoadKey(dir)
		r := New(Config{Window: time.Minute}, st, key, nil, slog.New(slog.DiscardHandler))
		srcs := make([]string, 100)
		for i := range srcs {
			srcs[i] = fmt.Sprintf("198.51.100.%d", i)
		}
		t0 := time.Unix(1_800_000_000, 0)
		b.StartTimer()
		start := time.Now()
		for i := range 1_000_000 {
			at := t0.Add(time.Duration(i) * time.Millisecond)
			r.Note(Event{Type: AuthFailure, Source: srcs[i%100], Sample: fmt.Sprint(100 + i%7), At: at, Detail: "wrong password"})
			if i%10_000 == 0 {
				r.mu.Lock()
				r.close(at, false)
				r.mu.Unlock()
				r.write(ctx)
			}
		}
		r.Flush(ctx)
		el := time.Since(start)
		b.StopTimer()
		_, bytes, _ := st.AuditSize(ctx)
		n, _, _ := st.AuditSize(ctx)
		b.ReportMetric(1e6/el.Seconds(), "events/s")
		b.ReportMetric(float64(bytes), "bytes/1M-events")
		b.ReportMetric(float64(n), "records/1M-events")
		st.Close()
		b.StartTimer()
	}
}
