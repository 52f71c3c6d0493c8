package auth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/store"
)

// countingSource counts the lookups that reach the store.
type countingSource struct {
	*store.Store
	lookups atomic.Int64
}

func (c *countingSource) Extension(ctx context.Context, n string) (store.Extension, error) {
	c.lookups.Add(1)
	return c.Store.Extension(ctx, n)
}

func ext(number, password string) store.Extension {
	return store.Extension{Number: number, Realm: "sekisho", Digest: "md5",
		HA1MD5: credential.HA1(credential.MD5, number, "sekisho", password)}
}

// TestCacheSeesChangesFromAnotherHandle: the CLI changes extensions
// through its own connection (another process); the server's cache must
// stop using the old row within the recheck time.
func TestCacheSeesChangesFromAnotherHandle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	server, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	cli, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if err := cli.AddExtension(ctx, ext("201", "old-password")); err != nil {
		t.Fatal(err)
	}

	src := &countingSource{Store: server}
	c := NewCache(src, time.Hour) // the clock below decides when to recheck
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }

	for range 10 {
		e, err := c.Extension(ctx, "201")
		if err != nil || e.HA1MD5 != ext("201", "old-password").HA1MD5 {
			t.Fatalf("lookup: %v %+v", err, e)
		}
	}
	if n := src.lookups.Load(); n != 1 {
		t.Fatalf("%d store lookups for 10 authentications, want 1", n)
	}

	// Password changed with the CLI.
	if err := cli.UpdateExtension(ctx, ext("201", "new-password")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour + time.Millisecond)
	if e, _ := c.Extension(ctx, "201"); e.HA1MD5 != ext("201", "new-password").HA1MD5 {
		t.Fatal("old password still in use after the recheck time")
	}

	// Extension deleted.
	if err := cli.DeleteExtension(ctx, "201"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour + time.Millisecond)
	if _, err := c.Extension(ctx, "201"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted extension still found: %v", err)
	}

	// Added again: the remembered "not found" goes too.
	if err := cli.AddExtension(ctx, ext("201", "third")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour + time.Millisecond)
	if _, err := c.Extension(ctx, "201"); err != nil {
		t.Fatalf("re-added extension not found: %v", err)
	}

	// Suspension, networks and the like are updates too.
	if _, err := cli.Suspend(ctx, "201", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour + time.Millisecond)
	if e, _ := c.Extension(ctx, "201"); e.Suspended.IsZero() {
		t.Fatal("suspension not seen")
	}
}

// TestCacheDoesNotRecheckTooOften: within the recheck time the counter
// is not read again.
func TestCacheDoesNotRecheckTooOften(t *testing.T) {
	f := &fakeSource{exts: map[string]store.Extension{"201": ext("201", "pw")}}
	c := NewCache(f, 250*time.Millisecond)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	for range 100 {
		c.Extension(context.Background(), "201")
		now = now.Add(time.Millisecond)
	}
	if f.gens.Load() != 1 {
		t.Fatalf("%d generation reads in 100 ms, want 1", f.gens.Load())
	}
	now = now.Add(200 * time.Millisecond)
	c.Extension(context.Background(), "201")
	if f.gens.Load() != 2 {
		t.Fatalf("%d generation reads after 300 ms, want 2", f.gens.Load())
	}
}

// TestCacheFailsClosed: when the counter cannot be read, lookups go to
// the store (never an old cached row), and store errors are not cached.
func TestCacheFailsClosed(t *testing.T) {
	f := &fakeSource{exts: map[string]store.Extension{"201": ext("201", "old")}}
	c := NewCache(f, time.Nanosecond)
	if _, err := c.Extension(context.Background(), "201"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.exts["201"] = ext("201", "new")
	f.genErr = errors.New("database is locked")
	f.mu.Unlock()
	if e, _ := c.Extension(context.Background(), "201"); e.HA1MD5 != ext("201", "new").HA1MD5 {
		t.Fatal("served a cached row while the counter was unreadable")
	}
	f.mu.Lock()
	f.genErr, f.lookupErr = nil, errors.New("disk I/O error")
	f.mu.Unlock()
	if _, err := c.Extension(context.Background(), "999"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("store failure reported as %v", err)
	}
	f.mu.Lock()
	f.lookupErr = nil
	f.exts["999"] = ext("999", "pw")
	f.mu.Unlock()
	if _, err := c.Extension(context.Background(), "999"); err != nil {
		t.Fatalf("a store failure was remembered: %v", err)
	}
}

// TestCacheUnknownBounded: names chosen by an enumerator cannot grow
// the cache without bound.
func TestCacheUnknownBounded(t *testing.T) {
	f := &fakeSource{exts: map[string]store.Extension{}}
	c := NewCache(f, time.Hour)
	for i := range 3 * maxUnknown {
		c.Extension(context.Background(), string(rune(0x1000+i)))
	}
	if len(c.unknown) > maxUnknown {
		t.Fatalf("%d unknown names remembered, bound %d", len(c.unknown), maxUnknown)
	}
}

func TestCacheConcurrent(t *testing.T) {
	f := &fakeSource{exts: map[string]store.Extension{"201": ext("201", "pw"), "202": ext("202", "pw")}}
	c := NewCache(f, time.Microsecond)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 500 {
				n := "201"
				if (i+j)%2 == 0 {
					n = "202"
				}
				if _, err := c.Extension(context.Background(), n); err != nil {
					t.Error(err)
					return
				}
				if j%50 == 0 {
					f.bump()
				}
			}
		})
	}
	wg.Wait()
}

type fakeSource struct {
	mu        sync.Mutex
	exts      map[string]store.Extension
	gen       int64
	genErr    error
	lookupErr error
	gens      atomic.Int64
}

func (f *fakeSource) bump() { f.mu.Lock(); f.gen++; f.mu.Unlock() }

func (f *fakeSource) Extension(_ context.Context, n string) (store.Extension, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lookupErr != nil {
		return store.Extension{}, f.lookupErr
	}
	if e, ok := f.exts[n]; ok {
		return e, nil
	}
	return store.Extension{}, store.ErrNotFound
}

func (f *fakeSource) ExtensionGeneration(context.Context) (int64, error) {
	f.gens.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen, f.genErr
}
