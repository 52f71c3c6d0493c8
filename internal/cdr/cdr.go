// Package cdr writes call detail records: one per call attempt, answered
// or not. A record is inserted when the attempt starts and completed when
// it ends. Writes go through one writer goroutine that commits them in
// batches (one fsync for a burst of calls) and retries a failed commit
// (disk full, database locked) until it succeeds or the process stops,
// logging each failure: a record is never dropped to keep the call path
// fast.
package cdr

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// Writer queues record writes and commits them in order.
type Writer struct {
	store *store.Store
	log   *slog.Logger

	mu    sync.Mutex
	queue []op          // pending writes in order; guarded by mu
	wake  chan struct{} // signalled when queue grows
}

type op struct {
	rec    *Record
	insert bool
	snap   store.CDR
}

// Record is the handle of one attempt's record.
type Record struct {
	w *Writer

	mu   sync.Mutex
	data store.CDR // guarded by mu
	id   int64     // row ID; written only by the writer goroutine
	done bool      // guarded by mu
	// settle runs once, inside Finish, with the completed record; it
	// releases the call's hold on the limits and fills in its cost, so
	// that no ending of a call can skip it. Guarded by mu.
	settle func(*store.CDR)
}

// OnFinish sets fn to run once when the record is finished, before the
// final write, with the record to complete. If the record is already
// finished, fn runs now.
func (r *Record) OnFinish(fn func(*store.CDR)) {
	r.mu.Lock()
	if !r.done {
		r.settle = fn
		r.mu.Unlock()
		return
	}
	d := r.data
	r.mu.Unlock()
	fn(&d)
}

// NewWriter returns a Writer on st. Run must be running for writes to land.
func NewWriter(st *store.Store, log *slog.Logger) *Writer {
	return &Writer{store: st, log: log, wake: make(chan struct{}, 1)}
}

// Start begins the record of an attempt.
func (w *Writer) Start(r store.CDR) *Record {
	if r.Started.IsZero() {
		r.Started = time.Now()
	}
	r.State = store.CDRActive
	rec := &Record{w: w, data: r}
	w.enqueue(op{rec: rec, insert: true, snap: r})
	return rec
}

// Update changes fields of an active record (caller identified, callee
// resolved) and queues the change.
func (r *Record) Update(fn func(*store.CDR)) {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return
	}
	fn(&r.data)
	// Queued under the record's lock, so snapshots are queued in the
	// order they were taken: a change queued after a concurrent Finish
	// would otherwise write the record back as active, and the call's
	// end would be lost from its record.
	r.w.enqueue(op{rec: r, snap: r.data})
	r.mu.Unlock()
}

// Answered marks the call answered now.
func (r *Record) Answered() {
	r.Update(func(c *store.CDR) {
		if c.Answered.IsZero() {
			c.Answered = time.Now()
		}
	})
}

// Finish completes the record with the final result. Later calls are
// ignored: the first ending is the true one.
func (r *Record) Finish(code int, reason, hangupBy string) {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return
	}
	now := time.Now()
	d := &r.data
	d.State, d.Ended, d.HangupBy = store.CDRDone, now, hangupBy
	if d.ResultCode == 0 {
		d.ResultCode = code
	}
	if reason != "" {
		if d.ResultReason != "" {
			d.ResultReason += "; "
		}
		d.ResultReason += reason
	}
	if !d.Answered.IsZero() {
		d.Duration = now.Sub(d.Answered)
	}
	if r.settle != nil {
		r.settle(d)
		r.settle = nil
	}
	r.done = true
	r.w.enqueue(op{rec: r, snap: r.data}) // under the lock: see Update
	r.mu.Unlock()
}

// Data returns a copy of the record as it stands.
func (r *Record) Data() store.CDR {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.data
}

func (w *Writer) enqueue(o op) {
	w.mu.Lock()
	w.queue = append(w.queue, o)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run commits queued writes until ctx is done, then returns. Call Flush
// after Run returns to commit what is left.
func (w *Writer) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		w.drain(ctx)
	}
}

// Flush commits everything queued so far, retrying until ctx ends. It
// returns the number of writes still uncommitted (0 on success).
func (w *Writer) Flush(ctx context.Context) int {
	w.drain(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// drain commits the queue in batches; on failure it keeps the batch at the
// head of the queue and retries with backoff.
func (w *Writer) drain(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for {
		w.mu.Lock()
		batch := w.queue
		if len(batch) > 512 {
			batch = batch[:512]
		}
		w.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		// The database work itself is not cancelled by ctx: a record
		// half-written at shutdown would be worse than a short wait.
		db := context.WithoutCancel(ctx)
		// Every op carries the record's whole state, so a record written
		// several times in one batch (inserted, answered and finished
		// within a few milliseconds) needs only its last state: inserted
		// with it if the batch inserts it, else one update. At hundreds
		// of calls a second that is a third of the statements.
		last := make(map[*Record]int, len(batch))
		inserted := make(map[*Record]bool)
		for i, o := range batch {
			last[o.rec] = i
			if o.insert {
				inserted[o.rec] = true
			}
		}
		err := w.store.WriteCDRs(db, func(tx *store.CDRTx) error {
			for i, o := range batch {
				if last[o.rec] != i {
					continue
				}
				if inserted[o.rec] {
					id, err := tx.Insert(db, o.snap)
					if err != nil {
						return err
					}
					o.rec.id = id
					continue
				}
				o.snap.ID = o.rec.id
				if err := tx.Update(db, o.snap); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			w.log.Error("cdr: commit failed, will retry; records are kept in memory", "pending", len(batch), "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		w.mu.Lock()
		w.queue = w.queue[len(batch):]
		w.mu.Unlock()
		backoff = 50 * time.Millisecond
	}
}
