package fleet

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/wire"
)

// TestMaintenanceSession: the unit opens its console to the centre's
// operator only for a grant signed with the pinned key, for this unit,
// while the office allows it; the session is served over the unit's own
// outbound connection, is recorded with the operator's name, and closes
// when the office switches maintenance off.
func TestMaintenanceSession(t *testing.T) {
	f := newFakeCentre(t)
	l, _, _, ev := joined(t, f)
	var allowed atomic.Bool
	l.cfg.MaintenanceAllowed = func(context.Context) bool { return allowed.Load() }
	l.cfg.Console = func(operator, base string) http.Handler {
		return http.StripPrefix(base, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "console for "+operator+" at "+r.URL.Path)
		}))
	}
	var sendMu sync.Mutex
	sendc := make(chan func(wire.Message), 1)
	f.onStream = func(enc *json.Encoder, flush func(), h wire.Hello) {
		sendc <- func(m wire.Message) {
			sendMu.Lock()
			defer sendMu.Unlock()
			enc.Encode(m)
			flush()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)
	var send func(wire.Message)
	select {
	case send = <-sendc:
	case <-time.After(10 * time.Second):
		t.Fatal("the unit did not connect")
	}
	grant := func(key ed25519.PrivateKey, session, unit string, expires time.Time) wire.Message {
		sg, err := wire.SignGrant(key, wire.Grant{Session: session, Unit: unit, Operator: "alice", Created: time.Now(), Expires: expires})
		if err != nil {
			t.Fatal(err)
		}
		return wire.Message{Type: wire.TypeOpen, Open: &sg}
	}
	declined := func(n int) wire.Declined {
		t.Helper()
		waitFor(t, "declined", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.declined) >= n })
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.declined[n-1]
	}
	hour := time.Now().Add(time.Hour)
	_, other, _ := ed25519.GenerateKey(nil)
	cases := []struct {
		name string
		m    wire.Message
		want string
	}{
		{"switched off", grant(f.bundle, strings.Repeat("a", 32), "unit-1", hour), "switched off"},
		{"forged", grant(other, strings.Repeat("b", 32), "unit-1", hour), "signature"},
		{"another unit's", grant(f.bundle, strings.Repeat("c", 32), "unit-2", hour), "not this one"},
		{"expired", grant(f.bundle, strings.Repeat("d", 32), "unit-1", time.Now().Add(-time.Minute)), "expired"},
	}
	allowed.Store(true)
	for i, c := range cases {
		allowed.Store(i != 0)
		send(c.m)
		if d := declined(i + 1); !strings.Contains(d.Why, c.want) {
			t.Fatalf("%s: declined %+v, want %q", c.name, d, c.want)
		}
	}
	select {
	case <-f.tunnels:
		t.Fatal("a tunnel was opened for a declined grant")
	default:
	}
	if !ev.has(audit.MaintenanceDeclined) || ev.has(audit.MaintenanceOpen) {
		t.Fatal("declines not recorded, or an open recorded")
	}

	allowed.Store(true)
	send(grant(f.bundle, strings.Repeat("e", 32), "unit-1", hour))
	var conn *wire.Conn
	select {
	case conn = <-f.tunnels:
	case <-time.After(10 * time.Second):
		t.Fatal("no tunnel")
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	var once sync.Once
	client := &http.Client{Transport: &http.Transport{Protocols: &protos, DialContext: func(context.Context, string, string) (net.Conn, error) {
		var c net.Conn = nil
		once.Do(func() { c = conn })
		if c == nil {
			return nil, errors.New("used")
		}
		return c, nil
	}}}
	res, err := client.Get("http://unit/units/unit-1/console/extensions")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "console for alice at /extensions" {
		t.Fatalf("through the tunnel: %q", body)
	}
	opened := ev.find(audit.MaintenanceOpen)
	if opened == nil || opened.Target != "centre/alice" || !strings.Contains(opened.Detail, strings.Repeat("e", 32)) {
		t.Fatalf("open record: %+v", opened)
	}
	allowed.Store(false)
	waitFor(t, "session closed", func() bool { return ev.find(audit.MaintenanceClose) != nil })
	if c := ev.find(audit.MaintenanceClose); !strings.Contains(c.Detail, "switched maintenance access off") || !strings.Contains(c.Detail, "1 requests") {
		t.Fatalf("close record: %+v", c)
	}
	if _, err := client.Get("http://unit/units/unit-1/console/extensions"); err == nil {
		t.Fatal("the tunnel still serves after the office switched maintenance off")
	}
}
