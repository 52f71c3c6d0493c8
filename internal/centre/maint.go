package centre

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/sekisho/sekisho/internal/wire"
)

// Maintenance sessions: an operator opens a unit's console from the
// fleet dashboard. The centre signs a grant naming the operator and
// sends it down the unit's stream; the unit, if the office allows it,
// opens a tunnel request back over its own connection and serves its
// console on it; the centre proxies the operator's requests through.
// Nothing on the unit listens for any of this.

// GrantLife is how long a maintenance session may last.
const GrantLife = time.Hour

// openWithin bounds the wait for the unit to open its tunnel.
const openWithin = 15 * time.Second

// errNotConnected is a unit with no stream to this centre.
var errNotConnected = errors.New("the unit is not connected to this centre now")

// pendingTunnel is a grant sent, waiting for the unit's tunnel or its
// refusal.
type pendingTunnel struct {
	unit     string
	conn     chan *wire.Conn
	declined chan string
}

// maintSession is an open tunnel to one unit for one operator.
type maintSession struct {
	id, unit, operator string
	conn               *wire.Conn
	proxy              *httputil.ReverseProxy
}

type maintKey struct{ operator, unit string }

// tunnels holds the grants waiting and the sessions open.
type tunnels struct {
	mu       sync.Mutex
	pending  map[string]*pendingTunnel
	sessions map[maintKey]*maintSession
}

func newTunnels() *tunnels {
	return &tunnels{pending: map[string]*pendingTunnel{}, sessions: map[maintKey]*maintSession{}}
}

func (t *tunnels) takePending(id string) *pendingTunnel {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pending[id]
	delete(t.pending, id)
	return p
}

func (t *tunnels) session(k maintKey) *maintSession {
	t.mu.Lock()
	defer t.mu.Unlock()
	ms := t.sessions[k]
	if ms != nil {
		select {
		case <-ms.conn.Done():
			delete(t.sessions, k)
			return nil
		default:
		}
	}
	return ms
}

func (t *tunnels) drop(k maintKey, ms *maintSession) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sessions[k] == ms {
		delete(t.sessions, k)
	}
	ms.conn.Close()
}

// declined hands a unit's refusal to the grant waiting for it.
func (t *tunnels) declined(unit string, d wire.Declined) {
	t.mu.Lock()
	p := t.pending[d.Session]
	t.mu.Unlock()
	if p == nil || p.unit != unit {
		return
	}
	select {
	case p.declined <- cleanText(d.Why, 512):
	default:
	}
}

// tunnel handles POST /v1/tunnel/{session}: the unit's side of a
// session it was asked to open.
func (s *Server) tunnel(w http.ResponseWriter, r *http.Request) {
	u, code, err := s.authUnit(r)
	if err != nil {
		s.log.Warn("centre: tunnel refused", "remote", r.RemoteAddr, "unit", u.ID, "why", err.Error())
		http.Error(w, "refused", code)
		return
	}
	id := r.PathValue("session")
	p := s.tunnels.takePending(id)
	// Only the unit the grant was for may answer it: stops another unit
	// (or its stolen certificate) from taking an operator's session and
	// showing them a console of its own making.
	if p == nil || p.unit != u.ID {
		s.log.Warn("centre: tunnel for no grant of this unit", "unit", u.ID, "session", id)
		http.Error(w, "no such session for this unit", http.StatusNotFound)
		return
	}
	rc := http.NewResponseController(w)
	rc.EnableFullDuplex()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	conn := wire.NewConn(r.Body, w, rc.Flush, nil, wire.Addr("centre"), wire.Addr("unit "+u.ID))
	select {
	case p.conn <- conn:
	default: // the operator stopped waiting
		return
	}
	select {
	case <-conn.Done():
	case <-r.Context().Done():
		conn.Close()
	}
}

// openSession sends a signed grant to the unit and waits for its tunnel.
func (s *Server) openSession(ctx context.Context, op Operator, unit string) (*maintSession, error) {
	u, err := s.st.Unit(ctx, unit)
	if err != nil {
		return nil, err
	}
	if !u.Revoked.IsZero() {
		return nil, ErrRevoked
	}
	b := make([]byte, 16)
	rand.Read(b)
	now := time.Now()
	g := wire.Grant{Session: hex.EncodeToString(b), Unit: unit, Operator: op.Name, Created: now, Expires: now.Add(GrantLife)}
	sg, err := wire.SignGrant(s.keys.Bundle, g)
	if err != nil {
		return nil, err
	}
	p := &pendingTunnel{unit: unit, conn: make(chan *wire.Conn), declined: make(chan string, 1)}
	s.tunnels.mu.Lock()
	s.tunnels.pending[g.Session] = p
	s.tunnels.mu.Unlock()
	defer s.tunnels.takePending(g.Session)
	if !s.hub.send(unit, wire.Message{Type: wire.TypeOpen, Open: &sg}) {
		return nil, errNotConnected
	}
	s.logAction(ctx, op, "maintenance-open", unit, "session "+g.Session+" asked for")
	t := time.NewTimer(openWithin)
	defer t.Stop()
	var conn *wire.Conn
	select {
	case conn = <-p.conn:
	case why := <-p.declined:
		s.logAction(ctx, op, "maintenance-declined", unit, "session "+g.Session+": "+why)
		return nil, &declinedError{why}
	case <-t.C:
		return nil, fmt.Errorf("the unit did not open the session within %v", openWithin)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ms := &maintSession{id: g.Session, unit: unit, operator: op.Name, conn: conn}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	var dialled sync.Once
	tr := &http.Transport{
		Protocols: &protos,
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			var c net.Conn
			dialled.Do(func() { c = conn })
			if c == nil {
				return nil, errors.New("the maintenance session has ended")
			}
			return c, nil
		},
	}
	ms.proxy = &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", "unit", "unit"
			// The operator's session cookie is the centre's, never the
			// unit's: a unit (or whoever took one over) must not receive
			// a credential that opens the whole fleet's dashboard.
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Del("Authorization")
		},
		ModifyResponse: func(res *http.Response) error {
			// Nor may a unit set cookies on the centre's origin: that
			// would let it plant a session (fixation) or clobber one.
			res.Header.Del("Set-Cookie")
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.tunnels.drop(maintKey{op.Name, unit}, ms)
			http.Error(w, "the maintenance session with this unit ended; reload to open a new one", http.StatusBadGateway)
		},
	}
	go func() {
		<-conn.Done()
		tr.CloseIdleConnections()
	}()
	s.logAction(ctx, op, "maintenance-opened", unit, "session "+g.Session+" until "+g.Expires.UTC().Format(time.RFC3339))
	return ms, nil
}

type declinedError struct{ why string }

func (e *declinedError) Error() string { return "the unit declined: " + e.why }

// maintenanceProxy serves /units/{id}/console/...: the unit's console
// through its maintenance session, opened on first use.
func (s *Server) maintenanceProxy(w http.ResponseWriter, r *http.Request, op Operator) {
	unit := r.PathValue("id")
	k := maintKey{op.Name, unit}
	ms := s.tunnels.session(k)
	if ms == nil {
		var err error
		ms, err = s.openSession(r.Context(), op, unit)
		var de *declinedError
		switch {
		case errors.Is(err, ErrNotFound):
			http.Error(w, "no such unit", http.StatusNotFound)
			return
		case errors.As(err, &de):
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		case err != nil:
			s.log.Warn("centre: maintenance session not opened", "unit", unit, "operator", op.Name, "err", err)
			http.Error(w, "the maintenance session could not be opened: "+err.Error(), http.StatusBadGateway)
			return
		}
		s.tunnels.mu.Lock()
		if old := s.tunnels.sessions[k]; old != nil {
			old.conn.Close()
		}
		s.tunnels.sessions[k] = ms
		s.tunnels.mu.Unlock()
	}
	ms.proxy.ServeHTTP(w, r)
}
