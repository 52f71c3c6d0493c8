package centre

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/console"
	"github.com/sekisho/sekisho/internal/credential"
)

// Operator is a person logged in to the fleet dashboard.
type Operator struct {
	Name, Role string
}

// Operator roles. There is no default account and no default password:
// each operator is added with `sekisho centre operator add` (or by an
// admin in the dashboard) and sets its own password and second factor
// through a one-time link.
const (
	OperatorAdmin  = "admin"  // push bundles, revoke units, open maintenance sessions, add operators
	OperatorViewer = "viewer" // see only
)

var operatorRank = map[string]int{OperatorViewer: 0, OperatorAdmin: 1}

// Dashboard lifetimes.
const (
	SetupLinkLife    = time.Hour        // an operator's setup link
	DashIdleTimeout  = 30 * time.Minute // a session nobody used for this long ends
	DashAbsoluteLife = 12 * time.Hour   // and every session ends this long after login
	// dashCookie differs from the unit console's cookie name: cookies
	// are not kept apart by port, and a console and a dashboard on one
	// host must not overwrite each other's sessions.
	dashCookie = "sekisho_centre_session"
	// touchEvery is how stale a session's last-seen time may get before
	// a request writes it again: one write a minute per session rather
	// than one for each five-second refresh of the overview.
	touchEvery = time.Minute
)

// NewOperator adds operator name with role and returns its one-time
// setup link on host (the dashboard's HOST:PORT), valid for
// SetupLinkLife: there the operator chooses a password and enrols a
// second factor, and only then can log in. Only the SHA-256 of the
// link's token is stored. Refusals are *admin.FieldError naming "name"
// or "role".
func NewOperator(ctx context.Context, st *Store, name, role, host string, now time.Time) (setupURL string, expires time.Time, err error) {
	if !credential.ValidName(name) {
		return "", time.Time{}, &admin.FieldError{Field: "name", Msg: fmt.Sprintf("%q: 2 to 32 characters: lower-case letters, digits, - _ .", name)}
	}
	if _, ok := operatorRank[role]; !ok {
		return "", time.Time{}, &admin.FieldError{Field: "role", Msg: fmt.Sprintf("%q: want admin (push bundles, revoke units, open maintenance sessions, add operators) or viewer (see only)", role)}
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return "", time.Time{}, fmt.Errorf("centre: setup token: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(tok)
	expires = now.Add(SetupLinkLife)
	if err := st.AddOperator(ctx, name, role, hashToken(secret), now, expires); err != nil {
		if errors.Is(err, ErrOperatorExists) {
			return "", time.Time{}, &admin.FieldError{Field: "name", Msg: name + " exists: delete it first (sekisho centre operator del " + name + ") to give it a new setup link", Err: ErrOperatorExists}
		}
		return "", time.Time{}, err
	}
	u := url.URL{Scheme: "http", Host: host, Path: "/setup", RawQuery: url.Values{"token": {secret}}.Encode()}
	return u.String(), expires, nil
}

// hashToken is what the store keeps of a setup token or a session
// cookie: a copy of the database opens no session and sets up no
// operator.
func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

func newSessionToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// sealTOTP seals an operator's TOTP secret with the operator key
// (AES-256-GCM), bound to the operator's name: a stolen database yields
// no second factor, and a sealed secret copied onto another operator's
// row does not open.
func (k *Keys) sealTOTP(name, secret string) (string, error) {
	aead, err := k.totpAEAD()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("centre: seal second factor: %w", err)
	}
	return base64.StdEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(secret), []byte("totp:"+name))), nil
}

func (k *Keys) openTOTP(name, sealed string) (string, error) {
	aead, err := k.totpAEAD()
	if err != nil {
		return "", err
	}
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < aead.NonceSize() {
		return "", errors.New("centre: sealed second factor unreadable")
	}
	p, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte("totp:"+name))
	if err != nil {
		return "", fmt.Errorf("centre: second factor of %s does not open (was %s replaced?): %w", name, OperatorKeyFile, err)
	}
	return string(p), nil
}

func (k *Keys) totpAEAD() (cipher.AEAD, error) {
	if len(k.operatorKey) != 32 {
		return nil, errors.New("centre: no operator key loaded")
	}
	b, err := aes.NewCipher(k.operatorKey)
	if err != nil {
		return nil, fmt.Errorf("centre: operator key: %w", err)
	}
	return cipher.NewGCM(b)
}

// validTOTPSecret: base32 of at least 128 bits. The setup form sends the
// secret back; a short one would make codes guessable.
func validTOTPSecret(s string) bool {
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(s))
	return err == nil && len(b) >= 16
}

// otpauthURL is what an authenticator app scans; the issuer tells the
// centre's entry apart from a unit console's.
func otpauthURL(name, secret string) string {
	const issuer = "sekisho-centre"
	v := url.Values{"secret": {secret}, "issuer": {issuer}, "algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}}
	return "otpauth://totp/" + url.PathEscape(issuer+":"+name) + "?" + v.Encode()
}

// dashErr is a refusal with its HTTP status and the form field at fault.
type dashErr struct {
	code        int
	field, msg  string
	retryAfterS int
}

func (e *dashErr) fieldErrors() map[string]string { return map[string]string{e.field: e.msg} }

var errDashLogin = &dashErr{code: http.StatusUnauthorized, msg: "wrong name, password or code"}

// dashLogin checks a password and a TOTP code and starts a session. A
// wrong password and a wrong code get the same answer and both count
// towards the lockout, so neither can be guessed apart from the other.
func (s *Server) dashLogin(ctx context.Context, name, password, code, peer string) (string, Operator, *dashErr) {
	now := s.dash.now()
	o, err := s.st.operator(ctx, name)
	known := err == nil && o.SetUp
	hash := dummyHash
	if known {
		hash = o.hash
	}
	// The hash is checked even for unknown names and locked operators:
	// the time taken tells a guesser nothing about which names exist.
	match, _ := console.CheckPassword(hash, password)
	if (known && now.Before(o.LockedUntil)) || (!known && s.dash.ghosts.Locked(name, now)) {
		// Stops guessing while locked: not even a right password passes.
		return "", Operator{}, &dashErr{code: http.StatusTooManyRequests, msg: "too many failed logins; try again later", retryAfterS: 60}
	}
	failed := func(why string) (string, Operator, *dashErr) {
		if known {
			if err := s.st.operatorFailed(ctx, o.Name, now, credential.LockFor); err != nil {
				s.log.Error("centre: dashboard: count a failed login", "err", err)
			}
		} else {
			s.dash.ghosts.Fail(name, now)
		}
		s.logAction(ctx, Operator{Name: cleanText(name, 32)}, "login-failure", "dashboard", "from "+peer+": "+why)
		return "", Operator{}, errDashLogin
	}
	if !known || !match {
		return failed("wrong name or password")
	}
	secret, err := s.keys.openTOTP(o.Name, o.totpSealed)
	if err != nil {
		s.log.Error("centre: dashboard: a second factor does not open", "operator", o.Name, "err", err)
		return failed("second factor unreadable")
	}
	step := console.TOTPStep(secret, code, now)
	// A code is good once: its step must be after the last one accepted
	// (checked again by the UPDATE, so two logins racing with one code
	// cannot both pass). Stops a code seen over a shoulder, or captured,
	// from being used again.
	if step == 0 || step <= o.totpStep {
		return failed("wrong or used code")
	}
	if ok, err := s.st.acceptLogin(ctx, o.Name, step, now); err != nil || !ok {
		return failed("wrong or used code")
	}
	tok, err := s.newDashSession(ctx, o.Name, now)
	if err != nil {
		s.log.Error("centre: dashboard: start a session", "err", err)
		return "", Operator{}, &dashErr{code: http.StatusInternalServerError, msg: "could not start a session"}
	}
	op := Operator{Name: o.Name, Role: o.Role}
	s.logAction(ctx, op, "login", "dashboard", "from "+peer)
	return tok, op, nil
}

// dummyHash is checked for unknown names, so a login for a name that is
// not an operator costs what a wrong password costs (no timing oracle).
var dummyHash = console.HashPassword("not a password anyone has")

func (s *Server) newDashSession(ctx context.Context, name string, now time.Time) (string, error) {
	// Old sessions go when a new one starts: the table stays small.
	if err := s.st.expireSessions(ctx, now.Add(-DashIdleTimeout), now.Add(-DashAbsoluteLife)); err != nil {
		s.log.Warn("centre: dashboard: expire sessions", "err", err)
	}
	tok, err := newSessionToken()
	if err != nil {
		return "", err
	}
	return tok, s.st.putSession(ctx, hashToken(tok), name, now)
}

// setSessionCookie: HttpOnly (no script could read it, and the pages
// have none), SameSite=Strict (another site's page cannot make the
// browser send it: a second wall against cross-site requests besides
// the origin check), Secure (never sent over a network in the clear;
// browsers accept it on loopback), and no longer than a session lives.
func setSessionCookie(w http.ResponseWriter, tok string) {
	http.SetCookie(w, &http.Cookie{Name: dashCookie, Value: tok, Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(DashAbsoluteLife / time.Second)})
}

func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: dashCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// dashSession finds the live session of r and its operator, whose role
// must be at least min; code is 0, or 401 (no session: log in), 403
// (role too low; op is filled) or 500.
func (s *Server) dashSession(r *http.Request, min string) (op Operator, code int) {
	c, err := r.Cookie(dashCookie)
	if err != nil || c.Value == "" {
		return op, http.StatusUnauthorized
	}
	ctx, now := r.Context(), s.dash.now()
	th := hashToken(c.Value)
	se, err := s.st.session(ctx, th)
	if errors.Is(err, ErrNotFound) {
		return op, http.StatusUnauthorized
	}
	if err != nil {
		s.log.Error("centre: dashboard: read session", "err", err)
		return op, http.StatusInternalServerError
	}
	// Stops a cookie left in an unattended browser, or stolen, from
	// working for ever.
	if now.Sub(se.seen) > DashIdleTimeout || now.Sub(se.created) > DashAbsoluteLife {
		s.st.deleteSession(ctx, th)
		return op, http.StatusUnauthorized
	}
	// The operator and its role are read on every request: a deleted
	// operator, or one whose role changed, is stopped at once.
	o, err := s.st.operator(ctx, se.operator)
	if err != nil || !o.SetUp {
		return op, http.StatusUnauthorized
	}
	op = Operator{Name: o.Name, Role: o.Role}
	want, ok := operatorRank[min]
	if have, known := operatorRank[o.Role]; !ok || !known || have < want {
		return op, http.StatusForbidden
	}
	if now.Sub(se.seen) > touchEvery {
		if err := s.st.touchSession(ctx, th, now); err != nil {
			s.log.Warn("centre: dashboard: touch session", "err", err)
		}
	}
	return op, 0
}

// dashAuthed wraps a dashboard handler so that it runs only with a live
// session of an operator whose role is at least min: without one, a GET
// goes to the login page and anything else is refused (401); a role too
// low gets the 403 page.
func (s *Server) dashAuthed(min string, h func(http.ResponseWriter, *http.Request, Operator)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		op, code := s.dashSession(r, min)
		switch code {
		case 0:
			h(w, r, op)
		case http.StatusUnauthorized:
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			s.render(w, r, code, "login", dashPage{Title: s.tr(r, "login.title"),
				Errors: map[string]string{"": s.tr(r, "err.session")}, Data: loginData{}})
		case http.StatusForbidden:
			s.render(w, r, code, "message", dashPage{Op: &op, Title: "403", Errors: map[string]string{"": s.tr(r, "err.role")}})
		default:
			http.Error(w, "the dashboard cannot read its database; see the centre's log", http.StatusInternalServerError)
		}
	}
}

// logAction appends an operator's action to the operators' log (shown
// on /log) and the centre's log. A failure to store it is logged, not
// returned: the action has happened.
func (s *Server) logAction(ctx context.Context, op Operator, action, target, detail string) {
	e := LogEntry{At: s.dash.now().UTC(), Operator: cleanText(op.Name, 64), Action: cleanText(action, 64),
		Target: cleanText(target, 128), Detail: cleanText(detail, 512)}
	s.log.Info("centre: operator action", "operator", e.Operator, "action", e.Action, "target", e.Target, "detail", e.Detail)
	if err := s.st.AppendLog(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("centre: operator log", "err", err)
	}
}

// setupFor returns the operator whose live setup token tok is. Every
// live token is compared, in constant time: the time taken tells a
// guesser nothing about how near a guess came.
func (s *Server) setupFor(ctx context.Context, tok string) (name, hash string, err error) {
	ps, err := s.st.pendingSetups(ctx, s.dash.now())
	if err != nil {
		return "", "", err
	}
	want := []byte(hashToken(strings.TrimSpace(tok)))
	for _, p := range ps {
		if subtle.ConstantTimeCompare([]byte(p.hash), want) == 1 {
			name, hash = p.name, p.hash
		}
	}
	if name == "" {
		return "", "", ErrNotFound
	}
	return name, hash, nil
}

// errSetupLink answers an unknown, used and expired setup link alike.
var errSetupLink = &dashErr{code: http.StatusForbidden, field: "token",
	msg: "this setup link is unknown, used or expired: ask an admin for a new one (sekisho centre operator del NAME, then add)"}

// completeSetup sets the password and second factor of the operator the
// setup token is for, spends the token, and starts a session.
func (s *Server) completeSetup(ctx context.Context, tok, password, secret, code, peer string) (string, Operator, *dashErr) {
	name, hash, err := s.setupFor(ctx, tok)
	if errors.Is(err, ErrNotFound) {
		return "", Operator{}, errSetupLink
	}
	if err != nil {
		s.log.Error("centre: dashboard: setup", "err", err)
		return "", Operator{}, &dashErr{code: http.StatusInternalServerError, msg: "could not read the setup links"}
	}
	// The unit console's password rule: long, not the name, not built
	// on a common password. Stops guessable passwords.
	if err := credential.CheckChosen("", password, name); err != nil {
		return "", Operator{Name: name}, &dashErr{code: http.StatusBadRequest, field: "password", msg: err.Error()}
	}
	if !validTOTPSecret(secret) {
		return "", Operator{Name: name}, &dashErr{code: http.StatusBadRequest, field: "totp_secret", msg: "missing or not a base32 secret of at least 128 bits: reload the page"}
	}
	now := s.dash.now()
	step := console.TOTPStep(secret, code, now)
	if step == 0 {
		return "", Operator{Name: name}, &dashErr{code: http.StatusBadRequest, field: "code", msg: "the code does not match: scan the QR code again and type the 6 digits the app shows now"}
	}
	sealed, err := s.keys.sealTOTP(name, secret)
	if err != nil {
		s.log.Error("centre: dashboard: seal a second factor", "err", err)
		return "", Operator{Name: name}, &dashErr{code: http.StatusInternalServerError, msg: "could not seal the second factor"}
	}
	// The step of the code just used is stored as the last accepted:
	// the same code cannot then log in.
	ok, err := s.st.completeSetup(ctx, name, hash, console.HashPassword(password), sealed, step, now)
	if err != nil {
		s.log.Error("centre: dashboard: setup", "err", err)
		return "", Operator{Name: name}, &dashErr{code: http.StatusInternalServerError, msg: "could not store the operator"}
	}
	if !ok {
		return "", Operator{}, errSetupLink
	}
	o, err := s.st.operator(ctx, name)
	if err != nil {
		return "", Operator{}, &dashErr{code: http.StatusInternalServerError, msg: "could not read the operator"}
	}
	op := Operator{Name: o.Name, Role: o.Role}
	s.logAction(ctx, op, "setup", "operator "+name, "password and second factor set, from "+peer)
	tok, err = s.newDashSession(ctx, name, now)
	if err != nil {
		return "", op, &dashErr{code: http.StatusInternalServerError, msg: "set up; log in"}
	}
	return tok, op, nil
}

// peerOf is the request's source address, for the log.
func peerOf(r *http.Request) string {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap().String()
	}
	return r.RemoteAddr
}
