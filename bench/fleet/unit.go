package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/store"
)

// memStore is a simulated unit's fleet.Store: the bundle in force and a
// few settings, in memory. It keeps the one rule of store.ApplyFleetBundle
// that the link relies on: a bundle not newer than the one in force is
// refused with store.ErrStale. It has no evidence log, so the link finds
// no alerts to send.
type memStore struct {
	mu       sync.Mutex
	bundle   store.FleetBundle
	rates    []policy.Rate
	settings map[string]string
	// applied is called once a bundle is in force, outside the lock.
	applied func(seq uint64, at time.Time)
}

func newMemStore(applied func(seq uint64, at time.Time)) *memStore {
	return &memStore{settings: map[string]string{}, applied: applied}
}

func (m *memStore) FleetBundle(context.Context) (store.FleetBundle, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bundle, nil
}

func (m *memStore) ApplyFleetBundle(_ context.Context, b store.FleetBundle, rates []policy.Rate) error {
	m.mu.Lock()
	if b.Seq <= m.bundle.Seq {
		cur := m.bundle.Seq
		m.mu.Unlock()
		return fmt.Errorf("bundle %d (in force: %d): %w", b.Seq, cur, store.ErrStale)
	}
	m.bundle = b
	if rates != nil {
		m.rates = append([]policy.Rate(nil), rates...)
	}
	m.mu.Unlock()
	if m.applied != nil {
		m.applied(b.Seq, time.Now())
	}
	return nil
}

func (m *memStore) AuditRecords(context.Context, store.AuditFilter) ([]store.AuditRecord, error) {
	return nil, nil
}

func (m *memStore) Setting(_ context.Context, key, def string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.settings[key]; ok {
		return v, nil
	}
	return def, nil
}

func (m *memStore) SetSetting(_ context.Context, key, value string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.settings[key] = value
	return nil
}

// applyLog records when each simulated unit first applied a bundle of
// at least seq, and when the last of them did.
type applyLog struct {
	at    []atomic.Int64 // Unix nanoseconds; 0: not yet
	count atomic.Int64
	want  atomic.Uint64 // 0 until the push: every apply counts from then on
	all   chan struct{} // closed when every unit applied
	once  sync.Once
}

func newApplyLog(n int) *applyLog {
	return &applyLog{at: make([]atomic.Int64, n), all: make(chan struct{})}
}

// hook is unit i's memStore.applied.
func (a *applyLog) hook(i int) func(uint64, time.Time) {
	return func(seq uint64, t time.Time) {
		if w := a.want.Load(); w == 0 || seq < w {
			return
		}
		if a.at[i].CompareAndSwap(0, t.UnixNano()) {
			if a.count.Add(1) == int64(len(a.at)) {
				a.once.Do(func() { close(a.all) })
			}
		}
	}
}
