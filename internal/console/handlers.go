package console

import (
	"context"
	"encoding/json"
	"errors"
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
	s.mux.HandleFunc("POST /api/logout", s.logout)
	s.mux.HandleFunc("GET /api/me", s.authed(RoleMaintenance, s.me))
	s.mux.HandleFunc("GET /api/openapi.json", s.openapi)
	s.mux.HandleFunc("GET /api/totp/new", s.totpNew)
	s.mux.HandleFunc("GET /api/dashboard", s.authed(RoleMaintenance, view("the dashboard's figures", s.dashboard)))
	s.mux.HandleFunc("GET /api/extensions", s.authed(RoleMaintenance, view("extensions", s.extViews)))
	s.mux.HandleFunc("POST /api/extensions", s.authed(RoleAdmin, s.apiAddExtension))
	s.mux.HandleFunc("PATCH /api/extensions/{number}", s.authed(RoleAdmin, s.apiEditExtension))
	s.mux.HandleFunc("DELETE /api/extensions/{number}", s.authed(RoleAdmin, s.apiDeleteExtension))
	s.mux.HandleFunc("POST /api/extensions/{number}/unlock", s.authed(RoleOperator, s.unlock))
	s.mux.HandleFunc("GET /api/forwards", s.authed(RoleMaintenance, s.forwards))
	s.mux.HandleFunc("PUT /api/extensions/{number}/forwards/{when}", s.authed(RoleAdmin, s.apiSetForward))
	s.mux.HandleFunc("DELETE /api/extensions/{number}/forwards/{when}", s.authed(RoleAdmin, s.apiClearForward))
	s.mux.HandleFunc("GET /api/groups", s.authed(RoleMaintenance, s.groups))
	s.mux.HandleFunc("GET /api/voicemail", s.authed(RoleMaintenance, s.mailboxes))
	s.mux.HandleFunc("PUT /api/extensions/{number}/voicemail", s.authed(RoleAdmin, s.apiEnableMailbox))
	s.mux.HandleFunc("DELETE /api/extensions/{number}/voicemail", s.authed(RoleAdmin, s.apiDisableMailbox))
	s.mux.HandleFunc("GET /api/trunks", s.authed(RoleMaintenance, view("trunks", s.trunksData)))
	s.mux.HandleFunc("GET /api/policy", s.authed(RoleMaintenance, view("the policy", s.policyData)))
	s.mux.HandleFunc("PUT /api/profiles/{name}", s.authed(RoleAdmin, s.apiPutProfile))
	s.mux.HandleFunc("POST /api/rates", s.authed(RoleAdmin, s.apiSetRate))
	s.mux.HandleFunc("DELETE /api/rates/{prefix}", s.authed(RoleAdmin, s.apiDeleteRate))
	s.mux.HandleFunc("POST /api/policy/unfreeze", s.authed(RoleOperator, s.apiUnfreeze))
	s.mux.HandleFunc("POST /api/check-number", s.authed(RoleMaintenance, s.apiCheck))
	s.mux.HandleFunc("GET /api/bans", s.authed(RoleMaintenance, view("bans", s.activeBans)))
	s.mux.HandleFunc("DELETE /api/bans/{address}", s.authed(RoleOperator, s.unban))
	s.mux.HandleFunc("GET /api/cdr", s.authed(RoleMaintenance, s.apiCDR))
	s.mux.HandleFunc("GET /api/cdr.csv", s.authed(RoleMaintenance, s.apiCDRCSV))
	s.mux.HandleFunc("GET /api/audit", s.authed(RoleMaintenance, s.auditList))
	s.mux.HandleFunc("GET /api/audit/verify", s.authed(RoleMaintenance, s.apiAuditVerify))
	s.mux.HandleFunc("GET /api/settings", s.authed(RoleMaintenance, s.apiSettings))
	s.mux.HandleFunc("PUT /api/settings", s.authed(RoleAdmin, s.apiSetSettings))
	s.mux.HandleFunc("GET /api/users", s.authed(RoleAdmin, view("accounts", s.users)))
	s.mux.HandleFunc("POST /api/users", s.authed(RoleAdmin, s.addUser))
	s.mux.HandleFunc("DELETE /api/users/{username}", s.authed(RoleAdmin, s.apiDeleteUser))
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
	// One object and nothing after it: a second object smuggled behind
	// the first must not go unseen.
	if dec.More() {
		fail(w, http.StatusBadRequest, "", "the body must be one JSON object, with nothing after it")
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
	Token      string `json:"token,omitempty"`
	Username   string `json:"username"`
	Password   string `json:"password"`
	Role       string `json:"role,omitempty"`
	Code       string `json:"code,omitempty"`        // the TOTP code
	TOTPSecret string `json:"totp_secret,omitempty"` // when enrolling: the secret the code is from
}

// The bodies each operation takes: only its own fields, so a field sent
// to the wrong operation (a second factor to POST /api/users) is refused
// rather than silently dropped.
type setupInput struct {
	Token      string `json:"token"`
	Username   string `json:"username"`
	Password   string `json:"password"`
	TOTPSecret string `json:"totp_secret"`
	Code       string `json:"code"`
}

type loginInput struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	Code       string `json:"code"`
	TOTPSecret string `json:"totp_secret,omitempty"`
}

type userInput struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

// checkNew validates a new account's name and password and returns the
// field at fault with what to do, or "".
func checkNew(c credentials) (field, msg string) {
	if !credential.ValidName(c.Username) {
		return "username", "2 to 32 characters: lower-case letters, digits, - _ ."
	}
	if err := credential.CheckChosen(c.Username, c.Password); err != nil {
		return "password", err.Error()
	}
	return "", ""
}

// setup creates the first administrator with the one-time token, a
// password and a second factor enrolled in the same step: there is never
// an account without one.
func (s *Server) setup(w http.ResponseWriter, r *http.Request) {
	var in setupInput
	if !decode(w, r, &in) {
		return
	}
	c := credentials{Token: in.Token, Username: in.Username, Password: in.Password, TOTPSecret: in.TOTPSecret, Code: in.Code}
	a, ferr := s.doSetup(r.Context(), c)
	if ferr != nil {
		writeJSON(w, ferr.code, apiError{Error: ferr.Msg, Field: ferr.Field})
		return
	}
	// Setup proved the token, the password and the second factor: the
	// administrator is logged in (the code just used is spent).
	if tok, err := s.newSession(r.Context(), a.Username); err == nil {
		s.setSession(w, tok)
	}
	writeJSON(w, http.StatusCreated, map[string]string{"username": a.Username, "role": a.Role})
}

// httpError is a refusal with its HTTP status.
type httpError struct {
	code  int
	Field string
	Msg   string
}

func refused(code int, field, msg string) *httpError { return &httpError{code, field, msg} }

func (s *Server) doSetup(ctx context.Context, c credentials) (store.Admin, *httpError) {
	if err := s.checkSetup(ctx, c.Token); err != nil {
		return store.Admin{}, refused(http.StatusForbidden, "token", "the setup token is wrong, used or expired; restart sekisho for a new one")
	}
	if f, msg := checkNew(c); f != "" {
		return store.Admin{}, refused(http.StatusBadRequest, f, msg)
	}
	now := s.cfg.Now()
	if !validSecret(c.TOTPSecret) {
		return store.Admin{}, refused(http.StatusBadRequest, "totp_secret", "missing or not a base32 secret of at least 128 bits")
	}
	step := totpStep(c.TOTPSecret, c.Code, now)
	if step == 0 {
		return store.Admin{}, refused(http.StatusBadRequest, "code", "the code does not match: scan the QR code again and type the 6 digits the app shows now")
	}
	sealed, err := s.cfg.Vault.Seal(totpLabel(c.Username), []byte(c.TOTPSecret))
	if err != nil {
		return store.Admin{}, refused(http.StatusInternalServerError, "", "could not seal the second factor")
	}
	a := store.Admin{Username: c.Username, Hash: HashPassword(c.Password), Role: RoleAdmin, TOTPSealed: sealed, TOTPStep: step}
	ok, err := s.cfg.Store.AddFirstAdmin(ctx, a)
	if err != nil {
		return a, refused(http.StatusInternalServerError, "", "could not store the account")
	}
	if !ok {
		return a, refused(http.StatusForbidden, "token", "setup is done already")
	}
	// The token is spent.
	s.cfg.Store.SetSetting(ctx, settingSetupHash, "")
	s.record(evSetup, c.Username, "console", "first administrator created, second factor enrolled")
	return a, nil
}

// totpLabel binds a sealed TOTP secret to its account: a sealed secret
// copied onto another account's row does not open.
func totpLabel(username string) string { return "totp:" + username }

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var in loginInput
	if !decode(w, r, &in) {
		return
	}
	c := credentials{Username: in.Username, Password: in.Password, TOTPSecret: in.TOTPSecret, Code: in.Code}
	tok, a, herr := s.doLogin(r.Context(), c, peerOf(r))
	if herr != nil {
		if herr.code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "60")
		}
		body := map[string]any{"error": herr.Msg}
		if herr.Field != "" {
			body["field"] = herr.Field
		}
		if herr == errEnrol {
			body["enrol"] = true
		}
		writeJSON(w, herr.code, body)
		return
	}
	s.setSession(w, tok)
	writeJSON(w, http.StatusOK, map[string]string{"username": a.Username, "role": a.Role})
}

// errEnrol answers a right password on an account without a second
// factor: the person must enrol one (send totp_secret and code) first.
var errEnrol = refused(http.StatusUnauthorized, "code", "this account has no second factor yet: scan the QR code with an authenticator app and type its 6 digits")

var errLogin = refused(http.StatusUnauthorized, "", "wrong user name, password or code")

// doLogin checks a password and a TOTP code and starts a session. A wrong
// password and a wrong code get the same answer and both count towards
// the lockout, so neither can be guessed apart from the other.
func (s *Server) doLogin(ctx context.Context, c credentials, peer string) (string, store.Admin, *httpError) {
	now := s.cfg.Now()
	a, err := s.cfg.Store.Admin(ctx, c.Username)
	known := err == nil
	hash := dummyHash
	if known {
		hash = a.Hash
	}
	// The hash is checked even for unknown names and locked accounts:
	// the time taken tells nothing.
	match, _ := CheckPassword(hash, c.Password)
	if (known && now.Before(a.LockedUntil)) || (!known && s.ghosts.Locked(c.Username, now)) {
		return "", a, refused(http.StatusTooManyRequests, "", "too many failed logins; try again later")
	}
	failed := func() (string, store.Admin, *httpError) {
		if known {
			s.cfg.Store.SetAdminLock(ctx, a.Username, a.Failures+1, now.Add(credential.LockFor(a.Failures+1)))
		} else {
			s.ghosts.Fail(c.Username, now)
		}
		if s.cfg.Evidence != nil {
			if rec, ok := s.cfg.Evidence.(interface{ Note(audit.Event) }); ok {
				rec.Note(audit.Event{Type: evLoginFailure, Source: peer, Target: c.Username, Detail: "wrong user name, password or code"})
			}
		}
		return "", a, errLogin
	}
	if !known || !match {
		return failed()
	}
	// Refused before the second factor is touched: a switched-off vendor
	// account neither enrols nor spends a code.
	if a.Role == RoleMaintenance && !s.maintenanceAllowed(ctx) {
		return "", a, refused(http.StatusForbidden, "", "maintenance access is switched off by the office")
	}
	if a.TOTPSealed == nil {
		// The password is right and there is no second factor yet:
		// enrol one now, or stop here.
		if c.TOTPSecret == "" {
			return "", a, errEnrol
		}
		if !validSecret(c.TOTPSecret) {
			return "", a, refused(http.StatusBadRequest, "totp_secret", "not a base32 secret of at least 128 bits")
		}
		step := totpStep(c.TOTPSecret, c.Code, now)
		if step == 0 {
			return "", a, refused(http.StatusBadRequest, "code", "the code does not match: scan the QR code again and type the 6 digits the app shows now")
		}
		sealed, err := s.cfg.Vault.Seal(totpLabel(a.Username), []byte(c.TOTPSecret))
		if err != nil {
			return "", a, refused(http.StatusInternalServerError, "", "could not seal the second factor")
		}
		if ok, err := s.cfg.Store.EnrolTOTP(ctx, a.Username, sealed, step); err != nil || !ok {
			return failed()
		}
		s.record(audit.ConfigChange, a.Username, "console user "+a.Username, "second factor enrolled")
	} else {
		secret, err := s.cfg.Vault.Open(totpLabel(a.Username), a.TOTPSealed)
		if err != nil {
			s.cfg.Log.Error("console: a second factor does not open", "user", a.Username, "err", err)
			return failed()
		}
		step := totpStep(string(secret), c.Code, now)
		// A code is good once: the step must be after the last one used.
		if step == 0 || step <= a.TOTPStep {
			return failed()
		}
		if ok, err := s.cfg.Store.AcceptTOTPStep(ctx, a.Username, step); err != nil || !ok {
			return failed()
		}
	}
	s.cfg.Store.SetAdminLock(ctx, a.Username, 0, time.Time{})
	tok, err := s.newSession(ctx, a.Username)
	if err != nil {
		return "", a, refused(http.StatusInternalServerError, "", "could not start a session")
	}
	s.record(evLogin, a.Username, "console", "from "+peer)
	return tok, a, nil
}

func (s *Server) newSession(ctx context.Context, username string) (string, error) {
	tok := randomToken()
	return tok, s.cfg.Store.PutSession(ctx, tokenHash(tok), username, s.cfg.Now())
}

func (s *Server) setSession(w http.ResponseWriter, tok string) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: tok, Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(AbsoluteTimeout / time.Second)})
}

func peerOf(r *http.Request) string {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap().String()
	}
	return r.RemoteAddr
}

var rank = map[string]int{RoleMaintenance: 0, RoleOperator: 1, RoleAdmin: 2}

// session finds the live session of r and its account, with a role at
// least min. The maintenance role ranks lowest (view only) and is refused
// entirely while the office has it switched off.
func (s *Server) session(r *http.Request, min string) (store.Admin, []byte, *httpError) {
	if rm, ok := remoteOf(r.Context()); ok {
		return s.remoteSession(r.Context(), rm, min)
	}
	c, err := r.Cookie(cookieName)
	if err != nil {
		return store.Admin{}, nil, refused(http.StatusUnauthorized, "", "log in first")
	}
	ctx := r.Context()
	th := tokenHash(c.Value)
	se, err := s.cfg.Store.Session(ctx, th)
	now := s.cfg.Now()
	if err != nil || now.Sub(se.Seen) > IdleTimeout || now.Sub(se.Created) > AbsoluteTimeout {
		if err == nil {
			s.cfg.Store.DeleteSession(ctx, th)
		}
		return store.Admin{}, nil, refused(http.StatusUnauthorized, "", "session ended; log in again")
	}
	a, err := s.cfg.Store.Admin(ctx, se.Username)
	if err != nil {
		return a, nil, refused(http.StatusUnauthorized, "", "account gone; log in again")
	}
	if a.Role == RoleMaintenance && !s.maintenanceAllowed(ctx) {
		return a, nil, refused(http.StatusForbidden, "", "maintenance access is switched off by the office")
	}
	if rank[a.Role] < rank[min] {
		return a, nil, refused(http.StatusForbidden, "", "your role ("+a.Role+") may not do this")
	}
	s.cfg.Store.TouchSession(ctx, th, now)
	return a, th, nil
}

// remoteSession is the vendor's operator in a maintenance session: the
// maintenance role, as long as the office allows it (read on every
// request: switching it off stops the very next one).
func (s *Server) remoteSession(ctx context.Context, rm remote, min string) (store.Admin, []byte, *httpError) {
	a := store.Admin{Username: "centre/" + rm.operator, Role: RoleMaintenance}
	if !s.maintenanceAllowed(ctx) {
		return a, nil, refused(http.StatusForbidden, "", "maintenance access is switched off by the office")
	}
	if rank[a.Role] < rank[min] {
		return a, nil, refused(http.StatusForbidden, "", "your role ("+a.Role+") may not do this")
	}
	return a, nil, nil
}

// authed wraps an API handler so that it runs only with a live session of
// a role at least min.
func (s *Server) authed(min string, h func(http.ResponseWriter, *http.Request, store.Admin)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, _, herr := s.session(r, min)
		if herr != nil {
			fail(w, herr.code, herr.Field, herr.Msg)
			return
		}
		h(w, r, a)
	}
}

// logout ends the session of the cookie, whatever its role or state: the
// vendor can always leave, even while maintenance is switched off.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		fail(w, http.StatusUnauthorized, "", "log in first")
		return
	}
	s.cfg.Store.DeleteSession(r.Context(), tokenHash(c.Value))
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, map[string]string{})
}

func (s *Server) me(w http.ResponseWriter, _ *http.Request, a store.Admin) {
	writeJSON(w, http.StatusOK, map[string]string{"username": a.Username, "role": a.Role})
}

func (s *Server) unbanAddr(ctx context.Context, actor, address string) *httpError {
	addr, err := netip.ParseAddr(address)
	if err != nil {
		return refused(http.StatusBadRequest, "address", "not an IP address")
	}
	if err := s.cfg.Store.Unban(ctx, addr.Unmap().String(), s.cfg.Now()); errors.Is(err, store.ErrNotFound) {
		return refused(http.StatusNotFound, "address", "no ban of "+addr.String())
	} else if err != nil {
		return refused(http.StatusInternalServerError, "", "could not unban")
	}
	s.record(audit.Unban, actor, addr.Unmap().String(), "unbanned in the console")
	return nil
}

func (s *Server) unban(w http.ResponseWriter, r *http.Request, a store.Admin) {
	if herr := s.unbanAddr(r.Context(), a.Username, r.PathValue("address")); herr != nil {
		fail(w, herr.code, herr.Field, herr.Msg)
		return
	}
	a2, _ := netip.ParseAddr(r.PathValue("address"))
	writeJSON(w, http.StatusOK, map[string]string{"address": a2.Unmap().String()})
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

func (s *Server) createUser(ctx context.Context, actor string, c credentials) *httpError {
	if _, ok := rank[c.Role]; !ok {
		return refused(http.StatusBadRequest, "role", "admin, operator or maintenance")
	}
	if f, msg := checkNew(c); f != "" {
		return refused(http.StatusBadRequest, f, msg)
	}
	err := s.cfg.Store.AddAdmin(ctx, store.Admin{Username: c.Username, Hash: HashPassword(c.Password), Role: c.Role})
	if errors.Is(err, store.ErrExists) {
		return refused(http.StatusConflict, "username", "taken")
	}
	if err != nil {
		return refused(http.StatusInternalServerError, "", "could not store the account")
	}
	s.record(audit.ConfigChange, actor, "console user "+c.Username, "created with role "+c.Role)
	return nil
}

func (s *Server) addUser(w http.ResponseWriter, r *http.Request, a store.Admin) {
	var in userInput
	if !decode(w, r, &in) {
		return
	}
	c := credentials{Username: in.Username, Password: in.Password, Role: in.Role}
	if herr := s.createUser(r.Context(), a.Username, c); herr != nil {
		fail(w, herr.code, herr.Field, herr.Msg)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"username": c.Username, "role": c.Role})
}
