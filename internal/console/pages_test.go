package console

import (
	"context"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/vault"
)

// pageEnv is a console with one administrator and its session.
type pageEnv struct {
	t      *testing.T
	s      *Server
	st     *store.Store
	now    time.Time
	cookie *http.Cookie
}

func newPageEnv(t *testing.T) *pageEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	v, err := vault.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &pageEnv{t: t, st: st, now: time.Now()}
	e.s = New(Config{Store: st, Vault: v, Now: func() time.Time { return e.now }, SIPAddress: "0.0.0.0:5060"})
	tok, err := Setup(ctx, st, e.now)
	if err != nil {
		t.Fatal(err)
	}
	sec := NewTOTPSecret()
	code, _ := totp.GenerateCodeCustom(sec, e.now, totpOpts)
	w := e.form("/setup", url.Values{"token": {tok}, "username": {"office"}, "password": {"correct-horse-battery-9"}, "totp_secret": {sec}, "code": {code}}, nil)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("setup form: %d %s", w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == cookieName {
			e.cookie = c
		}
	}
	if e.cookie == nil {
		t.Fatal("setup started no session")
	}
	return e
}

func (e *pageEnv) form(path string, v url.Values, h http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", path, strings.NewReader(v.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.send(r, h)
}

func (e *pageEnv) get(path string, h http.Header) *httptest.ResponseRecorder {
	return e.send(httptest.NewRequest("GET", path, nil), h)
}

func (e *pageEnv) send(r *http.Request, h http.Header) *httptest.ResponseRecorder {
	r.RemoteAddr = "127.0.0.1:40000"
	r.Host = "127.0.0.1:8080"
	for k, vs := range h {
		r.Header[k] = vs
	}
	if e.cookie != nil {
		r.AddCookie(e.cookie)
	}
	w := httptest.NewRecorder()
	e.s.ServeHTTP(w, r)
	return w
}

// TestWordsCoverTemplates: every {{t "key"}} in the pages has English and
// Japanese text, so no page shows a bare key.
func TestWordsCoverTemplates(t *testing.T) {
	re := regexp.MustCompile(`\{\{t "([^"]+)"\}\}`)
	n := 0
	fs.WalkDir(webFS, "web", func(path string, d fs.DirEntry, err error) error {
		if d.IsDir() || !strings.HasSuffix(path, ".html") {
			return nil
		}
		b, _ := webFS.ReadFile(path)
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			n++
			w, ok := words[m[1]]
			if !ok || w[0] == "" || w[1] == "" {
				t.Errorf("%s: %q has no English and Japanese text", path, m[1])
			}
		}
		return nil
	})
	if n < 50 {
		t.Fatalf("found only %d translated texts: the pattern no longer matches the templates", n)
	}
}

// TestPagesRender: every page renders for the administrator, with the
// strict CSP and no script; language follows Accept-Language, then the
// switch's cookie.
func TestPagesRender(t *testing.T) {
	e := newPageEnv(t)
	for _, p := range []string{"/", "/extensions", "/trunks", "/policy", "/bans", "/calls", "/evidence", "/settings"} {
		w := e.get(p, nil)
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", p, w.Code, w.Body)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if strings.Contains(strings.ToLower(w.Body.String()), "<script") {
			t.Errorf("%s has a script", p)
		}
	}
	if b := e.get("/", http.Header{"Accept-Language": {"ja,en;q=0.5"}}).Body.String(); !strings.Contains(b, "ダッシュボード") || !strings.Contains(b, `lang="ja"`) {
		t.Error("Accept-Language ja did not give Japanese")
	}
	if b := e.get("/", http.Header{"Accept-Language": {"en-GB"}}).Body.String(); !strings.Contains(b, "Dashboard") {
		t.Error("Accept-Language en did not give English")
	}
	w := e.get("/lang/ja", nil)
	var lang *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == LangCookie {
			lang = c
		}
	}
	if lang == nil || lang.Value != "ja" {
		t.Fatal("the switch set no language cookie")
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept-Language", "en")
	r.AddCookie(lang)
	if b := e.send(r, nil).Body.String(); !strings.Contains(b, "ダッシュボード") {
		t.Error("the switch's choice did not win over Accept-Language")
	}
}

// TestPagesNeedSession: without a session every page goes to the login
// page, and the dashboard goes to setup while no account exists.
func TestPagesNeedSession(t *testing.T) {
	e := newPageEnv(t)
	e.cookie = nil
	for _, p := range []string{"/", "/extensions", "/settings", "/evidence"} {
		if w := e.get(p, nil); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login" {
			t.Errorf("%s without a session: %d %s", p, w.Code, w.Header().Get("Location"))
		}
	}
	if w := e.form("/extensions", url.Values{"number": {"301"}}, nil); w.Code != http.StatusSeeOther {
		t.Errorf("POST without a session: %d", w.Code)
	}
	if _, err := e.st.Extension(context.Background(), "301"); err == nil {
		t.Error("an extension was made without a session")
	}
}

// TestExtensionFormShowsOnce: adding an extension shows its password and
// QR code once; a bad number is shown next to the field and makes nothing;
// a cross-origin post is refused.
func TestExtensionFormShowsOnce(t *testing.T) {
	e := newPageEnv(t)
	w := e.form("/extensions", url.Values{"number": {"12a"}, "name": {"Front desk"}}, nil)
	if w.Code != 400 || !regexp.MustCompile(`(?s)name="number".*field-error`).MatchString(w.Body.String()) {
		t.Fatalf("bad number: %d, no error next to the field:\n%s", w.Code, w.Body)
	}
	if !strings.Contains(w.Body.String(), `value="Front desk"`) {
		t.Error("the form lost what was typed")
	}
	if es, _ := e.st.Extensions(context.Background()); len(es) != 0 {
		t.Fatal("a refused form made an extension")
	}
	w = e.form("/extensions", url.Values{"number": {"201"}, "name": {"Front desk"}}, http.Header{"Sec-Fetch-Site": {"cross-site"}})
	if w.Code != http.StatusForbidden {
		t.Fatalf("cross-site form: %d", w.Code)
	}
	w = e.form("/extensions", url.Values{"number": {"201"}, "name": {"Front desk"}}, nil)
	m := regexp.MustCompile(`id="new-password">([^<]+)<`).FindStringSubmatch(w.Body.String())
	if w.Code != 200 || m == nil || !strings.Contains(w.Body.String(), "<svg") {
		t.Fatalf("created: %d, no password or QR:\n%s", w.Code, w.Body)
	}
	// SIP listens on every address: the code names the host the browser used.
	if !strings.Contains(w.Body.String(), "sip:201@127.0.0.1:5060") {
		t.Error("provisioning address not the browser's host with the SIP port")
	}
	if b := e.get("/extensions", nil).Body.String(); strings.Contains(b, m[1]) {
		t.Error("the password is shown again")
	}
	if w := e.form("/extensions/201", url.Values{"class": {"galactic"}}, nil); w.Code != 400 || !strings.Contains(w.Body.String(), "201") {
		t.Fatalf("bad class: %d", w.Code)
	}
	if ex, _ := e.st.Extension(context.Background(), "201"); ex.Class != "" {
		t.Fatalf("a refused edit changed the class to %q", ex.Class)
	}
	if w := e.form("/extensions/201", url.Values{"class": {"mobile"}}, nil); w.Code != 200 {
		t.Fatalf("edit: %d %s", w.Code, w.Body)
	}
	if ex, _ := e.st.Extension(context.Background(), "201"); ex.Class != "mobile" {
		t.Fatalf("class %q after the edit", ex.Class)
	}
}

// TestPolicyCheckForm: the "check a number" box shows the gate's decision
// for the incident's symbol trick.
func TestPolicyCheckForm(t *testing.T) {
	e := newPageEnv(t)
	e.form("/extensions", url.Values{"number": {"201"}}, nil)
	w := e.form("/policy/check", url.Values{"from": {"201"}, "dialled": {"#01023212345678"}}, nil)
	if w.Code != 200 || !regexp.MustCompile(`class="verdict deny"`).MatchString(w.Body.String()) {
		t.Fatalf("check: %d\n%s", w.Code, w.Body)
	}
	w = e.form("/policy/check", url.Values{"from": {"999"}, "dialled": {"0312345678"}}, nil)
	if w.Code != 400 || !regexp.MustCompile(`(?s)name="from".*field-error`).MatchString(w.Body.String()) {
		t.Fatalf("unknown extension: %d", w.Code)
	}
}

// TestVendorLogsOutWhileOff: with maintenance switched off the vendor's
// session is refused everywhere, but it can still end itself.
func TestVendorLogsOutWhileOff(t *testing.T) {
	e := newPageEnv(t)
	ctx := context.Background()
	if err := e.st.AddAdmin(ctx, store.Admin{Username: "vendor", Hash: HashPassword("vendor-pass-phrase-77"), Role: RoleMaintenance}); err != nil {
		t.Fatal(err)
	}
	tok, err := e.s.newSession(ctx, "vendor")
	if err != nil {
		t.Fatal(err)
	}
	e.st.SetSetting(ctx, SettingMaintenance, "off")
	e.cookie = &http.Cookie{Name: cookieName, Value: tok}
	if w := e.get("/api/me", nil); w.Code != http.StatusForbidden {
		t.Fatalf("vendor while off: %d", w.Code)
	}
	r := httptest.NewRequest("POST", "/api/logout", nil)
	if w := e.send(r, nil); w.Code != 200 {
		t.Fatalf("logout while off: %d %s", w.Code, w.Body)
	}
	if _, err := e.st.Session(ctx, tokenHash(tok)); err == nil {
		t.Fatal("the session outlived the logout")
	}
}

// TestUnknownNameLocksToo: a name that is no account is locked out after
// the same failures as a real one, so a 429 tells nothing.
func TestUnknownNameLocksToo(t *testing.T) {
	e := newPageEnv(t)
	e.cookie = nil
	login := func(user string) int {
		r := httptest.NewRequest("POST", "/api/login", strings.NewReader(`{"username":"`+user+`","password":"wrong-wrong-wrong","code":"123456"}`))
		return e.send(r, nil).Code
	}
	for _, user := range []string{"office", "nobody"} {
		var codes []int
		for range 4 {
			codes = append(codes, login(user))
		}
		if codes[3] != http.StatusTooManyRequests {
			t.Errorf("%s: answers %v, want 429 by the fourth try", user, codes)
		}
	}
}

// TestProfileForm: a profile is edited whole from its form; a bad field
// is named and changes nothing; a new one is made.
func TestProfileForm(t *testing.T) {
	e := newPageEnv(t)
	ctx := context.Background()
	form := url.Values{"class": {"international"}, "countries": {"US"}, "hours": {"mon-fri 08:00-20:00"}, "max_duration": {"30m"},
		"max_calls": {"2"}, "intl_per_minute": {"1"}, "intl_per_hour": {"3"}, "same_prefix": {"2"}, "distinct_per_hour": {"3"}, "daily_spend": {"900"}}
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("hours", "whenever")
	if w := e.form("/policy/profiles/default", bad, nil); w.Code != 400 || !strings.Contains(w.Body.String(), "hours") {
		t.Fatalf("bad hours: %d", w.Code)
	}
	if p, _ := e.st.Profile(ctx, "default"); p.Class != "mobile" || p.Countries != "" {
		t.Fatalf("a refused form changed the profile: %+v", p)
	}
	if w := e.form("/policy/profiles/default", form, nil); w.Code != 200 {
		t.Fatalf("edit: %d %s", w.Code, w.Body)
	}
	p, _ := e.st.Profile(ctx, "default")
	if p.Class != "international" || p.Countries != "US" || p.IntlPerHour != 3 || p.DailySpend != 900 || p.MaxDuration != 30*time.Minute {
		t.Fatalf("after the edit: %+v", p)
	}
	form.Set("name", "night-shift")
	if w := e.form("/policy/profiles", form, nil); w.Code != 200 {
		t.Fatalf("new: %d %s", w.Code, w.Body)
	}
	if _, err := e.st.Profile(ctx, "night-shift"); err != nil {
		t.Fatal("the new profile is not stored")
	}
}

// TestForwardForm: a forward the gate refuses shows its reasons next to
// the extension and stores nothing; an allowed one shows in the table
// and can be cleared.
func TestForwardForm(t *testing.T) {
	e := newPageEnv(t)
	e.form("/extensions", url.Values{"number": {"201"}}, nil)
	w := e.form("/extensions/201/forward", url.Values{"when": {"always"}, "to": {"001023276123456"}}, nil)
	if w.Code != 400 || !strings.Contains(w.Body.String(), "may not call abroad") {
		t.Fatalf("refused forward: %d\n%s", w.Code, w.Body)
	}
	w = e.form("/extensions/201/forward", url.Values{"when": {"busy"}, "to": {"00312345678"}}, nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "→ 00312345678") || strings.Contains(w.Body.String(), "→ 001023276123456") {
		t.Fatalf("allowed forward: %d\n%s", w.Code, w.Body)
	}
	w = e.form("/extensions/201/forward/clear", url.Values{"when": {"busy"}}, nil)
	if w.Code != 200 || strings.Contains(w.Body.String(), "→ 00312345678") {
		t.Fatalf("cleared forward still shown: %d", w.Code)
	}
}
