package fleet

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/wire"
)

// Evidence records what the link does. *audit.Recorder satisfies it.
type Evidence interface{ Record(audit.Event) }

// Store is what the link keeps: the bundle in force, the evidence log it
// reads alerts from, and its place in it. *store.Store satisfies it; the
// fleet benchmark gives simulated units an in-memory one, so that they run
// this very code for receiving and applying bundles.
type Store interface {
	FleetBundle(ctx context.Context) (store.FleetBundle, error)
	ApplyFleetBundle(ctx context.Context, b store.FleetBundle, rates []policy.Rate) error
	AuditRecords(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error)
	Setting(ctx context.Context, key, def string) (string, error)
	SetSetting(ctx context.Context, key, value string) error
}

// Config wires a link.
type Config struct {
	Dir      string
	Store    Store
	Policy   *policy.Book // reloaded as soon as a bundle is applied
	Evidence Evidence
	// Figures returns the unit's live figures; the link adds what it
	// knows (bundle applied, block).
	Figures     func(context.Context) wire.Status
	Version     string
	Log         *slog.Logger
	StatusEvery time.Duration // 5 s
	AlertEvery  time.Duration // 1 s
	// HoldAtMost bounds how long outside calls wait for the centre's
	// first word after a connection: the unit keeps working as a PBX
	// when the centre is slow or gone.
	HoldAtMost time.Duration // 10 s
	// RenewBefore is how long before its certificate expires the unit
	// asks for a new one.
	RenewBefore time.Duration // DefaultRenewBefore
	// Console is the unit's console for the centre's operator in a
	// maintenance session, served under base; nil: no sessions.
	Console func(operator, base string) http.Handler
	// MaintenanceAllowed is the office's switch for the vendor's access.
	MaintenanceAllowed func(context.Context) bool
}

// settingAlertSeq is the evidence record up to which alerts were sent.
const settingAlertSeq = "fleet-alert-seq"

// alertKinds are the evidence records the vendor sees at once.
var alertKinds = map[string]bool{
	audit.Suspension: true, audit.Freeze: true, audit.Ban: true, audit.PolicyDenial: true,
	audit.NewSource: true, audit.AuditFailure: true, audit.ExportFailure: true, audit.BundleRefused: true,
}

// Link is the unit's outbound stream to the centre.
type Link struct {
	cfg     Config
	joined  Joined
	tls     *tls.Config
	pub     ed25519.PublicKey
	holding atomic.Pointer[string]
	online  atomic.Bool
	mu      sync.Mutex // one bundle applied at a time
	certMu  sync.Mutex // tls's certificate and joined, changed by a renewal
}

// New loads the unit's fleet identity; ErrNotJoined when it has none.
func New(cfg Config) (*Link, error) {
	j, cert, err := Load(cfg.Dir)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(j.CA)) {
		return nil, fmt.Errorf("fleet: %s holds no CA certificate", ConfigFile)
	}
	kb, err := hex.DecodeString(j.BundleKey)
	if err != nil || len(kb) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("fleet: %s holds no valid bundle key", ConfigFile)
	}
	u, err := url.Parse(j.Centre)
	if err != nil {
		return nil, fmt.Errorf("fleet: centre %q: %w", j.Centre, err)
	}
	if cfg.StatusEvery <= 0 {
		cfg.StatusEvery = 5 * time.Second
	}
	if cfg.AlertEvery <= 0 {
		cfg.AlertEvery = time.Second
	}
	if cfg.HoldAtMost <= 0 {
		cfg.HoldAtMost = 10 * time.Second
	}
	if cfg.RenewBefore <= 0 {
		cfg.RenewBefore = DefaultRenewBefore
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	l := &Link{cfg: cfg, joined: j, pub: ed25519.PublicKey(kb), tls: &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: u.Hostname(),
	}}
	return l, nil
}

// UnitID is the unit's identity in the fleet.
func (l *Link) UnitID() string { return l.joined.UnitID }

// Online tells whether the stream is up.
func (l *Link) Online() bool { return l.online.Load() }

// Holding returns why outside calls must wait, or "". From the moment
// the stream is up until the centre says the unit is in sync (at most
// HoldAtMost): a unit coming back applies the newest bundle before it
// places another outside call.
func (l *Link) Holding() string {
	if p := l.holding.Load(); p != nil {
		return *p
	}
	return ""
}

func (l *Link) hold(why string) {
	if why == "" {
		l.holding.Store(nil)
		return
	}
	l.holding.Store(&why)
}

// Run keeps the stream up until ctx ends, reconnecting with backoff
// (1 s doubling to a minute, with jitter so a fleet does not reconnect in
// step after the centre restarts).
func (l *Link) Run(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		err := l.session(ctx)
		l.online.Store(false)
		l.hold("")
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		l.cfg.Log.Warn("fleet: link to the centre down; the unit works on", "err", err, "retry", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff + rand.N(backoff/2+1)):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// session runs one stream until it fails or ctx ends.
func (l *Link) session(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	applied, err := l.cfg.Store.FleetBundle(ctx)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	out := make(chan wire.Message, 64)
	go func() {
		enc := json.NewEncoder(pw)
		for {
			select {
			case <-ctx.Done():
				pw.CloseWithError(ctx.Err())
				return
			case m := <-out:
				if err := enc.Encode(m); err != nil {
					cancel()
					return
				}
			}
		}
	}()
	out <- wire.Message{Type: wire.TypeHello, Hello: &wire.Hello{Version: l.cfg.Version, Applied: applied.Seq}}
	req, err := http.NewRequestWithContext(ctx, "POST", l.joined.Centre+wire.StreamPath, pr)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	tr := &http.Transport{TLSClientConfig: l.currentTLS(), ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	// One client for the stream and any maintenance tunnel: they share
	// the one outbound connection, so a tunnel reaches the very centre
	// replica that holds the stream.
	client := &http.Client{Transport: tr}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fleet: connect: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return fmt.Errorf("fleet: the centre refused the stream: %s %s", res.Status, b)
	}
	l.online.Store(true)
	l.hold("syncing with the vendor's centre")
	holdTimer := time.AfterFunc(l.cfg.HoldAtMost, func() { l.hold("") })
	defer holdTimer.Stop()
	l.cfg.Log.Info("fleet: link to the centre up", "centre", l.joined.Centre, "unit", l.joined.UnitID)
	go l.report(ctx, out)
	if m := l.renewRequest(time.Now()); m != nil {
		out <- *m
	}

	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		var m wire.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("fleet: a line from the centre: %w", err)
		}
		switch m.Type {
		case wire.TypeBundle:
			if m.Bundle == nil {
				continue
			}
			ack := l.Apply(ctx, *m.Bundle)
			select {
			case out <- wire.Message{Type: wire.TypeAck, Ack: &ack}:
			case <-ctx.Done():
			}
		case wire.TypeSynced:
			l.hold("")
		case wire.TypeRenewed:
			if m.Renewed != nil {
				if err := l.renewed(*m.Renewed); err != nil {
					l.cfg.Log.Error("fleet: certificate renewal", "err", err)
				}
			}
		case wire.TypeOpen:
			if m.Open != nil {
				go l.maintain(ctx, client, *m.Open, out)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("fleet: stream: %w", err)
	}
	return errors.New("fleet: the centre ended the stream")
}

// Apply verifies a bundle against the pinned key and puts it in force,
// whole, then reloads the policy so the very next call is decided by it.
// A bundle that fails is refused, recorded, and acknowledged as refused.
func (l *Link) Apply(ctx context.Context, sb wire.SignedBundle) wire.Ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	hash := sb.Hash()
	refuse := func(seq uint64, why string) wire.Ack {
		l.record(audit.BundleRefused, fmt.Sprintf("bundle %d", seq), why+" (hash "+hash+")")
		l.cfg.Log.Warn("fleet: bundle refused", "seq", seq, "why", why)
		return wire.Ack{Seq: seq, Hash: hash, OK: false, Error: why}
	}
	b, err := sb.Verify(l.pub)
	if err != nil {
		// Forged or corrupted: nothing in it is believed or applied. The
		// seq it claims is only echoed, so the centre can show which of
		// its bundles was refused.
		var claimed struct {
			Seq uint64 `json:"seq"`
		}
		json.Unmarshal(sb.Body, &claimed)
		return refuse(claimed.Seq, err.Error())
	}
	fb := store.FleetBundle{Seq: b.Seq, Hash: hash, Body: sb.Body, Sig: sb.Sig, BlockIntl: b.BlockInternational, Note: b.Note, Applied: time.Now()}
	err = l.cfg.Store.ApplyFleetBundle(ctx, fb, b.Rates)
	if errors.Is(err, store.ErrStale) {
		if cur, cerr := l.cfg.Store.FleetBundle(ctx); cerr == nil && cur.Seq == b.Seq && cur.Hash == hash {
			return wire.Ack{Seq: b.Seq, Hash: hash, OK: true} // the same one again: in force already
		}
		return refuse(b.Seq, err.Error())
	}
	if err != nil {
		return refuse(b.Seq, "could not store it: "+err.Error())
	}
	if l.cfg.Policy != nil {
		if err := l.cfg.Policy.Reload(ctx); err != nil {
			l.cfg.Log.Error("fleet: policy reload after a bundle", "err", err)
		}
	}
	detail := "block international: " + strconv.FormatBool(b.BlockInternational)
	if b.Rates != nil {
		detail += fmt.Sprintf("; rate table replaced (%d prefixes)", len(b.Rates))
	}
	if b.Note != "" {
		detail += "; note: " + b.Note
	}
	l.record(audit.BundleApplied, fmt.Sprintf("bundle %d", b.Seq), detail+" (hash "+hash+")")
	l.cfg.Log.Info("fleet: bundle applied", "seq", b.Seq, "block_international", b.BlockInternational, "hash", hash)
	return wire.Ack{Seq: b.Seq, Hash: hash, OK: true}
}

func (l *Link) record(typ, target, detail string) {
	if l.cfg.Evidence != nil {
		l.cfg.Evidence.Record(audit.Event{Type: typ, Source: "centre", Target: target, Detail: detail})
	}
}

// report sends the figures every StatusEvery and new alerts every
// AlertEvery until ctx ends.
func (l *Link) report(ctx context.Context, out chan<- wire.Message) {
	st := time.NewTicker(l.cfg.StatusEvery)
	at := time.NewTicker(l.cfg.AlertEvery)
	defer st.Stop()
	defer at.Stop()
	cursor := l.alertCursor(ctx)
	send := func(m wire.Message) bool {
		select {
		case out <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !send(l.status(ctx)) {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-st.C:
			if !send(l.status(ctx)) {
				return
			}
		case <-at.C:
			rs, err := l.cfg.Store.AuditRecords(ctx, store.AuditFilter{AfterSeq: cursor, Limit: 500})
			if err != nil {
				continue
			}
			for _, r := range rs {
				cursor = r.Seq
				if !alertKinds[r.Type] {
					continue
				}
				if !send(wire.Message{Type: wire.TypeAlert, Alert: &wire.Alert{Seq: r.Seq, At: r.At, Kind: r.Type,
					Subject: r.Target, Detail: r.Detail + sourceOf(r), Count: r.Count}}) {
					return
				}
			}
			if len(rs) > 0 {
				l.cfg.Store.SetSetting(ctx, settingAlertSeq, strconv.FormatInt(cursor, 10))
			}
		}
	}
}

func sourceOf(r store.AuditRecord) string {
	if r.Source == "" {
		return ""
	}
	return " (from " + r.Source + ")"
}

// alertCursor is where to resume alerts: a little before the last one
// sent, since those sent just before a connection died may not have
// arrived. The centre keeps one copy of each (by unit and seq).
func (l *Link) alertCursor(ctx context.Context) int64 {
	v, _ := l.cfg.Store.Setting(ctx, settingAlertSeq, "")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		// First contact: start from now, not from the unit's whole past.
		rs, err := l.cfg.Store.AuditRecords(ctx, store.AuditFilter{Limit: 1, Newest: true})
		if err != nil || len(rs) == 0 {
			return 0
		}
		return rs[0].Seq
	}
	return max(0, n-100)
}

func (l *Link) status(ctx context.Context) wire.Message {
	var s wire.Status
	if l.cfg.Figures != nil {
		s = l.cfg.Figures(ctx)
	}
	s.At = time.Now().UTC()
	if fb, err := l.cfg.Store.FleetBundle(ctx); err == nil {
		s.Applied, s.Blocked = fb.Seq, fb.BlockIntl
	}
	if l.cfg.MaintenanceAllowed != nil && l.cfg.Console != nil {
		s.Maintenance = l.cfg.MaintenanceAllowed(ctx)
	}
	return wire.Message{Type: wire.TypeStatus, Status: &s}
}
