package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/vault"
)

// events is the evidence the console sent, in order.
type events struct {
	mu  sync.Mutex
	got []audit.Event
}

func (e *events) Record(ev audit.Event) { e.mu.Lock(); e.got = append(e.got, ev); e.mu.Unlock() }
func (e *events) Note(ev audit.Event)   { e.mu.Lock(); e.got = append(e.got, ev); e.mu.Unlock() }

func (e *events) all() []audit.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]audit.Event(nil), e.got...)
}

func (e *events) last() audit.Event {
	all := e.all()
	if len(all) == 0 {
		return audit.Event{}
	}
	return all[len(all)-1]
}

// harness is a console on a fresh store with a settable clock. Every
// response it sees is held to openapi.json (status documented for the
// operation, JSON body valid against the documented schema).
type harness struct {
	t       *testing.T
	s       *Server
	st      *store.Store
	ev      *events
	now     time.Time
	token   string
	maint   bool
	reg     map[string]bool
	spec    *apiDoc
	cov     *coverage         // nil: not counted
	secrets map[string]string // user -> TOTP secret enrolled
	steps   map[string]int64  // user -> last TOTP step the harness used
}

// t0 is the harness's start: a fixed instant, so that runs are alike.
var t0 = time.Date(2026, 3, 2, 10, 0, 15, 0, time.UTC)

// newHarness starts a console on a fresh store; opts may change its
// configuration (the evidence recorder, for one).
func newHarness(t *testing.T, opts ...func(*Config)) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	v, err := vault.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, st: st, ev: &events{}, now: t0, reg: map[string]bool{}, spec: loadDoc(t),
		secrets: map[string]string{}, steps: map[string]int64{}}
	if h.token, err = Setup(ctx, st, h.now); err != nil || h.token == "" {
		t.Fatalf("setup token %q %v", h.token, err)
	}
	cfg := Config{Store: st, Evidence: h.ev, Now: func() time.Time { return h.now }, Vault: v,
		AdminNetworks:      []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		MaintenanceAllowed: func() bool { return h.maint },
		Registered:         func(ext string) bool { return h.reg[ext] },
		Calls:              func() int { return 3 },
		SIPAddress:         "192.0.2.5:5060"}
	for _, o := range opts {
		o(&cfg)
	}
	h.s = New(cfg)
	return h
}

// req is one request to the console.
type req struct {
	method, path, body string
	cookie             *http.Cookie
	peer               string      // RemoteAddr; loopback when ""
	header             http.Header // extra headers
}

// serve sends r and checks the response against openapi.json.
func (h *harness) serve(r req) *httptest.ResponseRecorder {
	h.t.Helper()
	hr := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	hr.RemoteAddr = "127.0.0.1:50000"
	if r.peer != "" {
		hr.RemoteAddr = r.peer
	}
	for k, vs := range r.header {
		for _, v := range vs {
			hr.Header.Add(k, v)
		}
	}
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.cookie != nil {
		hr.AddCookie(r.cookie)
	}
	w := httptest.NewRecorder()
	h.s.ServeHTTP(w, hr)
	for _, p := range h.spec.checkResponse(r.method, hr.URL.Path, w.Code, w.Header(), w.Body.Bytes(), h.cov) {
		h.t.Errorf("%s %s answered %d, which openapi.json does not allow: %s\nbody: %s", r.method, r.path, w.Code, p, w.Body)
	}
	return w
}

// do sends a request from loopback with cookie and body.
func (h *harness) do(method, path, body string, cookie *http.Cookie) *httptest.ResponseRecorder {
	h.t.Helper()
	return h.serve(req{method: method, path: path, body: body, cookie: cookie})
}

// js is v as JSON, for request bodies.
func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// decodeBody decodes w's JSON body into v or fails the test.
func decodeBody(t *testing.T, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("response body is not the JSON expected (%v): %s", err, w.Body)
	}
}

// errBody is every error answer.
type errBody struct {
	Error string `json:"error"`
	Field string `json:"field"`
	Enrol bool   `json:"enrol"`
}

// wantErr asserts that w is status code with an error body naming field
// ("" for none).
func wantErr(t *testing.T, what string, w *httptest.ResponseRecorder, code int, field string) {
	t.Helper()
	if w.Code != code {
		t.Fatalf("%s: status %d, want %d; body %s", what, w.Code, code, w.Body)
	}
	var e errBody
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
		t.Fatalf("%s: want a JSON error body, got %q", what, w.Body)
	}
	if e.Field != field {
		t.Fatalf("%s: field %q, want %q (error %q)", what, e.Field, field, e.Error)
	}
}

func sessionCookie(w *httptest.ResponseRecorder) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == cookieName && c.Value != "" {
			return c
		}
	}
	return nil
}

// code is the TOTP code of secret at the harness's clock.
func (h *harness) code(secret string) string {
	h.t.Helper()
	return codeAt(h.t, secret, h.now)
}

func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totpOpts)
	if err != nil {
		t.Fatalf("TOTP code: %v", err)
	}
	return c
}

// freshStep moves the clock to the next TOTP step when user's last code
// was from this one: a code is good once.
func (h *harness) freshStep(user string) {
	if last, ok := h.steps[user]; ok && h.now.Unix()/totpPeriod <= last {
		h.now = time.Unix((last+1)*totpPeriod, 0).UTC()
	}
	h.steps[user] = h.now.Unix() / totpPeriod
}

// newSecret asks the console for a secret to enrol user with.
func (h *harness) newSecret(user string) string {
	h.t.Helper()
	w := h.do("GET", "/api/totp/new?username="+url.QueryEscape(user), "", nil)
	var out struct {
		Secret string `json:"secret"`
		URL    string `json:"otpauth_url"`
		QR     string `json:"qr_svg"`
	}
	if w.Code != 200 {
		h.t.Fatalf("totp/new %s: %d %s", user, w.Code, w.Body)
	}
	decodeBody(h.t, w, &out)
	if !validSecret(out.Secret) || !strings.HasPrefix(out.QR, "<svg") || !strings.Contains(out.URL, "secret="+out.Secret) {
		h.t.Fatalf("totp/new %s: secret %q, url %q, qr %.20q", user, out.Secret, out.URL, out.QR)
	}
	return out.Secret
}

// login logs user in with password and a fresh code of the enrolled secret.
func (h *harness) login(user, pw string) *http.Cookie {
	h.t.Helper()
	sec, ok := h.secrets[user]
	if !ok {
		h.t.Fatalf("login %s: the harness enrolled no second factor for it (use enrol)", user)
	}
	h.freshStep(user)
	w := h.do("POST", "/api/login", js(map[string]string{"username": user, "password": pw, "code": h.code(sec)}), nil)
	if w.Code != 200 {
		h.t.Fatalf("login %s: %d %s", user, w.Code, w.Body)
	}
	c := sessionCookie(w)
	if c == nil {
		h.t.Fatalf("login %s: no session cookie", user)
	}
	return c
}

// enrol is the first login of an account an administrator made: the
// password alone is answered with enrol, then password, secret and code
// enrol the second factor and log in.
func (h *harness) enrol(user, pw string) *http.Cookie {
	h.t.Helper()
	w := h.do("POST", "/api/login", js(map[string]string{"username": user, "password": pw}), nil)
	var e errBody
	decodeBody(h.t, w, &e)
	if w.Code != 401 || !e.Enrol {
		h.t.Fatalf("first login of %s without a second factor: %d %s, want 401 with enrol", user, w.Code, w.Body)
	}
	sec := h.newSecret(user)
	h.freshStep(user)
	w = h.do("POST", "/api/login", js(map[string]string{"username": user, "password": pw, "totp_secret": sec, "code": h.code(sec)}), nil)
	if w.Code != 200 {
		h.t.Fatalf("enrolling %s: %d %s", user, w.Code, w.Body)
	}
	h.secrets[user] = sec
	c := sessionCookie(w)
	if c == nil {
		h.t.Fatalf("enrolling %s: no session cookie", user)
	}
	return c
}

const adminPW = "correct-horse-battery-9"

// setupAdmin creates the first administrator "office" and logs it in.
func (h *harness) setupAdmin() *http.Cookie {
	h.t.Helper()
	sec := h.newSecret("office")
	h.freshStep("office")
	w := h.do("POST", "/api/setup", js(map[string]string{"token": h.token, "username": "office", "password": adminPW,
		"totp_secret": sec, "code": h.code(sec)}), nil)
	if w.Code != 201 {
		h.t.Fatalf("setup: %d %s", w.Code, w.Body)
	}
	h.secrets["office"] = sec
	return h.login("office", adminPW)
}

// addUser has admin create an account; it has no second factor yet.
func (h *harness) addUser(admin *http.Cookie, user, pw, role string) {
	h.t.Helper()
	if w := h.do("POST", "/api/users", js(map[string]string{"username": user, "password": pw, "role": role}), admin); w.Code != 201 {
		h.t.Fatalf("add user %s: %d %s", user, w.Code, w.Body)
	}
}

const (
	operatorPW = "quiet-lantern-42-oak"
	vendorPW   = "amber-river-77-stone"
)

// staff is an office with an administrator, an operator (desk) and the
// vendor (maintenance), the last two enrolled; maintenance is allowed
// while the vendor enrols and switched back off after.
func (h *harness) staff() (admin, op, vendor *http.Cookie) {
	h.t.Helper()
	admin = h.setupAdmin()
	h.addUser(admin, "desk", operatorPW, RoleOperator)
	h.addUser(admin, "vendor", vendorPW, RoleMaintenance)
	op = h.enrol("desk", operatorPW)
	h.maint = true
	vendor = h.enrol("vendor", vendorPW)
	return admin, op, vendor
}

// hasSession tells whether the session of cookie c is in the store.
func (h *harness) hasSession(c *http.Cookie) bool {
	_, err := h.st.Session(context.Background(), tokenHash(c.Value))
	return err == nil
}

// TestSetupOnce: no account exists until the one-time token makes the
// first with a second factor; a wrong, reused or expired token, a weak
// password or a wrong code makes nothing.
func TestSetupOnce(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	sec := h.newSecret("office")
	body := func(tok, user, pw, secret, code string) string {
		return js(map[string]string{"token": tok, "username": user, "password": pw, "totp_secret": secret, "code": code})
	}
	noAccount := func(what string) {
		t.Helper()
		if n, err := h.st.AdminCount(ctx); err != nil || n != 0 {
			t.Fatalf("%s: %d accounts exist (%v), want none", what, n, err)
		}
	}
	wantErr(t, "wrong token", h.do("POST", "/api/setup", body("wrong", "office", adminPW, sec, h.code(sec)), nil), 403, "token")
	noAccount("wrong token")
	wantErr(t, "weak password", h.do("POST", "/api/setup", body(h.token, "office", "short", sec, h.code(sec)), nil), 400, "password")
	wantErr(t, "bad user name", h.do("POST", "/api/setup", body(h.token, "Office!", adminPW, sec, h.code(sec)), nil), 400, "username")
	wantErr(t, "no secret", h.do("POST", "/api/setup", body(h.token, "office", adminPW, "", h.code(sec)), nil), 400, "totp_secret")
	wantErr(t, "short secret", h.do("POST", "/api/setup", body(h.token, "office", adminPW, "JBSWY3DPEHPK3PXP", h.code(sec)), nil), 400, "totp_secret")
	wrong := fmt.Sprintf("%06d", (mustAtoi(t, h.code(sec))+1)%1000000)
	wantErr(t, "wrong code", h.do("POST", "/api/setup", body(h.token, "office", adminPW, sec, wrong), nil), 400, "code")
	wantErr(t, "no code", h.do("POST", "/api/setup", body(h.token, "office", adminPW, sec, ""), nil), 400, "code")
	// A code of another secret is a wrong code too.
	wantErr(t, "code of another secret", h.do("POST", "/api/setup", body(h.token, "office", adminPW, sec, h.code(NewTOTPSecret())), nil), 400, "code")
	noAccount("refused setups")

	h.freshStep("office")
	w := h.do("POST", "/api/setup", body(h.token, "office", adminPW, sec, h.code(sec)), nil)
	if w.Code != 201 {
		t.Fatalf("setup: %d %s", w.Code, w.Body)
	}
	var acct struct{ Username, Role string }
	decodeBody(t, w, &acct)
	if acct.Username != "office" || acct.Role != RoleAdmin {
		t.Fatalf("setup answered %+v, want office/admin", acct)
	}
	a, err := h.st.Admin(ctx, "office")
	if err != nil || a.Role != RoleAdmin || a.TOTPSealed == nil {
		t.Fatalf("account after setup: %+v %v, want an admin with a sealed second factor", a, err)
	}
	if strings.Contains(string(a.TOTPSealed), sec) {
		t.Fatal("the TOTP secret is stored in the clear")
	}
	if ev := h.ev.last(); ev.Type != evSetup || ev.Source != "console:office" {
		t.Errorf("setup evidence %+v, want %s from console:office", ev, evSetup)
	}
	for _, ev := range h.ev.all() {
		if strings.Contains(ev.Detail+ev.Target, sec) || strings.Contains(ev.Detail+ev.Target, adminPW) {
			t.Errorf("evidence holds a secret: %+v", ev)
		}
	}
	h.secrets["office"] = sec
	c := h.login("office", adminPW)
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie flags %+v, want HttpOnly, Secure, SameSite=Strict", c)
	}
	sec2 := h.newSecret("evil")
	wantErr(t, "reused token", h.do("POST", "/api/setup", body(h.token, "evil", adminPW+"x", sec2, h.code(sec2)), nil), 403, "token")
	if _, err := h.st.Admin(ctx, "evil"); err == nil {
		t.Fatal("a reused setup token made an account")
	}
	if tok, _ := Setup(ctx, h.st, h.now); tok != "" {
		t.Fatal("a setup token was made while an account exists")
	}

	h2 := newHarness(t)
	h2.now = h2.now.Add(SetupTokenLife + time.Minute)
	sec3 := h2.newSecret("office")
	wantErr(t, "expired token", h2.do("POST", "/api/setup", body(h2.token, "office", adminPW, sec3, h2.code(sec3)), nil), 403, "token")
	if n, _ := h2.st.AdminCount(ctx); n != 0 {
		t.Fatal("an expired token made an account")
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// TestTOTPNew: a fresh secret each time, with the otpauth URL an app
// reads and its QR code; a bad user name is refused.
func TestTOTPNew(t *testing.T) {
	h := newHarness(t)
	a, b := h.newSecret("office"), h.newSecret("office")
	if a == b {
		t.Fatal("two enrolment secrets alike")
	}
	w := h.do("GET", "/api/totp/new?username=office", "", nil)
	var out map[string]string
	decodeBody(t, w, &out)
	u, err := url.Parse(out["otpauth_url"])
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("issuer") != totpIssuer ||
		u.Query().Get("digits") != "6" || u.Query().Get("period") != "30" || u.Query().Get("algorithm") != "SHA1" {
		t.Fatalf("otpauth_url %q", out["otpauth_url"])
	}
	wantErr(t, "no user name", h.do("GET", "/api/totp/new", "", nil), 400, "username")
	wantErr(t, "bad user name", h.do("GET", "/api/totp/new?username=A%20B", "", nil), 400, "username")
}

// TestLoginLockout: wrong passwords and wrong codes lock the account with
// a growing delay; while locked even the right password and code are
// refused; an unknown user gets the wrong-password answer.
func TestLoginLockout(t *testing.T) {
	h := newHarness(t)
	h.setupAdmin()
	sec := h.secrets["office"]
	ctx := context.Background()
	loginBody := func(pw, code string) string {
		return js(map[string]string{"username": "office", "password": pw, "code": code})
	}
	h.freshStep("office")
	wantErr(t, "wrong password", h.do("POST", "/api/login", loginBody("nope-nope-nope-nope", h.code(sec)), nil), 401, "")
	wantErr(t, "wrong code", h.do("POST", "/api/login", loginBody(adminPW, "000000"), nil), 401, "")
	wantErr(t, "no code", h.do("POST", "/api/login", loginBody(adminPW, ""), nil), 401, "")
	if a, _ := h.st.Admin(ctx, "office"); a.Failures != 3 {
		t.Fatalf("failures after a wrong password and two wrong codes: %d, want 3 (a wrong code counts)", a.Failures)
	}
	w := h.do("POST", "/api/login", loginBody(adminPW, h.code(sec)), nil)
	wantErr(t, "locked, right password and code", w, 429, "")
	if w.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// When the lock ends, the same step's code works: the refusals did
	// not spend it.
	h.now = h.now.Add(3 * time.Second)
	if h.now.Unix()/totpPeriod != h.steps["office"] {
		t.Fatal("test clock: the lock ended in another step")
	}
	if w := h.do("POST", "/api/login", loginBody(adminPW, h.code(sec)), nil); w.Code != 200 {
		t.Fatalf("after the lock, the right password and code: %d %s", w.Code, w.Body)
	}
	if a, _ := h.st.Admin(ctx, "office"); a.Failures != 0 || h.now.Before(a.LockedUntil) {
		t.Fatalf("a login does not clear the failures: %+v", a)
	}
	wantErr(t, "unknown user", h.do("POST", "/api/login", js(map[string]string{"username": "nobody", "password": "nope", "code": "123456"}), nil), 401, "")
	for _, ev := range h.ev.all() {
		if ev.Type == evLoginFailure && ev.Source != "127.0.0.1" {
			t.Errorf("a failed login's evidence names %q, want the peer's address", ev.Source)
		}
	}
	if credential.LockFor(2) != 0 || credential.LockFor(3) != 2*time.Second || credential.LockFor(5) != 8*time.Second || credential.LockFor(100) != 15*time.Minute {
		t.Error("lockFor")
	}
}

// TestTOTPOnce: a code is good once; the same code again, even with the
// right password, is refused and counts as a failure; the next step's
// code works.
func TestTOTPOnce(t *testing.T) {
	h := newHarness(t)
	h.setupAdmin()
	sec := h.secrets["office"]
	// The code the harness logged in with, again, in the same step.
	body := js(map[string]string{"username": "office", "password": adminPW, "code": h.code(sec)})
	wantErr(t, "reused code", h.do("POST", "/api/login", body, nil), 401, "")
	if a, _ := h.st.Admin(context.Background(), "office"); a.Failures != 1 {
		t.Errorf("a reused code counts %d failures, want 1", a.Failures)
	}
	// The setup's code cannot log in either: setup spent its step.
	h2 := newHarness(t)
	sec2 := h2.newSecret("office")
	setupCode := h2.code(sec2)
	if w := h2.do("POST", "/api/setup", js(map[string]string{"token": h2.token, "username": "office", "password": adminPW, "totp_secret": sec2, "code": setupCode}), nil); w.Code != 201 {
		t.Fatalf("setup: %d %s", w.Code, w.Body)
	}
	wantErr(t, "setup's code reused", h2.do("POST", "/api/login", js(map[string]string{"username": "office", "password": adminPW, "code": setupCode}), nil), 401, "")
	// A code of the step before the last one used is refused too.
	h.now = h.now.Add(totpPeriod * time.Second)
	newer := h.code(sec)
	if w := h.do("POST", "/api/login", js(map[string]string{"username": "office", "password": adminPW, "code": newer}), nil); w.Code != 200 {
		t.Fatalf("fresh code: %d %s", w.Code, w.Body)
	}
	old := codeAt(t, sec, h.now.Add(-totpPeriod*time.Second)) // within the accepted skew, but older
	wantErr(t, "older code", h.do("POST", "/api/login", js(map[string]string{"username": "office", "password": adminPW, "code": old}), nil), 401, "")
}

// TestEnrolment: an account an administrator made has no second factor;
// its first login asks for one, a wrong code enrols nothing, and once
// enrolled the password alone no longer logs in.
func TestEnrolment(t *testing.T) {
	h := newHarness(t)
	admin := h.setupAdmin()
	ctx := context.Background()
	h.addUser(admin, "desk", operatorPW, RoleOperator)
	if a, _ := h.st.Admin(ctx, "desk"); a.TOTPSealed != nil {
		t.Fatal("a new account has a second factor before enrolling")
	}
	// A wrong password is not told apart by enrol.
	w := h.do("POST", "/api/login", js(map[string]string{"username": "desk", "password": "wrong-password-123456"}), nil)
	var e errBody
	decodeBody(t, w, &e)
	if w.Code != 401 || e.Enrol {
		t.Fatalf("wrong password of an unenrolled account: %d %s, want 401 without enrol", w.Code, w.Body)
	}
	sec := h.newSecret("desk")
	wantErr(t, "enrol with a wrong code", h.do("POST", "/api/login", js(map[string]string{"username": "desk", "password": operatorPW, "totp_secret": sec, "code": "000000"}), nil), 400, "code")
	wantErr(t, "enrol with a bad secret", h.do("POST", "/api/login", js(map[string]string{"username": "desk", "password": operatorPW, "totp_secret": "short", "code": "000000"}), nil), 400, "totp_secret")
	if a, _ := h.st.Admin(ctx, "desk"); a.TOTPSealed != nil {
		t.Fatal("a wrong code enrolled a second factor")
	}
	w = h.do("POST", "/api/login", js(map[string]string{"username": "desk", "password": operatorPW}), nil)
	e = errBody{}
	decodeBody(t, w, &e)
	if w.Code != 401 || !e.Enrol || e.Field != "code" {
		t.Fatalf("first login: %d %s, want 401 enrol field code", w.Code, w.Body)
	}
	if sessionCookie(w) != nil {
		t.Fatal("a session without a second factor")
	}
	h.freshStep("desk")
	w = h.do("POST", "/api/login", js(map[string]string{"username": "desk", "password": operatorPW, "totp_secret": sec, "code": h.code(sec)}), nil)
	if w.Code != 200 || sessionCookie(w) == nil {
		t.Fatalf("enrolling: %d %s", w.Code, w.Body)
	}
	var acct map[string]string
	decodeBody(t, w, &acct)
	if acct["username"] != "desk" || acct["role"] != RoleOperator {
		t.Fatalf("enrolling answered %v", acct)
	}
	found := false
	for _, ev := range h.ev.all() {
		found = found || ev.Type == audit.ConfigChange && ev.Source == "console:desk" && strings.Contains(ev.Detail, "second factor")
	}
	if !found {
		t.Error("no evidence of the enrolment by console:desk")
	}
	h.secrets["desk"] = sec
	// Enrolled: a password alone fails; a second secret cannot replace the first.
	h.now = h.now.Add(totpPeriod * time.Second)
	w = h.do("POST", "/api/login", js(map[string]string{"username": "desk", "password": operatorPW}), nil)
	e = errBody{}
	decodeBody(t, w, &e)
	if w.Code != 401 || e.Enrol {
		t.Fatalf("password alone after enrolling: %d %s, want 401 without enrol", w.Code, w.Body)
	}
	other := NewTOTPSecret()
	h.now = h.now.Add(totpPeriod * time.Second)
	if w := h.do("POST", "/api/login", js(map[string]string{"username": "desk", "password": operatorPW, "totp_secret": other, "code": h.code(other)}), nil); w.Code == 200 {
		t.Fatal("a second enrolment replaced the second factor")
	}
	h.login("desk", operatorPW)
	var users []userView
	decodeBody(t, h.do("GET", "/api/users", "", admin), &users)
	for _, u := range users {
		if !u.TOTP {
			t.Errorf("user %s listed without a second factor after enrolling", u.Username)
		}
	}
}

// TestRolesAndSessions: an operator may view, unlock and unban but not
// change; the vendor (maintenance) may only view, and not at all while
// the office has it switched off; sessions end when idle, when too old,
// or at logout.
func TestRolesAndSessions(t *testing.T) {
	h := newHarness(t)
	admin, op, vendor := h.staff()
	ctx := context.Background()
	h.st.AddExtension(ctx, store.Extension{Number: "201", Realm: "r", HA1MD5: "a", HA1SHA256: "b", Digest: "md5"})
	h.st.Suspend(ctx, "201", "intl-per-hour", h.now)
	h.st.PutBan(ctx, store.Ban{Address: "203.0.113.9", Until: h.now.Add(time.Hour), Reason: "auth-failures", Offences: 1, Created: h.now, By: "pbx"})
	h.st.SetRate(ctx, mustRate("+232", 250))

	views := []string{"/api/me", "/api/dashboard", "/api/extensions", "/api/trunks", "/api/policy", "/api/bans",
		"/api/cdr", "/api/cdr.csv", "/api/audit", "/api/audit/verify", "/api/settings"}
	for _, who := range []struct {
		name string
		c    *http.Cookie
	}{{"admin", admin}, {"operator", op}, {"maintenance", vendor}} {
		for _, p := range views {
			if w := h.do("GET", p, "", who.c); w.Code != 200 {
				t.Errorf("%s GET %s: %d %s, want 200", who.name, p, w.Code, w.Body)
			}
		}
		if w := h.do("POST", "/api/check-number", js(checkInput{From: "201", Dialled: "0312345678"}), who.c); w.Code != 200 {
			t.Errorf("%s check-number: %d %s", who.name, w.Code, w.Body)
		}
	}
	// Only an administrator changes things and sees accounts.
	adminOnly := []req{
		{method: "POST", path: "/api/extensions", body: `{"number":"301"}`},
		{method: "PATCH", path: "/api/extensions/201", body: `{"class":"internal"}`},
		{method: "DELETE", path: "/api/extensions/201"},
		{method: "POST", path: "/api/rates", body: `{"prefix":"+99999","per_minute":30}`},
		{method: "PUT", path: "/api/profiles/default", body: `{"class":"international"}`},
		{method: "DELETE", path: "/api/rates/+232"},
		{method: "PUT", path: "/api/settings", body: `{"maintenance":true}`},
		{method: "GET", path: "/api/users"},
		{method: "POST", path: "/api/users", body: js(map[string]string{"username": "x2", "password": "another-password-1", "role": "admin"})},
		{method: "DELETE", path: "/api/users/office"},
	}
	operatorToo := []req{
		{method: "POST", path: "/api/extensions/201/unlock"},
		{method: "DELETE", path: "/api/bans/203.0.113.9"},
		{method: "POST", path: "/api/policy/unfreeze"},
	}
	before := len(h.ev.all())
	for _, r := range adminOnly {
		for _, who := range []struct {
			name string
			c    *http.Cookie
		}{{"operator", op}, {"maintenance", vendor}} {
			r.cookie = who.c
			wantErr(t, who.name+" "+r.method+" "+r.path, h.serve(r), 403, "")
		}
	}
	for _, r := range operatorToo {
		r.cookie = vendor
		wantErr(t, "maintenance "+r.method+" "+r.path, h.serve(r), 403, "")
	}
	if n := len(h.ev.all()); n != before {
		t.Fatalf("refused requests left %d evidence records", n-before)
	}
	if _, err := h.st.Extension(ctx, "301"); err == nil {
		t.Error("a refused POST /api/extensions made an extension")
	}
	if e, _ := h.st.Extension(ctx, "201"); e.Class != "" || e.Suspended.IsZero() {
		t.Errorf("refused requests changed extension 201: %+v", e)
	}
	if rs, _ := h.st.Rates(ctx); !hasRate(rs, "+232") || hasRate(rs, "+99999") {
		t.Error("refused requests changed the rates")
	}
	if _, err := h.st.Admin(ctx, "x2"); err == nil {
		t.Error("a refused POST /api/users made an account")
	}
	if _, err := h.st.Admin(ctx, "office"); err != nil {
		t.Error("a refused DELETE /api/users removed an account")
	}
	// The operator's own powers.
	if w := h.do("POST", "/api/extensions/201/unlock", "", op); w.Code != 200 {
		t.Fatalf("operator unlock: %d %s", w.Code, w.Body)
	}
	if e, _ := h.st.Extension(ctx, "201"); !e.Suspended.IsZero() {
		t.Fatal("not unlocked")
	}
	if ev := h.ev.last(); ev.Type != audit.Unlock || ev.Source != "console:desk" || ev.Target != "extension 201" {
		t.Errorf("unlock evidence %+v", ev)
	}
	if w := h.do("DELETE", "/api/bans/203.0.113.9", "", op); w.Code != 200 {
		t.Fatalf("operator unban: %d %s", w.Code, w.Body)
	}
	if ev := h.ev.last(); ev.Type != audit.Unban || ev.Source != "console:desk" {
		t.Errorf("unban evidence %+v", ev)
	}

	// Maintenance switched off by the flag's default: refused at once,
	// sessions too, and no login.
	h.maint = false
	before = len(h.ev.all())
	for _, o := range h.spec.operations() {
		if !o.authed {
			continue
		}
		r, ok := probes[o.key()]
		if !ok {
			t.Errorf("%s: no probe", o.key())
			continue
		}
		r.cookie = vendor
		if o.key() == "POST /api/logout" {
			continue // the vendor may always leave: TestVendorLogsOutWhileOff
		}
		wantErr(t, "maintenance "+o.key()+" while switched off", h.serve(r), 403, "")
	}
	if n := len(h.ev.all()); n != before {
		t.Errorf("refused maintenance requests left %d evidence records", n-before)
	}
	h.freshStep("vendor")
	wantErr(t, "maintenance login while switched off", h.do("POST", "/api/login",
		js(map[string]string{"username": "vendor", "password": vendorPW, "code": h.code(h.secrets["vendor"])}), nil), 403, "")
	// The office's switch overrides the flag both ways.
	if w := h.do("PUT", "/api/settings", `{"maintenance":true}`, admin); w.Code != 200 {
		t.Fatalf("switch maintenance on: %d %s", w.Code, w.Body)
	}
	if w := h.do("GET", "/api/me", "", vendor); w.Code != 200 {
		t.Fatalf("maintenance switched on in the console, still refused: %d", w.Code)
	}
	h.maint = true
	vendor2 := h.login("vendor", vendorPW)
	w := h.do("PUT", "/api/settings", `{"maintenance":false}`, admin)
	var set settingsView
	decodeBody(t, w, &set)
	if w.Code != 200 || set.Maintenance {
		t.Fatalf("switch maintenance off: %d %s", w.Code, w.Body)
	}
	if ev := h.ev.last(); ev.Type != audit.ConfigChange || ev.Source != "console:office" || !strings.Contains(ev.Detail, "off") {
		t.Errorf("settings evidence %+v", ev)
	}
	for _, c := range []*http.Cookie{vendor, vendor2} {
		if h.hasSession(c) {
			t.Error("switching maintenance off left a maintenance session in the store")
		}
		if w := h.do("GET", "/api/me", "", c); w.Code != 401 && w.Code != 403 {
			t.Errorf("maintenance session after switch-off: %d, want refused", w.Code)
		}
	}
	if !h.hasSession(admin) || !h.hasSession(op) {
		t.Error("switching maintenance off ended the office's sessions")
	}
	h.freshStep("vendor")
	wantErr(t, "maintenance login after switch-off (flag on)", h.do("POST", "/api/login",
		js(map[string]string{"username": "vendor", "password": vendorPW, "code": h.code(h.secrets["vendor"])}), nil), 403, "")
	// Switching it on again does not bring the ended sessions back.
	h.do("PUT", "/api/settings", `{"maintenance":true}`, admin)
	wantErr(t, "ended maintenance session", h.do("GET", "/api/me", "", vendor2), 401, "")

	// Logout ends the session; idle and old sessions end.
	if w := h.do("POST", "/api/logout", "", op); w.Code != 200 {
		t.Fatalf("logout: %d", w.Code)
	}
	if h.hasSession(op) {
		t.Error("logout left the session in the store")
	}
	wantErr(t, "after logout", h.do("GET", "/api/me", "", op), 401, "")
	h.now = h.now.Add(IdleTimeout + time.Minute)
	wantErr(t, "idle session", h.do("GET", "/api/me", "", admin), 401, "")
	wantErr(t, "no session", h.do("GET", "/api/me", "", nil), 401, "")
	wantErr(t, "made-up session", h.do("GET", "/api/me", "", &http.Cookie{Name: cookieName, Value: randomToken()}), 401, "")
	admin = h.login("office", adminPW)
	for i := 0; i < int(AbsoluteTimeout/(IdleTimeout/2)); i++ {
		h.now = h.now.Add(IdleTimeout / 2)
		h.do("GET", "/api/me", "", admin)
	}
	h.now = h.now.Add(time.Minute)
	wantErr(t, "session past the absolute timeout", h.do("GET", "/api/me", "", admin), 401, "")
}

// TestUnauthenticated: every operation that needs a session answers 401
// without one and changes nothing.
func TestUnauthenticated(t *testing.T) {
	h := newHarness(t)
	h.setupAdmin()
	before := len(h.ev.all())
	for _, op := range h.spec.operations() {
		if !op.authed {
			continue
		}
		path := strings.NewReplacer("{number}", "201", "{prefix}", "+232", "{address}", "203.0.113.9", "{username}", "office").Replace(op.path)
		body := ""
		if op.hasBody {
			body = "{}"
		}
		wantErr(t, "no cookie "+op.method+" "+path, h.do(op.method, path, body, nil), 401, "")
	}
	if n := len(h.ev.all()); n != before {
		t.Errorf("unauthenticated requests left %d evidence records", n-before)
	}
}

// TestDoorAndCSRF: a peer outside loopback and the admin networks is
// refused; a cross-origin change is refused and changes nothing; a
// same-origin one works.
func TestDoorAndCSRF(t *testing.T) {
	h := newHarness(t)
	admin := h.setupAdmin()
	ctx := context.Background()
	if w := h.serve(req{method: "GET", path: "/api/me", cookie: admin, peer: "198.51.100.9:40000"}); w.Code != 403 {
		t.Fatalf("outside peer: %d", w.Code)
	}
	if w := h.serve(req{method: "GET", path: "/api/totp/new?username=office", peer: "198.51.100.9:40000"}); w.Code != 403 {
		t.Fatalf("outside peer, no session needed: %d", w.Code)
	}
	if w := h.serve(req{method: "GET", path: "/api/me", cookie: admin, peer: "192.0.2.10:40000"}); w.Code != 200 {
		t.Fatalf("admin-network peer: %d", w.Code)
	}
	if w := h.serve(req{method: "GET", path: "/api/me", cookie: admin, peer: "[::ffff:127.0.0.1]:40000"}); w.Code != 200 {
		t.Fatalf("v4-mapped loopback: %d", w.Code)
	}
	crossSite := http.Header{"Sec-Fetch-Site": {"cross-site"}}
	otherOrigin := http.Header{"Origin": {"https://evil.example"}}
	before := len(h.ev.all())
	for _, hd := range []http.Header{crossSite, otherOrigin} {
		for _, r := range []req{
			{method: "POST", path: "/api/extensions", body: `{"number":"301"}`},
			{method: "POST", path: "/api/users", body: js(map[string]string{"username": "intruder", "password": "another-password-1", "role": "admin"})},
			{method: "PUT", path: "/api/settings", body: `{"maintenance":true}`},
			{method: "POST", path: "/api/rates", body: `{"prefix":"+99999","per_minute":1}`},
			{method: "DELETE", path: "/api/users/office"},
			{method: "POST", path: "/api/logout"},
		} {
			r.cookie, r.header = admin, hd
			if w := h.serve(r); w.Code != 403 {
				t.Errorf("cross-origin (%v) %s %s: %d %s, want 403", hd, r.method, r.path, w.Code, w.Body)
			}
		}
		// Not even a login or setup.
		if w := h.serve(req{method: "POST", path: "/api/login", body: js(map[string]string{"username": "office", "password": adminPW, "code": "123456"}), header: hd}); w.Code != 403 {
			t.Errorf("cross-origin login: %d", w.Code)
		}
	}
	if _, err := h.st.Extension(ctx, "301"); err == nil {
		t.Error("a cross-origin POST made an extension")
	}
	if _, err := h.st.Admin(ctx, "intruder"); err == nil {
		t.Error("a cross-origin POST made an account")
	}
	if _, err := h.st.Admin(ctx, "office"); err != nil {
		t.Error("a cross-origin DELETE removed an account")
	}
	if v, _ := h.st.Setting(ctx, SettingMaintenance, ""); v != "" {
		t.Errorf("a cross-origin PUT set maintenance to %q", v)
	}
	if rs, _ := h.st.Rates(ctx); hasRate(rs, "+99999") {
		t.Error("a cross-origin POST set a rate")
	}
	if !h.hasSession(admin) {
		t.Error("a cross-origin logout ended the session")
	}
	if n := len(h.ev.all()); n != before {
		t.Errorf("cross-origin requests left %d evidence records", n-before)
	}
	// The console's own pages: same origin.
	for _, hd := range []http.Header{{"Sec-Fetch-Site": {"same-origin"}}, {"Origin": {"http://example.com"}}} {
		if w := h.serve(req{method: "POST", path: "/api/rates", body: `{"prefix":"+99999","per_minute":1}`, cookie: admin, header: hd}); w.Code != 200 {
			t.Errorf("same-origin (%v) change: %d %s", hd, w.Code, w.Body)
		}
	}
	// Reading is not a change: a cross-site GET is allowed (the cookie is
	// SameSite=Strict, so a browser would not send it anyway).
	if w := h.serve(req{method: "GET", path: "/api/me", cookie: admin, header: crossSite}); w.Code != 200 {
		t.Errorf("cross-site GET: %d", w.Code)
	}
}

func TestCheckListen(t *testing.T) {
	nets := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	sip := []string{"192.0.2.5:5060"}
	for _, c := range []struct {
		listen string
		nets   []netip.Prefix
		ok     bool
	}{
		{"127.0.0.1:8080", nil, true},
		{"[::1]:8080", nil, true},
		{"192.0.2.7:8080", nil, false},  // not loopback, no admin networks
		{"192.0.2.7:8080", nets, true},  //
		{"192.0.2.5:8080", nets, false}, // the SIP address
		{"0.0.0.0:8080", nets, false},   // every address
		{"localhost:8080", nil, false},  // a name, not an address
	} {
		if err := CheckListen(c.listen, c.nets, sip); (err == nil) != c.ok {
			t.Errorf("CheckListen(%s) = %v, want ok=%v", c.listen, err, c.ok)
		}
	}
}
