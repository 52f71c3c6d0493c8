package cdr

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

func TestWriterLifecycle(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := NewWriter(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.Run(runCtx); close(done) }()

	r := w.Start(store.CDR{CallID: "c1", Caller: "201", Dialled: "202", Callee: "202", Source: "127.0.0.1:5060"})
	r.Answered()
	time.Sleep(20 * time.Millisecond)
	r.Finish(200, "b2bua: bye", "callee")
	r.Finish(500, "late", "pbx") // ignored: the first ending is the true one
	r2 := w.Start(store.CDR{CallID: "c2", Caller: "201", Dialled: "999"})
	r2.Finish(404, "route: no extension 999", "")

	stop()
	<-done
	if left := w.Flush(ctx); left != 0 {
		t.Fatalf("%d writes left", left)
	}
	rs, err := st.ListCDRs(ctx, store.CDRFilter{})
	if err != nil || len(rs) != 2 {
		t.Fatalf("records: %+v %v", rs, err)
	}
	a, b := rs[1], rs[0]
	if a.State != store.CDRDone || a.ResultCode != 200 || a.HangupBy != "callee" || a.Answered.IsZero() || a.Duration <= 0 {
		t.Fatalf("answered call record: %+v", a)
	}
	if b.ResultCode != 404 || !b.Answered.IsZero() || b.State != store.CDRDone {
		t.Fatalf("refused call record: %+v", b)
	}
}

// A failing database must not lose records: they stay queued, and land
// once the database works again.
func TestWriterRetriesUntilCommitted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := NewWriter(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// Another connection holds the write lock, so commits fail (after
	// the store's busy timeout) as they would on a locked database.
	ro, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := ro.BeginExclusive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Start(store.CDR{CallID: "kept", Caller: "201", Dialled: "202"}).Finish(486, "busy", "")
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	left := w.Flush(short)
	cancel()
	if left == 0 {
		t.Fatal("writes reported committed while the database was locked")
	}
	lock()
	ro.Close()
	if left := w.Flush(ctx); left != 0 {
		t.Fatalf("%d writes left after unlock", left)
	}
	rs, _ := st.ListCDRs(ctx, store.CDRFilter{})
	if len(rs) != 1 || rs[0].CallID != "kept" || rs[0].ResultCode != 486 {
		t.Fatalf("records after retry: %+v", rs)
	}
}

// TestWriterOneBatchLastStateWins: a record started, answered and
// finished before the writer runs is written once, with its final state;
// one already inserted and then changed twice is updated to its last.
func TestWriterOneBatchLastStateWins(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := NewWriter(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r := w.Start(store.CDR{CallID: "c1", Caller: "201", Dialled: "202", Callee: "202"})
	r.Answered()
	r.Finish(200, "b2bua: bye", "caller")
	r2 := w.Start(store.CDR{CallID: "c2", Caller: "201", Dialled: "203", Callee: "203"})
	if left := w.Flush(ctx); left != 0 {
		t.Fatalf("%d writes left", left)
	}
	r2.Answered()
	r2.Finish(200, "b2bua: bye", "callee")
	if left := w.Flush(ctx); left != 0 {
		t.Fatalf("%d writes left", left)
	}
	rs, err := st.ListCDRs(ctx, store.CDRFilter{})
	if err != nil || len(rs) != 2 {
		t.Fatalf("want 2 records, got %+v %v", rs, err)
	}
	for _, c := range rs {
		if c.State != store.CDRDone || c.ResultCode != 200 || c.Answered.IsZero() {
			t.Errorf("record %s not in its final state: %+v", c.CallID, c)
		}
	}
}

// TestFinishRacesUpdate: a call's end (Finish) and a change to its record
// from another goroutine at the same moment (the media's packet counts
// when both legs hang up together) must leave the record finished. Before
// the writes were queued under the record's lock, a change snapshotted
// before the Finish could be queued after it and write the record back as
// active.
func TestFinishRacesUpdate(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := NewWriter(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.Run(runCtx); close(done) }()
	const n = 300
	var wg sync.WaitGroup
	for i := range n {
		r := w.Start(store.CDR{CallID: fmt.Sprintf("c%d", i), Caller: "201", Dialled: "202"})
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range 50 {
				r.Update(func(c *store.CDR) { c.PacketsAtoB = uint64(j) })
			}
		}()
		go func() {
			defer wg.Done()
			runtime.Gosched()
			r.Finish(200, "", "caller")
		}()
	}
	wg.Wait()
	stop()
	<-done
	if left := w.Flush(ctx); left != 0 {
		t.Fatalf("%d writes left", left)
	}
	rs, err := st.ListCDRs(ctx, store.CDRFilter{Limit: 2 * n})
	if err != nil || len(rs) != n {
		t.Fatalf("records: %d %v", len(rs), err)
	}
	for _, r := range rs {
		if r.State != store.CDRDone {
			t.Fatalf("record %s left %s after its Finish", r.CallID, r.State)
		}
	}
}
