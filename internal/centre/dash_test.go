package centre

import (
	"crypto/ed25519"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/sekisho/sekisho/internal/wire"
)

// dashEnv is a centre's dashboard handler over one store, with a clock
// the test moves.
type dashEnv struct {
	t   *testing.T
	s   *Server
	st  *Store
	h   http.Handler
	now time.Time
}

const (
	dashHost   = "127.0.0.1:7444"
	dashOrigin = "http://" + dashHost
	goodPW     = "violet-harbour-lantern-42"
)

func newDash(t *testing.T, st *Store, mod func(*Config)) *dashEnv {
	t.Helper()
	dir := t.TempDir()
	keys, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Data: dir, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(st, keys, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &dashEnv{t: t, s: s, st: st, now: time.Now()}
	s.dash.clock = func() time.Time { return e.now }
	e.h = s.DashHandler()
	return e
}

// eachDash runs f on a dashboard over each backend.
func eachDash(t *testing.T, f func(t *testing.T, e *dashEnv)) {
	eachBackend(t, func(t *testing.T, st *Store) { f(t, newDash(t, st, nil)) })
}

// req sends a request as a browser on the same origin would (a POST
// carries Sec-Fetch-Site: same-origin and the Origin), from loopback.
func (e *dashEnv) req(method, path string, form url.Values, cookie *http.Cookie, hdr map[string]string) *httptest.ResponseRecorder {
	e.t.Helper()
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	r.RemoteAddr = "127.0.0.1:40000"
	r.Host = dashHost
	if method == http.MethodPost {
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		r.Header.Set("Origin", dashOrigin)
	}
	for k, v := range hdr {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	if cookie != nil {
		r.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func (e *dashEnv) get(path string, c *http.Cookie) *httptest.ResponseRecorder {
	return e.req(http.MethodGet, path, nil, c, nil)
}

func (e *dashEnv) post(path string, v url.Values, c *http.Cookie) *httptest.ResponseRecorder {
	return e.req(http.MethodPost, path, v, c, nil)
}

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sessionCookie(w *httptest.ResponseRecorder) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == dashCookie && c.Value != "" {
			return c
		}
	}
	return nil
}

var secretRE = regexp.MustCompile(`<code id="totp-secret">([A-Z2-7]+)</code>`)

// setupLink adds an operator and returns the token of its setup link.
func (e *dashEnv) setupLink(name, role string) string {
	e.t.Helper()
	link, _, err := NewOperator(e.t.Context(), e.st, name, role, dashHost, e.now)
	if err != nil {
		e.t.Fatal(err)
	}
	u, err := url.Parse(link)
	if err != nil || u.Scheme != "http" || u.Host != dashHost || u.Path != "/setup" || u.Query().Get("token") == "" {
		e.t.Fatalf("setup link %q", link)
	}
	return u.Query().Get("token")
}

// operator adds and sets up an operator through its link, as a person
// would: the page shows the secret, the form sends it back with a code.
// It returns the session setup started and the TOTP secret.
func (e *dashEnv) operator(name, role string) (*http.Cookie, string) {
	e.t.Helper()
	tok := e.setupLink(name, role)
	w := e.get("/setup?token="+url.QueryEscape(tok), nil)
	m := secretRE.FindStringSubmatch(w.Body.String())
	if w.Code != http.StatusOK || m == nil || !strings.Contains(w.Body.String(), name) || !strings.Contains(w.Body.String(), "<svg") {
		e.t.Fatalf("setup page: %d, secret %v\n%s", w.Code, m, w.Body)
	}
	w = e.post("/setup", url.Values{"token": {tok}, "password": {goodPW}, "totp_secret": {m[1]}, "code": {code(e.t, m[1], e.now)}}, nil)
	c := sessionCookie(w)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" || c == nil {
		e.t.Fatalf("setup: %d %s\n%s", w.Code, w.Header().Get("Location"), w.Body)
	}
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
		e.t.Fatalf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict", c)
	}
	return c, m[1]
}

func (e *dashEnv) login(name, pw, c string) *httptest.ResponseRecorder {
	return e.post("/login", url.Values{"name": {name}, "password": {pw}, "code": {c}}, nil)
}

// addUnit enrols a unit straight in the store.
func (e *dashEnv) addUnit(id, name, group string) {
	e.t.Helper()
	ctx := e.t.Context()
	h := TokenHash([]byte("tok-" + id))
	if err := e.st.AddToken(ctx, h, group, time.Now(), time.Now().Add(time.Hour)); err != nil {
		e.t.Fatal(err)
	}
	if _, _, err := e.st.Enrol(ctx, h, time.Now(), func(g string) (Unit, error) {
		return Unit{ID: id, Name: name, Group: g, CertFingerprint: "fp-" + id, Enrolled: time.Now()}, nil
	}); err != nil {
		e.t.Fatal(err)
	}
}

func TestDashSetupAndLoginCodeOnce(t *testing.T) {
	eachDash(t, func(t *testing.T, e *dashEnv) {
		// No operator: the login page says how to make the first.
		if w := e.get("/login", nil); w.Code != 200 || !strings.Contains(w.Body.String(), "centre operator add") {
			t.Fatalf("login page without operators: %d\n%s", w.Code, w.Body)
		}
		tok := e.setupLink("alice", OperatorAdmin)
		// A weak password is refused next to its field, the token kept.
		w := e.get("/setup?token="+tok, nil)
		sec := secretRE.FindStringSubmatch(w.Body.String())[1]
		w = e.post("/setup", url.Values{"token": {tok}, "password": {"password1234"}, "totp_secret": {sec}, "code": {code(t, sec, e.now)}}, nil)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `class="field-error"`) || !strings.Contains(w.Body.String(), sec) {
			t.Fatalf("weak password: %d, want 400 with the error and the same secret\n%s", w.Code, w.Body)
		}
		// A wrong code likewise.
		w = e.post("/setup", url.Values{"token": {tok}, "password": {goodPW}, "totp_secret": {sec}, "code": {"000000"}}, nil)
		if w.Code != http.StatusBadRequest {
			t.Fatalf("wrong code at setup: %d", w.Code)
		}
		// Then it works, and starts a session.
		w = e.post("/setup", url.Values{"token": {tok}, "password": {goodPW}, "totp_secret": {sec}, "code": {code(t, sec, e.now)}}, nil)
		c := sessionCookie(w)
		if w.Code != http.StatusSeeOther || c == nil {
			t.Fatalf("setup: %d\n%s", w.Code, w.Body)
		}
		if w := e.get("/", c); w.Code != 200 || !strings.Contains(w.Body.String(), "alice") {
			t.Fatalf("overview after setup: %d", w.Code)
		}
		// The link is spent.
		if w := e.get("/setup?token="+tok, nil); w.Code != http.StatusForbidden {
			t.Fatalf("a used setup link: %d, want 403", w.Code)
		}
		w = e.post("/setup", url.Values{"token": {tok}, "password": {goodPW}, "totp_secret": {sec}, "code": {code(t, sec, e.now)}}, nil)
		if w.Code != http.StatusForbidden {
			t.Fatalf("a used setup link posted: %d, want 403", w.Code)
		}
		// Only hashes are stored: neither the token nor the secret.
		var sealed, setupHash string
		e.st.db.QueryRowContext(t.Context(), `SELECT totp_sealed, setup_hash FROM operators WHERE name = 'alice'`).Scan(&sealed, &setupHash)
		if sealed == "" || strings.Contains(sealed, sec) || setupHash != "" {
			t.Fatalf("stored second factor %q, setup hash %q", sealed, setupHash)
		}
		if open, err := e.s.keys.openTOTP("mallory", sealed); err == nil {
			t.Fatalf("alice's sealed secret opened for another name: %q", open)
		}
		// Logout ends the session.
		if w := e.post("/logout", nil, c); w.Code != http.StatusSeeOther {
			t.Fatalf("logout: %d", w.Code)
		}
		if w := e.get("/", c); w.Code != http.StatusSeeOther {
			t.Fatalf("after logout: %d, want a redirect to /login", w.Code)
		}
		// The code used at setup does not log in.
		if w := e.login("alice", goodPW, code(t, sec, e.now)); w.Code != http.StatusUnauthorized {
			t.Fatalf("login with the setup's code: %d, want 401", w.Code)
		}
		// The next step's code does, once.
		e.now = e.now.Add(30 * time.Second)
		cd := code(t, sec, e.now)
		w = e.login("alice", goodPW, cd)
		if w.Code != http.StatusSeeOther || sessionCookie(w) == nil {
			t.Fatalf("login: %d\n%s", w.Code, w.Body)
		}
		if w := e.login("alice", goodPW, cd); w.Code != http.StatusUnauthorized {
			t.Fatalf("the same code again: %d, want 401", w.Code)
		}
		if w := e.get("/", sessionCookie(w)); w.Code != 200 {
			t.Fatalf("overview with the login's session: %d", w.Code)
		}
		// A setup link lives an hour.
		late := e.setupLink("bob", OperatorViewer)
		e.now = e.now.Add(SetupLinkLife + time.Minute)
		if w := e.get("/setup?token="+late, nil); w.Code != http.StatusForbidden {
			t.Fatalf("an expired setup link: %d, want 403", w.Code)
		}
		// The log has it all.
		w = e.get("/log", sessionCookieAt(t, e, "alice", sec))
		for _, want := range []string{"setup", "login-failure", ">login<"} {
			if !strings.Contains(w.Body.String(), want) {
				t.Errorf("log page lacks %q", want)
			}
		}
	})
}

// sessionCookieAt logs name in at the next TOTP step.
func sessionCookieAt(t *testing.T, e *dashEnv, name, sec string) *http.Cookie {
	t.Helper()
	e.now = e.now.Add(30 * time.Second)
	w := e.login(name, goodPW, code(t, sec, e.now))
	c := sessionCookie(w)
	if c == nil {
		t.Fatalf("login %s: %d\n%s", name, w.Code, w.Body)
	}
	return c
}

func TestDashLockoutGrows(t *testing.T) {
	eachDash(t, func(t *testing.T, e *dashEnv) {
		_, sec := e.operator("carol", OperatorViewer)
		for i := range 3 {
			if w := e.login("carol", "wrong-password-"+string(rune('a'+i)), code(t, sec, e.now)); w.Code != http.StatusUnauthorized {
				t.Fatalf("wrong password %d: %d, want 401", i+1, w.Code)
			}
		}
		// Locked for 2 s: even the right password and a fresh code fail.
		e.now = e.now.Add(time.Second)
		w := e.login("carol", goodPW, code(t, sec, e.now.Add(30*time.Second)))
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
			t.Fatalf("while locked: %d, want 429 with Retry-After", w.Code)
		}
		// A fourth failure (after the lock) locks for 4 s.
		e.now = e.now.Add(2 * time.Second)
		e.login("carol", "wrong-again", "000000")
		o, err := e.st.operator(t.Context(), "carol")
		if d := o.LockedUntil.Sub(e.now); err != nil || o.failures != 4 || d <= 3990*time.Millisecond || d > 4*time.Second {
			t.Fatalf("after 4 failures: %d failures, locked for %v; want 4 and 4s", o.failures, o.LockedUntil.Sub(e.now))
		}
		// After the delay, the right password and a new code pass, and
		// the count starts again.
		e.now = e.now.Add(30 * time.Second)
		if w := e.login("carol", goodPW, code(t, sec, e.now)); w.Code != http.StatusSeeOther {
			t.Fatalf("after the lock: %d\n%s", w.Code, w.Body)
		}
		if o, _ := e.st.operator(t.Context(), "carol"); o.failures != 0 || !o.LockedUntil.IsZero() {
			t.Fatalf("after a login: %d failures, locked until %v", o.failures, o.LockedUntil)
		}
		// A name that is no operator locks alike: a 429 tells nothing.
		for range 3 {
			e.login("nobody", "x", "000000")
		}
		if w := e.login("nobody", "x", "000000"); w.Code != http.StatusTooManyRequests {
			t.Fatalf("unknown name after 3 failures: %d, want 429", w.Code)
		}
	})
}

func TestDashViewerCannotPushOrRevoke(t *testing.T) {
	eachDash(t, func(t *testing.T, e *dashEnv) {
		e.addUnit("u-1", "Tokyo office", "tokyo")
		viewer, _ := e.operator("vera", OperatorViewer)
		if w := e.get("/", viewer); w.Code != 200 {
			t.Fatalf("overview for a viewer: %d", w.Code)
		}
		w := e.get("/units/u-1", viewer)
		if w.Code != 200 || strings.Contains(w.Body.String(), "/revoke") || strings.Contains(w.Body.String(), "/console/") {
			t.Fatalf("unit page for a viewer: %d, and it must offer no revoke or console\n%s", w.Code, w.Body)
		}
		for _, c := range []struct{ method, path string }{
			{"POST", "/push"}, {"GET", "/push"}, {"POST", "/units/u-1/revoke"}, {"GET", "/units/u-1/console/"},
			{"GET", "/operators"}, {"POST", "/operators"},
		} {
			w := e.req(c.method, c.path, url.Values{"block": {"yes"}, "confirm": {"Tokyo office"}, "name": {"eve"}, "role": {"admin"}}, viewer, nil)
			if w.Code != http.StatusForbidden {
				t.Errorf("%s %s as a viewer: %d, want 403", c.method, c.path, w.Code)
			}
		}
		if _, err := e.st.BundleBySeq(t.Context(), 0); err == nil {
			t.Fatal("a viewer's push stored a bundle")
		}
		if u, _ := e.st.Unit(t.Context(), "u-1"); !u.Revoked.IsZero() {
			t.Fatal("a viewer revoked a unit")
		}
		if ops, _ := e.st.Operators(t.Context()); len(ops) != 1 {
			t.Fatalf("a viewer added an operator: %v", ops)
		}
	})
}

func TestDashPushCoverageAndRevoke(t *testing.T) {
	eachDash(t, func(t *testing.T, e *dashEnv) {
		ctx := t.Context()
		e.addUnit("u-1", "Tokyo office", "tokyo")
		e.addUnit("u-2", "Osaka office", "osaka")
		adm, _ := e.operator("alice", OperatorAdmin)
		// Block or allow must be chosen.
		w := e.post("/push", url.Values{"note": {"fraud wave"}}, adm)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `class="field-error"`) || !strings.Contains(w.Body.String(), "fraud wave") {
			t.Fatalf("push without a choice: %d, want 400 with the error by the field and the note kept\n%s", w.Code, w.Body)
		}
		w = e.post("/push", url.Values{"block": {"yes"}, "note": {"fraud wave"}}, adm)
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/?pushed=1" {
			t.Fatalf("push: %d %q\n%s", w.Code, w.Header().Get("Location"), w.Body)
		}
		b, err := e.st.BundleBySeq(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Signed.Verify(e.s.keys.Bundle.Public().(ed25519.PublicKey))
		if err != nil || !got.BlockInternational || got.Note != "fraud wave" || got.Group != "" {
			t.Fatalf("bundle %+v, %v", got, err)
		}
		w = e.get("/?pushed=1", adm)
		body := w.Body.String()
		if !strings.Contains(body, `id="flash"`) || !strings.Contains(body, "Bundle 1") || !strings.Contains(body, `<b id="coverage-count">0 / 2</b>`) ||
			!strings.Contains(body, "Tokyo office") || !strings.Contains(body, `http-equiv="refresh" content="5"`) {
			t.Fatalf("overview after the push:\n%s", body)
		}
		// One unit applies it: 1 of 2, the other named as a straggler.
		if err := e.st.SaveAck(ctx, "u-1", wire.Ack{Seq: 1, Hash: b.Hash, OK: true}, time.Now()); err != nil {
			t.Fatal(err)
		}
		body = e.get("/", adm).Body.String()
		stragglers := regexp.MustCompile(`<span id="stragglers">(.*?)</span>`).FindStringSubmatch(body)
		if !strings.Contains(body, `<b id="coverage-count">1 / 2</b>`) || stragglers == nil ||
			!strings.Contains(stragglers[1], "Osaka office") || strings.Contains(stragglers[1], "Tokyo office") {
			t.Fatalf("coverage after one ack: stragglers %v\n%s", stragglers, body)
		}
		// The unit page shows its answer.
		if w := e.get("/units/u-1", adm); w.Code != 200 || !strings.Contains(w.Body.String(), "fraud wave") || !strings.Contains(w.Body.String(), `href="/units/u-1/console/"`) {
			t.Fatalf("unit page: %d\n%s", w.Code, w.Body)
		}
		// A revoke needs the name typed.
		w = e.post("/units/u-2/revoke", url.Values{"confirm": {"Tokyo office"}}, adm)
		if w.Code != http.StatusBadRequest {
			t.Fatalf("revoke with the wrong name: %d, want 400", w.Code)
		}
		if u, _ := e.st.Unit(ctx, "u-2"); !u.Revoked.IsZero() {
			t.Fatal("revoked with the wrong name typed")
		}
		w = e.post("/units/u-2/revoke", url.Values{"confirm": {"Osaka office"}}, adm)
		if w.Code != http.StatusSeeOther {
			t.Fatalf("revoke: %d\n%s", w.Code, w.Body)
		}
		if u, _ := e.st.Unit(ctx, "u-2"); u.Revoked.IsZero() {
			t.Fatal("not revoked")
		}
		// The log names who did both.
		body = e.get("/log", adm).Body.String()
		for _, want := range []string{">push<", "bundle 1", ">revoke<", "unit u-2", ">alice<"} {
			if !strings.Contains(body, want) {
				t.Errorf("log lacks %q", want)
			}
		}
		// An admin adds an operator from the dashboard: the link is shown
		// once, for the host the admin came by.
		w = e.post("/operators", url.Values{"name": {"dave"}, "role": {"viewer"}}, adm)
		if w.Code != 200 || !strings.Contains(w.Body.String(), "http://"+dashHost+"/setup?token=") {
			t.Fatalf("add operator: %d\n%s", w.Code, w.Body)
		}
		if w := e.post("/operators", url.Values{"name": {"Dave Smith"}, "role": {"viewer"}}, adm); w.Code != http.StatusBadRequest {
			t.Fatalf("a bad operator name: %d, want 400", w.Code)
		}
		if w := e.post("/operators/delete", url.Values{"name": {"dave"}}, adm); w.Code != 200 {
			t.Fatalf("delete operator: %d", w.Code)
		}
		if w := e.post("/operators/delete", url.Values{"name": {"alice"}}, adm); w.Code != http.StatusBadRequest {
			t.Fatalf("deleting oneself: %d, want 400", w.Code)
		}
	})
}

func TestDashCrossOriginRefused(t *testing.T) {
	eachDash(t, func(t *testing.T, e *dashEnv) {
		adm, _ := e.operator("alice", OperatorAdmin)
		form := url.Values{"block": {"yes"}}
		for _, h := range []map[string]string{
			{"Sec-Fetch-Site": "cross-site"},
			{"Sec-Fetch-Site": "", "Origin": "http://evil.example"},
			{"Sec-Fetch-Site": "same-site", "Origin": "http://other.127.0.0.1.nip.io:7444"},
		} {
			if w := e.req("POST", "/push", form, adm, h); w.Code != http.StatusForbidden {
				t.Errorf("a cross-origin push %v: %d, want 403", h, w.Code)
			}
			if w := e.req("POST", "/login", url.Values{"name": {"alice"}}, nil, h); w.Code != http.StatusForbidden {
				t.Errorf("a cross-origin login %v: %d, want 403", h, w.Code)
			}
		}
		if _, err := e.st.BundleBySeq(t.Context(), 0); err == nil {
			t.Fatal("a cross-origin push stored a bundle")
		}
		// The same push from the dashboard's own page goes through.
		if w := e.post("/push", form, adm); w.Code != http.StatusSeeOther {
			t.Fatalf("a same-origin push: %d", w.Code)
		}
	})
}

func TestDashNeedsSession(t *testing.T) {
	eachDash(t, func(t *testing.T, e *dashEnv) {
		e.addUnit("u-1", "Tokyo office", "")
		forged := &http.Cookie{Name: dashCookie, Value: "forged"}
		for _, c := range []*http.Cookie{nil, forged} {
			for _, p := range []string{"/", "/units/u-1", "/push", "/log", "/operators", "/units/u-1/console/"} {
				w := e.get(p, c)
				if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login" {
					t.Errorf("GET %s without a session: %d %q, want a redirect to /login", p, w.Code, w.Header().Get("Location"))
				}
			}
			if w := e.post("/push", url.Values{"block": {"yes"}}, c); w.Code != http.StatusUnauthorized {
				t.Errorf("POST /push without a session: %d, want 401", w.Code)
			}
		}
		// Sessions end after 30 idle minutes, and after 12 hours however
		// busy.
		c, _ := e.operator("alice", OperatorAdmin)
		e.now = e.now.Add(DashIdleTimeout + time.Minute)
		if w := e.get("/", c); w.Code != http.StatusSeeOther {
			t.Fatalf("after 31 idle minutes: %d, want a redirect", w.Code)
		}
		c, _ = e.operator("bob", OperatorAdmin)
		created := e.now
		for e.now.Add(29*time.Minute).Sub(created) < DashAbsoluteLife { // used every 29 minutes
			e.now = e.now.Add(29 * time.Minute)
			if w := e.get("/", c); w.Code != 200 {
				t.Fatalf("a busy session after %v: %d", e.now.Sub(created), w.Code)
			}
		}
		e.now = e.now.Add(29 * time.Minute)
		if w := e.get("/", c); w.Code != http.StatusSeeOther {
			t.Fatalf("after 12 hours: %d, want a redirect", w.Code)
		}
		// No dashboard page is served without a session, and nothing
		// from the store leaks on the login page.
		if w := e.get("/login", nil); strings.Contains(w.Body.String(), "Tokyo office") {
			t.Fatal("the login page shows fleet data")
		}
	})
}

func TestDashEscapesUnitText(t *testing.T) {
	eachDash(t, func(t *testing.T, e *dashEnv) {
		ctx := t.Context()
		evil := `<script>alert(1)</script>`
		e.addUnit("u-1", evil, "")
		// The unit's own reports carry text of its choosing too.
		if err := e.st.SaveStatus(ctx, "u-1", wire.Status{At: time.Now(), Today: []wire.CountryToday{{Country: `"><img src=x onerror=alert(2)>`, Calls: 3, Spend: 90}},
			Suspended: []string{"<b>201</b>"}, Evidence: true}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.st.AddAlert(ctx, "u-1", wire.Alert{Seq: 1, At: time.Now(), Kind: "suspend", Subject: evil, Detail: "<iframe src=//evil>"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		adm, _ := e.operator("alice", OperatorAdmin)
		for _, p := range []string{"/", "/units/u-1"} {
			w := e.get(p, adm)
			body := w.Body.String()
			if w.Code != 200 || strings.Contains(body, "<script") || strings.Contains(body, "<img src=x") || strings.Contains(body, "<iframe") || strings.Contains(body, "<b>201") {
				t.Fatalf("%s: %d: a unit's text reached the page as markup\n%s", p, w.Code, body)
			}
			if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
				t.Fatalf("%s: the unit's name is not shown escaped\n%s", p, body)
			}
			h := w.Header()
			if h.Get("Content-Security-Policy") != dashCSP || !strings.Contains(dashCSP, "default-src 'none'") || h.Get("X-Frame-Options") != "DENY" ||
				h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-store" {
				t.Fatalf("%s: headers %v", p, h)
			}
		}
	})
}

// TestDashStyle: the stylesheet is the unit console's, served here.
func TestDashStyle(t *testing.T) {
	eachDash(t, func(t *testing.T, e *dashEnv) {
		w := e.get("/static/style.css", nil)
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") || w.Body.Len() < 500 || !strings.Contains(w.Body.String(), ".card") {
			t.Fatalf("stylesheet: %d %q, %d bytes", w.Code, w.Header().Get("Content-Type"), w.Body.Len())
		}
	})
}

func TestDashPeerAndHostChecks(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		e := newDash(t, st, func(c *Config) {
			c.ConsoleListen = "192.0.2.1:7444"
			c.Listen = "198.51.100.1:7443"
			c.AdminNetworks = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
			c.Name = "centre.example.jp"
		})
		try := func(remote, host string) int {
			r := httptest.NewRequest("GET", "/login", nil)
			r.RemoteAddr, r.Host = remote, host
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, r)
			return w.Code
		}
		for _, c := range []struct {
			remote, host string
			want         int
		}{
			{"127.0.0.1:1", "127.0.0.1:7444", 200},
			{"[::1]:1", "[::1]:7444", 200},
			{"192.0.2.77:1", "192.0.2.1:7444", 200},
			{"192.0.2.77:1", "centre.example.jp:7444", 200},
			{"192.0.2.77:1", "localhost:7444", 200},
			{"203.0.113.9:1", "192.0.2.1:7444", http.StatusForbidden},                   // outside the admin networks
			{"127.0.0.1:1", "rebound.evil.example:7444", http.StatusMisdirectedRequest}, // DNS rebinding
		} {
			if got := try(c.remote, c.host); got != c.want {
				t.Errorf("from %s to Host %s: %d, want %d", c.remote, c.host, got, c.want)
			}
		}
	})
}

func TestCheckConsoleListen(t *testing.T) {
	nets := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}
	for _, c := range []struct {
		listen, units string
		nets          []netip.Prefix
		want          string // "" for accepted
	}{
		{"", "0.0.0.0:7443", nil, ""},
		{"127.0.0.1:7444", "0.0.0.0:7443", nil, ""},
		{"[::1]:7444", "127.0.0.1:7443", nil, ""},
		{"10.0.0.5:7444", "192.0.2.1:7443", nets, ""},
		{"0.0.0.0:7444", "192.0.2.1:7443", nets, "every address"},
		{"10.0.0.5:7444", "192.0.2.1:7443", nil, "--admin-networks"},
		{"10.0.0.5:7444", "10.0.0.5:7443", nets, "units' listener"},
		{"10.0.0.5:7444", "0.0.0.0:7443", nets, "units' listener"},
		{"localhost:7444", "0.0.0.0:7443", nil, "IP address"},
		{"7444", "0.0.0.0:7443", nil, "HOST:PORT"},
	} {
		err := CheckConsoleListen(c.listen, c.units, c.nets)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("CheckConsoleListen(%q, %q, %v) = %v, want %q", c.listen, c.units, c.nets, err, c.want)
		}
	}
}

// TestDashServedWithTheCentre: Serve runs the dashboard on ConsoleListen
// beside the units' listener, records its address for the CLI's setup
// links, and stops it with the rest.
func TestDashServedWithTheCentre(t *testing.T) {
	st, err := OpenStore(t.Context(), t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the centre's own clean-up
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	startCentre(t, st, func(c *Config) { c.ConsoleListen = addr })
	var res *http.Response
	waitFor(t, 5*time.Second, "the dashboard answers", func() bool {
		res, err = http.Get("http://" + addr + "/login")
		return err == nil
	})
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Security-Policy") != dashCSP {
		t.Fatalf("dashboard login page: %s", res.Status)
	}
	if got, _ := st.Setting(t.Context(), SettingConsoleListen, ""); got != addr {
		t.Fatalf("recorded dashboard address %q, want %q", got, addr)
	}
}

// TestDashWordsCoverTemplates: every {{t "key"}} in the dashboard's pages
// has English and Japanese text, so no page shows a bare key.
func TestDashWordsCoverTemplates(t *testing.T) {
	re := regexp.MustCompile(`\{\{t "([^"]+)"\}\}`)
	n := 0
	fs.WalkDir(dashFS, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := dashFS.ReadFile(path)
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			n++
			if w, ok := dashWords[m[1]]; !ok || w[0] == "" || w[1] == "" {
				t.Errorf("%s: %q has no English and Japanese text", path, m[1])
			}
		}
		return nil
	})
	for _, k := range []string{"push.done", "push.block.choose", "push.group.bad", "push.note.long", "unit.confirm.wrong", "unit.revoked.done",
		"err.read", "err.write", "err.session", "err.role", "err.no.unit", "op.self", "op.none", "op.deleted", "setup.title", "login.title"} {
		if w, ok := dashWords[k]; !ok || w[0] == "" || w[1] == "" {
			t.Errorf("%q (used in Go) has no English and Japanese text", k)
		}
	}
	if n < 60 {
		t.Fatalf("found only %d translated texts: the pattern no longer matches the templates", n)
	}
}

// TestDashJapanese: the pages follow Accept-Language, then the switch.
func TestDashJapanese(t *testing.T) {
	eachDash(t, func(t *testing.T, e *dashEnv) {
		if w := e.req("GET", "/login", nil, nil, map[string]string{"Accept-Language": "ja-JP,ja;q=0.9"}); !strings.Contains(w.Body.String(), "ログイン") {
			t.Fatalf("Japanese login page:\n%s", w.Body)
		}
		w := e.get("/lang/ja", nil)
		var lc *http.Cookie
		for _, c := range w.Result().Cookies() {
			if c.Name == langCookie {
				lc = c
			}
		}
		if lc == nil || lc.Value != "ja" {
			t.Fatalf("language switch: %d %v", w.Code, w.Result().Cookies())
		}
		if w := e.req("GET", "/login", nil, lc, nil); !strings.Contains(w.Body.String(), "ログイン") {
			t.Fatal("the switch's cookie did not pick Japanese")
		}
	})
}

func TestOperatorKeyPrivate(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadKeys(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, OperatorKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want mode 0600", OperatorKeyFile, fi, err)
	}
	b, _ := json.Marshal(OperatorInfo{Name: "x"})
	if strings.Contains(string(b), "hash") || strings.Contains(string(b), "totp") {
		t.Fatalf("operator JSON carries secrets: %s", b)
	}
}
