package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/store"
)

// Evidence types of the console.
const (
	evLogin        = "admin-login"
	evLoginFailure = "admin-login-failure" // aggregated per address and user
	evSetup        = "admin-setup"
)

func (s *Server) routes() {
	s.mux.HandleFunc("POST /api/setup", s.setup)
	s.mux.HandleFunc("POST /api/login", s.login)
	s.mux.HandleFunc("POST /api/logout", s.authed(RoleMaintenance, s.logout))
	s.mux.HandleFunc("GET /api/me", s.authed(RoleMaintenance, s.me))
	s.mux.HandleFunc("GET /api/extensions", s.authed(RoleMaintenance, s.extensions))
	s.mux.HandleFunc("POST /api/extensions/{number}/unlock", s.authed(RoleOperator, s.unlock))
	s.mux.HandleFunc("GET /api/bans", s.authed(RoleMaintenance, s.bans))
	s.mux.HandleFunc("DELETE /api/bans/{address}", s.authed(RoleOperator, s.unban))
	s.mux.HandleFunc("GET /api/audit", s.authed(RoleMaintenance, s.auditList))
	s.mux.HandleFunc("POST /api/users", s.authed(RoleAdmin, s.addUser))
}

// apiError is every error body: what is wrong, and with which field.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, field, msg string) {
	writeJSON(w, code, apiError{Error: msg, Field: field})
}

// decode reads a JSON body of at most 64 KiB into v, refusing unknown fields.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, http.StatusBadRequest, "", "the body must be a JSON object with the documented fields: "+err.Error())
		return false
	}
	return true
}

func (s *Server) record(typ, actor, target, detail string) {
	if s.cfg.Evidence != nil {
		s.cfg.Evidence.Record(audit.Event{Type: typ, Source: "console:" + actor, Target: target, Detail: detail})
	}
}

type credentials struct {
	Token    string `json:"token,omitempty"`
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role,omitempty"`
}

func validUsername(u string) bool {
	if len(u) < 2 || len(u) > 32 {
		return false
	}
	for _, c := range u {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// checkNew validates a new account's name and password, naming the field.
func checkNew(w http.ResponseWriter, c credentials) bool {
	if !validUsername(c.Username) {
		fail(w, http.StatusBadRequest, "username", "2 to 32 characters: lower-case letters, digits, - _ .")
		return false
	}
	if err := credential.CheckChosen(c.Username, c.Password); err != nil {
		fail(w, http.StatusBadRequest, "password", err.Error())
		return false
	}
	return true
}

// setup creates the first administrator with the one-time token.
func (s *Server) setup(w http.ResponseWriter, r *http.Request) {
	var c credentials
	if !decode(w, r, &c) {
		return
	}
	ctx := r.Context()
	if err := s.checkSetup(ctx, c.Token); err != nil {
		fail(w, http.StatusForbidden, "token", "the setup token is wrong, used or expired; restart sekisho for a new one")
		return
	}
	if !checkNew(w, c) {
		return
	}
	ok, err := s.cfg.Store.AddFirstAdmin(ctx, store.Admin{Username: c.Username, Hash: HashPassword(c.Password), Role: RoleAdmin})
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not store the account")
		return
	}
	if !ok {
		fail(w, http.StatusForbidden, "token", "setup is done already")
		return
	}
	// The token is spent.
	s.cfg.Store.SetSetting(ctx, settingSetupHash, "")
	s.record(evSetup, c.Username, "console", "first administrator created")
	writeJSON(w, http.StatusCreated, map[string]string{"username": c.Username, "role": RoleAdmin})
}

// lockFor is how long an account stays locked after n failed logins in a
// row: none for the first two (typos), then 2 s doubling up to 15 min.
func lockFor(n int) time.Duration {
	if n < 3 {
		return 0
	}
	d := 2 * time.Second
	for i := 3; i < n && d < 15*time.Minute; i++ {
		d *= 2
	}
	return min(d, 15*time.Minute)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var c credentials
	if !decode(w, r, &c) {
		return
	}
	ctx := r.Context()
	now := s.cfg.Now()
	peer := peerOf(r)
	a, err := s.cfg.Store.Admin(ctx, c.Username)
	known := err == nil
	hash := dummyHash
	if known {
		hash = a.Hash
	}
	// The hash is checked even for unknown names and locked accounts:
	// the time taken tells nothing.
	match, _ := CheckPassword(hash, c.Password)
	switch {
	case known && now.Before(a.LockedUntil):
		w.Header().Set("Retry-After", fmt.Sprint(int(a.LockedUntil.Sub(now).Seconds())+1))
		fail(w, http.StatusTooManyRequests, "", "too many failed logins; try again later")
		return
	case !known || !match:
		if known {
			s.cfg.Store.SetAdminLock(ctx, a.Username, a.Failures+1, now.Add(lockFor(a.Failures+1)))
		}
		if s.cfg.Evidence != nil {
			if rec, ok := s.cfg.Evidence.(interface{ Note(audit.Event) }); ok {
				rec.Note(audit.Event{Type: evLoginFailure, Source: peer, Target: c.Username, Detail: "wrong user name or password"})
			}
		}
		fail(w, http.StatusUnauthorized, "", "wrong user name or password")
		return
	case a.Role == RoleMaintenance && !s.cfg.MaintenanceAllowed():
		fail(w, http.StatusForbidden, "", "maintenance access is switched off by the office")
		return
	}
	s.cfg.Store.SetAdminLock(ctx, a.Username, 0, time.Time{})
	tok := randomToken()
	if err := s.cfg.Store.PutSession(ctx, tokenHash(tok), a.Username, now); err != nil {
		fail(w, http.StatusInternalServerError, "", "could not start a session")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: tok, Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(AbsoluteTimeout / time.Second)})
	s.record(evLogin, a.Username, "console", "from "+peer)
	writeJSON(w, http.StatusOK, map[string]string{"username": a.Username, "role": a.Role})
}

func peerOf(r *http.Request) string {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap().String()
	}
	return r.RemoteAddr
}

var rank = map[string]int{RoleMaintenance: 0, RoleOperator: 1, RoleAdmin: 2}

type ctxKey struct{}

// authed wraps h so that it runs only with a live session of a role at
// least min. The maintenance role ranks lowest here (view only) and is
// refused entirely while the office has it switched off.
func (s *Server) authed(min string, h func(http.ResponseWriter, *http.Request, store.Admin)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(cookieName)
		if err != nil {
			fail(w, http.StatusUnauthorized, "", "log in first")
			return
		}
		ctx := r.Context()
		th := tokenHash(c.Value)
		se, err := s.cfg.Store.Session(ctx, th)
		now := s.cfg.Now()
		if err != nil || now.Sub(se.Seen) > IdleTimeout || now.Sub(se.Created) > AbsoluteTimeout {
			if err == nil {
				s.cfg.Store.DeleteSession(ctx, th)
			}
			fail(w, http.StatusUnauthorized, "", "session ended; log in again")
			return
		}
		a, err := s.cfg.Store.Admin(ctx, se.Username)
		if err != nil {
			fail(w, http.StatusUnauthorized, "", "account gone; log in again")
			return
		}
		if a.Role == RoleMaintenance && !s.cfg.MaintenanceAllowed() {
			fail(w, http.StatusForbidden, "", "maintenance access is switched off by the office")
			return
		}
		if rank[a.Role] < rank[min] {
			fail(w, http.StatusForbidden, "", "your role ("+a.Role+") may not do this")
			return
		}
		s.cfg.Store.TouchSession(ctx, th, now)
		h(w, r.WithContext(context.WithValue(ctx, ctxKey{}, th)), a)
	}
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ store.Admin) {
	if th, ok := r.Context().Value(ctxKey{}).([]byte); ok {
		s.cfg.Store.DeleteSession(r.Context(), th)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, map[string]string{})
}

func (s *Server) me(w http.ResponseWriter, _ *http.Request, a store.Admin) {
	writeJSON(w, http.StatusOK, map[string]string{"username": a.Username, "role": a.Role})
}

type extView struct {
	Number     string `json:"number"`
	Name       string `json:"name,omitempty"`
	Registered bool   `json:"registered"`
	Suspended  string `json:"suspended,omitempty"`
}

func (s *Server) extensions(w http.ResponseWriter, r *http.Request, _ store.Admin) {
	es, err := s.cfg.Store.Extensions(r.Context())
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not read extensions")
		return
	}
	out := make([]extView, 0, len(es))
	for _, e := range es {
		out = append(out, extView{Number: e.Number, Name: e.Name, Registered: s.cfg.Registered(e.Number), Suspended: e.SuspendReason})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) unlock(w http.ResponseWriter, r *http.Request, a store.Admin) {
	n := r.PathValue("number")
	was, err := s.cfg.Store.Unlock(r.Context(), n, s.cfg.Now())
	if errors.Is(err, store.ErrNotFound) {
		fail(w, http.StatusNotFound, "number", "no extension "+n)
		return
	}
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not unlock")
		return
	}
	s.record(audit.Unlock, a.Username, "extension "+n, fmt.Sprintf("unlocked in the console (was suspended: %v)", was))
	writeJSON(w, http.StatusOK, map[string]any{"number": n, "was_suspended": was})
}

func (s *Server) bans(w http.ResponseWriter, r *http.Request, _ store.Admin) {
	rows, err := s.cfg.Store.Bans(r.Context())
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not read bans")
		return
	}
	now := s.cfg.Now()
	out := []store.Ban{}
	for _, b := range rows {
		if b.Active(now) {
			out = append(out, b)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) unban(w http.ResponseWriter, r *http.Request, a store.Admin) {
	addr, err := netip.ParseAddr(r.PathValue("address"))
	if err != nil {
		fail(w, http.StatusBadRequest, "address", "not an IP address")
		return
	}
	if err := s.cfg.Store.Unban(r.Context(), addr.Unmap().String(), s.cfg.Now()); errors.Is(err, store.ErrNotFound) {
		fail(w, http.StatusNotFound, "address", "no ban of "+addr.String())
		return
	} else if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not unban")
		return
	}
	s.record(audit.Unban, a.Username, addr.String(), "unbanned in the console")
	writeJSON(w, http.StatusOK, map[string]string{"address": addr.String()})
}

func (s *Server) auditList(w http.ResponseWriter, r *http.Request, _ store.Admin) {
	q := r.URL.Query()
	rs, err := s.cfg.Store.AuditRecords(r.Context(), store.AuditFilter{Type: q.Get("type"), Source: q.Get("source"), Limit: 200, Newest: true})
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not read the evidence log")
		return
	}
	if rs == nil {
		rs = []store.AuditRecord{}
	}
	writeJSON(w, http.StatusOK, rs)
}

func (s *Server) addUser(w http.ResponseWriter, r *http.Request, a store.Admin) {
	var c credentials
	if !decode(w, r, &c) {
		return
	}
	if _, ok := rank[c.Role]; !ok {
		fail(w, http.StatusBadRequest, "role", "admin, operator or maintenance")
		return
	}
	if !checkNew(w, c) {
		return
	}
	err := s.cfg.Store.AddAdmin(r.Context(), store.Admin{Username: c.Username, Hash: HashPassword(c.Password), Role: c.Role})
	if errors.Is(err, store.ErrExists) {
		fail(w, http.StatusConflict, "username", "taken")
		return
	}
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not store the account")
		return
	}
	s.record(audit.ConfigChange, a.Username, "console user "+c.Username, "created with role "+c.Role)
	writeJSON(w, http.StatusCreated, map[string]string{"username": c.Username, "role": c.Role})
}
