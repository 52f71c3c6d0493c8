package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/wire"
)

// Maintenance sessions: the centre asks, over the stream, to open this
// unit's console for one operator; the unit checks the centre's
// signature on the grant and the office's maintenance switch, records
// the operator in its evidence, and opens a second request to the centre
// over the same outbound connection, on which it serves its console
// (HTTP/2 inside HTTP/2). The unit never listens for the vendor.

// checkSwitchEvery is how often an open session looks at the office's
// maintenance switch, to end the session once it is switched off (each
// request is refused at once anyway; this closes the tunnel too).
const checkSwitchEvery = 2 * time.Second

// maxSession bounds a session whatever its grant says.
const maxSession = 2 * time.Hour

// basePath is where the centre serves a unit's console.
func basePath(unit string) string { return "/units/" + unit + "/console" }

// maintain answers one grant: declined, or a tunnel served until it ends.
func (l *Link) maintain(ctx context.Context, client *http.Client, sg wire.SignedGrant, out chan<- wire.Message) {
	now := time.Now()
	g, err := sg.Verify(l.pub, l.joined.UnitID, now)
	decline := func(why string) {
		l.record(audit.MaintenanceDeclined, "centre/"+cleanName(g.Operator), fmt.Sprintf("session %s declined: %s (grant %s)", g.Session, why, sg.Hash()))
		l.cfg.Log.Warn("fleet: maintenance session declined", "session", g.Session, "operator", g.Operator, "why", why)
		select {
		case out <- wire.Message{Type: wire.TypeDeclined, Declined: &wire.Declined{Session: g.Session, Why: why}}:
		case <-ctx.Done():
		}
	}
	switch {
	case err != nil:
		// Stops a grant forged, meant for another unit, or replayed late.
		decline(err.Error())
		return
	case l.cfg.Console == nil || l.cfg.MaintenanceAllowed == nil:
		decline("this unit has no console to open")
		return
	case !l.cfg.MaintenanceAllowed(ctx):
		// The office's switch: the vendor comes in only when let in.
		decline("the office has maintenance access switched off")
		return
	}
	until := g.Expires
	if limit := now.Add(maxSession); until.After(limit) {
		until = limit
	}
	ctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.joined.Centre+wire.TunnelPath+g.Session, pr)
	if err != nil {
		decline(err.Error())
		return
	}
	res, err := client.Do(req)
	if err != nil {
		pw.Close()
		l.cfg.Log.Warn("fleet: maintenance tunnel not opened", "session", g.Session, "err", err)
		return
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		pw.Close()
		l.cfg.Log.Warn("fleet: the centre refused the maintenance tunnel", "session", g.Session, "status", res.Status)
		return
	}
	conn := wire.NewConn(res.Body, pw, nil, nil, wire.Addr("unit"), wire.Addr("centre"))
	who := "centre/" + cleanName(g.Operator)
	l.record(audit.MaintenanceOpen, who, fmt.Sprintf("session %s opened for operator %s until %s (grant %s, signed by the centre)",
		g.Session, g.Operator, until.UTC().Format(time.RFC3339), sg.Hash()))
	l.cfg.Log.Warn("fleet: maintenance session open", "session", g.Session, "operator", g.Operator)

	var requests atomic.Int64
	console := l.cfg.Console(g.Operator, basePath(l.joined.UnitID))
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			console.ServeHTTP(w, r)
		}),
		Protocols:         &protos,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       15 * time.Minute, // an operator gone quiet ends the session
		MaxHeaderBytes:    64 << 10,
	}
	var why atomic.Pointer[string] // why the unit closed it, if it did
	closeFor := func(reason string) {
		why.CompareAndSwap(nil, &reason)
		conn.Close()
	}
	go func() {
		t := time.NewTicker(checkSwitchEvery)
		defer t.Stop()
		for {
			select {
			case <-conn.Done():
				return
			case <-ctx.Done():
				reason := "the unit's link to the centre ended"
				if ctx.Err() == context.DeadlineExceeded {
					reason = "the grant expired"
				}
				closeFor(reason)
				return
			case <-t.C:
				if !l.cfg.MaintenanceAllowed(ctx) {
					closeFor("the office switched maintenance access off")
					return
				}
			}
		}
	}()
	srv.Serve(wire.Listen(conn))
	closeFor("the session ended at the centre or went idle")
	srv.Close()
	reason := *why.Load()
	l.record(audit.MaintenanceClose, who, fmt.Sprintf("session %s closed after %s and %d requests: %s",
		g.Session, time.Since(now).Round(time.Second), requests.Load(), reason))
	l.cfg.Log.Warn("fleet: maintenance session closed", "session", g.Session, "operator", g.Operator, "why", reason)
}

// cleanName keeps an operator's name printable for the evidence log.
func cleanName(s string) string {
	b, _ := json.Marshal(s)
	if len(b) >= 2 && string(b[1:len(b)-1]) == s {
		return s
	}
	return string(b)
}
