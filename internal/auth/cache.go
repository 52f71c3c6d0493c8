package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// Source is where a Cache reads extensions. *store.Store satisfies it.
type Source interface {
	Accounts
	// ExtensionGeneration changes whenever any extension is added,
	// changed or deleted, from any process (SQLite triggers raise it).
	ExtensionGeneration(ctx context.Context) (int64, error)
}

// DefaultRecheck is how often a Cache reads the generation counter.
const DefaultRecheck = 250 * time.Millisecond

// maxUnknown bounds the remembered "no such extension" answers. Unlike
// real extensions, which the table bounds, unknown names are chosen by
// whoever sends the requests (an enumerator tries thousands).
const maxUnknown = 4096

// Cache answers extension lookups from memory. Every authentication
// needs its extension's hashes; reading them from SQLite was a quarter of
// a REGISTER's CPU.
//
// Promptness is a security requirement: deleting an extension, changing
// its password, its networks or its digest setting must stop a stolen
// credential at once, even when the change is made with the CLI in
// another process. So the cache is not kept for a fixed time; it is
// emptied whenever the extensions' generation counter (kept by SQLite
// triggers on every write to the table) moves, and that one-row counter
// is read again whenever it was last read more than recheck ago. A change
// takes effect within recheck (250 ms) plus one lookup, for the cost of
// at most four small queries a second instead of one per request.
//
// It is safe for concurrent use.
type Cache struct {
	src     Source
	recheck time.Duration
	now     func() time.Time

	refresh sync.Mutex // one generation read at a time

	mu      sync.RWMutex
	gen     int64
	checked time.Time // when gen was last read; zero: never
	epoch   uint64    // raised each time the cache is emptied
	known   map[string]store.Extension
	unknown map[string]struct{}
}

// NewCache returns a Cache over src; recheck <= 0 means DefaultRecheck.
func NewCache(src Source, recheck time.Duration) *Cache {
	if recheck <= 0 {
		recheck = DefaultRecheck
	}
	return &Cache{src: src, recheck: recheck, now: time.Now,
		known: make(map[string]store.Extension), unknown: make(map[string]struct{})}
}

// Extension implements Accounts.
func (c *Cache) Extension(ctx context.Context, number string) (store.Extension, error) {
	if err := c.fresh(ctx); err != nil {
		// Fail closed: without knowing whether the cache is current, an
		// old password could still be accepted; read the store itself.
		return c.src.Extension(ctx, number)
	}
	c.mu.RLock()
	e, ok := c.known[number]
	_, missing := c.unknown[number]
	epoch := c.epoch
	c.mu.RUnlock()
	switch {
	case ok:
		return e, nil
	case missing:
		return store.Extension{}, fmt.Errorf("extension %s: %w", number, store.ErrNotFound)
	}
	e, err := c.src.Extension(ctx, number)
	switch {
	case err == nil, errors.Is(err, store.ErrNotFound):
	default:
		return e, err // a store failure is not remembered
	}
	c.mu.Lock()
	// Remember only if the cache was not emptied meanwhile: a row read
	// before a change committed must not outlive the change.
	if c.epoch == epoch {
		if err == nil {
			c.known[number] = e
		} else {
			if len(c.unknown) >= maxUnknown {
				clear(c.unknown)
			}
			c.unknown[number] = struct{}{}
		}
	}
	c.mu.Unlock()
	return e, err
}

// fresh reads the generation counter if it was last read more than
// recheck ago, and empties the cache if it moved.
func (c *Cache) fresh(ctx context.Context) error {
	now := c.now()
	c.mu.RLock()
	ok := !c.checked.IsZero() && now.Sub(c.checked) < c.recheck
	c.mu.RUnlock()
	if ok {
		return nil
	}
	c.refresh.Lock()
	defer c.refresh.Unlock()
	c.mu.RLock()
	ok = !c.checked.IsZero() && c.now().Sub(c.checked) < c.recheck
	c.mu.RUnlock()
	if ok {
		return nil // another lookup read it while this one waited
	}
	gen, err := c.src.ExtensionGeneration(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if gen != c.gen || c.checked.IsZero() {
		c.gen = gen
		c.epoch++
		clear(c.known)
		clear(c.unknown)
	}
	// The time the read started: the counter is at least that fresh.
	c.checked = now
	c.mu.Unlock()
	return nil
}
