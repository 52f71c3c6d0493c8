package credential

import (
	"sync"
	"time"
)

// Logins of people (the unit console's accounts, the centre's operators)
// share these rules.

// ValidName is an account name: 2 to 32 of a-z 0-9 - _ . so that a name
// is safe as it is in a log line, a URL, an evidence record and a
// terminal.
func ValidName(n string) bool {
	if len(n) < 2 || len(n) > 32 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// LockFor is how long an account stays locked after n failed logins in
// a row: free for two, then 2 s doubling to 15 minutes. Stops password
// guessing online: the thousandth guess waits a quarter of an hour.
func LockFor(n int) time.Duration {
	if n < 3 {
		return 0
	}
	d := 2 * time.Second
	for i := 3; i < n && d < 15*time.Minute; i++ {
		d *= 2
	}
	return min(d, 15*time.Minute)
}

// Ghosts locks out names that are not accounts on the same schedule as
// real ones: were only real accounts ever locked, a 429 would tell a
// guesser which names exist. Bounded: when full it starts afresh. The
// zero value is ready; safe for concurrent use.
type Ghosts struct {
	mu sync.Mutex
	m  map[string]ghost
}

type ghost struct {
	failures int
	until    time.Time
}

const maxGhosts = 10000

// Locked tells whether name is locked at now.
func (g *Ghosts) Locked(name string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return now.Before(g.m[name].until)
}

// Fail counts a failed login for name at now.
func (g *Ghosts) Fail(name string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil || len(g.m) >= maxGhosts {
		g.m = map[string]ghost{}
	}
	x := g.m[name]
	x.failures++
	x.until = now.Add(LockFor(x.failures))
	g.m[name] = x
}
