// Package centre is the vendor's side of the maintenance link: it enrols
// units (PBXs in offices) with one-time tokens, issues their client
// certificates from its own CA, holds one mutual-TLS HTTP/2 stream per
// unit, pushes signed policy bundles down those streams, and keeps what
// the units report: their figures, their acknowledgements, and their
// alerts, which it forwards to webhooks and by email.
//
// The units always dial out (see package wire): nothing on a unit
// listens for the vendor. The centre's state lives in SQLite in its data
// directory, or in PostgreSQL shared by several centre replicas; a bundle
// pushed through any of them (or by `sekisho centre push` from a shell)
// reaches every stream within PollEvery.
package centre

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/sekisho/sekisho/internal/wire"
)

// HealthPath answers 200 while the centre serves; no authentication.
const HealthPath = "/v1/health"

// DefaultListen is where the centre listens unless told otherwise.
const DefaultListen = "127.0.0.1:7443"

// Config is a centre's configuration.
type Config struct {
	Data   string // data directory: keys, and centre.db when DSN is empty
	DSN    string // postgres://... or "" for SQLite in Data
	Listen string // host:port of the TLS listener
	Name   string // host name (or IP) units reach the centre by: in its certificate

	// ConsoleListen is the fleet dashboard's HOST:PORT (plain HTTP, as
	// the unit console's); "" for none. Loopback, or one address with
	// AdminNetworks, never the units' (CheckConsoleListen). dash.go.
	ConsoleListen string
	AdminNetworks []netip.Prefix // who besides loopback may reach the dashboard

	Webhooks   []string // each new alert is POSTed, signed, to each
	SMTP       string   // host:port of a mail relay; "" for no mail
	SMTPFrom   string
	AlertEmail []string

	Log *slog.Logger

	// Zero values take the defaults; tests shorten them.
	PollEvery   time.Duration // 500 ms: how often the bundles table is looked at
	PingEvery   time.Duration // 15 s
	HelloWithin time.Duration // 30 s: a stream that says no Hello by then is closed
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.PollEvery <= 0 {
		c.PollEvery = 500 * time.Millisecond
	}
	if c.PingEvery <= 0 {
		c.PingEvery = 15 * time.Second
	}
	if c.HelloWithin <= 0 {
		c.HelloWithin = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Server is a running centre. Safe for concurrent use.
type Server struct {
	cfg     Config
	st      *Store
	keys    *Keys
	log     *slog.Logger
	hub     *hub
	notify  *Notifier
	tunnels *tunnels
	dash    dashState // the fleet dashboard's (dash.go)
	heads   headCache
}

// headCache is the newest bundle of each group ("" for every unit), as
// the poll last read it.
type headCache struct {
	mu sync.Mutex
	m  map[string]Bundle
}

func (h *headCache) set(group string, b Bundle) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]Bundle{}
	}
	h.m[group] = b
}

// newest is the newest bundle a unit of group is to have, as cached;
// ok is false when the poll has not read one yet.
func (h *headCache) newest(group string) (b Bundle, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	all, okAll := h.m[""]
	own, okOwn := h.m[group]
	switch {
	case okAll && okOwn && own.Seq > all.Seq, !okAll && okOwn:
		return own, true
	case okAll:
		return all, true
	}
	return Bundle{}, false
}

// New returns a centre over an open store and loaded keys.
func New(st *Store, keys *Keys, cfg Config) (*Server, error) {
	cfg.defaults()
	if err := CheckConsoleListen(cfg.ConsoleListen, cfg.Listen, cfg.AdminNetworks); err != nil {
		return nil, err
	}
	n, err := NewNotifier(st, keys.WebhookKey, cfg.Webhooks, Mail{Addr: cfg.SMTP, From: cfg.SMTPFrom, To: cfg.AlertEmail}, cfg.Log)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, st: st, keys: keys, log: cfg.Log, hub: newHub(), notify: n, tunnels: newTunnels()}, nil
}

// Handler routes the centre's paths.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc(wire.EnrolPath, s.enrol)
	mux.HandleFunc(wire.StreamPath, s.stream)
	mux.HandleFunc("POST "+wire.TunnelPath+"{session}", s.tunnel)
	return mux
}

// TLSConfig is the listener's: TLS 1.3 only, the centre's certificate
// (with its CA, which enrolling units pin), and client certificates
// verified against the CA when given. They are not required at the
// handshake, since enrolment comes without one; the stream refuses a
// request without one.
func (s *Server) TLSConfig() (*tls.Config, error) {
	cert, err := s.keys.ServerCert(s.cfg.Data, s.cfg.Name, s.cfg.Listen)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.keys.CA)
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}

// Serve serves on ln (plain TCP: TLS is added here) until ctx ends,
// then closes every stream and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	tc, err := s.TLSConfig()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dash, err := s.startDash(ctx, cancel) // ends the centre if it fails
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         tc,
		ReadHeaderTimeout: 10 * time.Second, // a slow client cannot hold connections open headerless
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		// Streams derive from ctx: when it ends, every stream ends, so
		// Shutdown does not wait on them.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.poll(ctx) })
	wg.Go(func() { s.notify.Run(ctx) })
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err = <-errc:
		cancel()
	case <-ctx.Done():
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = srv.Shutdown(sctx)
		scancel()
		if err != nil {
			srv.Close()
		}
		<-errc
		err = nil
	}
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if derr := dash.stop(ctx); err == nil {
		err = derr
	}
	return err
}

// Run opens the centre's store and keys as cfg says and serves until
// ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	st, err := OpenStore(ctx, cfg.Data, cfg.DSN)
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := LoadKeys(cfg.Data)
	if err != nil {
		return err
	}
	s, err := New(st, keys, cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("centre: --listen %s: %w", cfg.Listen, err)
	}
	s.log.Info("centre: serving", "listen", ln.Addr().String(), "name", cfg.Name, "db", st.Backend(),
		"ca_fingerprint", keys.CAFingerprint(), "bundle_key", keys.BundlePublic())
	err = s.Serve(ctx, ln)
	s.log.Info("centre: stopped")
	return err
}

// Revoke revokes unit id and ends its stream at once, if this centre
// holds it (another replica ends its own within PollEvery).
func (s *Server) Revoke(ctx context.Context, id string) error {
	if err := s.st.RevokeUnit(ctx, id, time.Now()); err != nil {
		return err
	}
	s.hub.cut(id, ErrRevoked)
	s.log.Warn("centre: unit revoked", "unit", id)
	return nil
}

// Online tells whether unit id has a live stream to this centre.
func (s *Server) Online(id string) bool { return s.hub.has(id) }

// poll looks at the bundles table every PollEvery, waking the streams of
// each group with a new bundle, and ends the streams of units revoked
// by another process. Errors are logged when they start and stop, not
// every half second.
func (s *Server) poll(ctx context.Context) {
	t := time.NewTicker(s.cfg.PollEvery)
	defer t.Stop()
	heads := map[string]uint64{}
	failing := false
	for {
		err := s.pollOnce(ctx, heads)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			s.log.Error("centre: poll the database", "err", err)
			failing = true
		case err == nil && failing:
			s.log.Info("centre: database reachable again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) pollOnce(ctx context.Context, heads map[string]uint64) error {
	now, err := s.st.GroupHeads(ctx)
	if err != nil {
		return err
	}
	for g, seq := range now {
		if heads[g] != seq {
			// Read once here for every stream it wakes: a push to 10,000
			// units is one query, not 10,000.
			b, err := s.st.BundleBySeq(ctx, seq)
			if err != nil {
				return err
			}
			s.heads.set(g, b)
			heads[g] = seq
			s.hub.wake(g)
		}
	}
	if s.hub.empty() {
		return nil
	}
	revoked, err := s.st.RevokedUnits(ctx)
	if err != nil {
		return err
	}
	for _, id := range s.hub.ids() {
		if revoked[id] {
			s.log.Warn("centre: unit revoked; its stream is ended", "unit", id)
			s.hub.cut(id, ErrRevoked)
		}
	}
	return nil
}

// conn is one live stream.
type conn struct {
	unit, group string
	cancel      context.CancelCauseFunc
	wake        chan struct{}     // a bundle for the group may be newer
	ctl         chan wire.Message // to write to the unit (maintenance grants)
}

// hub is the set of live streams, one per unit.
type hub struct {
	mu    sync.Mutex
	conns map[string]*conn
}

func newHub() *hub { return &hub{conns: map[string]*conn{}} }

// errReplaced ends a stream when the same unit opens another.
var errReplaced = errors.New("centre: the unit opened a new stream")

// add registers c, ending a stream the same unit had (a unit that
// reconnects after its network dropped: the old stream is dead).
func (h *hub) add(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.conns[c.unit]; old != nil {
		old.cancel(errReplaced)
	}
	h.conns[c.unit] = c
}

func (h *hub) remove(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conns[c.unit] == c {
		delete(h.conns, c.unit)
	}
}

func (h *hub) cut(id string, cause error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.conns[id]; c != nil {
		c.cancel(cause)
		delete(h.conns, id)
	}
}

// send queues m for unit id's stream; false when it has none here or
// its queue is full.
func (h *hub) send(id string, m wire.Message) bool {
	h.mu.Lock()
	c := h.conns[id]
	h.mu.Unlock()
	if c == nil {
		return false
	}
	select {
	case c.ctl <- m:
		return true
	default:
		return false
	}
}

func (h *hub) has(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conns[id] != nil
}

func (h *hub) empty() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns) == 0
}

func (h *hub) ids() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]string, 0, len(h.conns))
	for id := range h.conns {
		ids = append(ids, id)
	}
	return ids
}

// wake nudges the streams a new bundle of group is for: that group's,
// or every one for a bundle without a group.
func (h *hub) wake(group string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		if group == "" || c.group == group {
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
	}
}
