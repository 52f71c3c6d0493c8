package console

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/store"
)

type events struct{ got []audit.Event }

func (e *events) Record(ev audit.Event) { e.got = append(e.got, ev) }
func (e *events) Note(ev audit.Event)   { e.got = append(e.got, ev) }

type harness struct {
	t     *testing.T
	s     *Server
	st    *store.Store
	ev    *events
	now   time.Time
	token string
	maint bool
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &harness{t: t, st: st, ev: &events{}, now: time.Now()}
	if h.token, err = Setup(ctx, st, h.now); err != nil || h.token == "" {
		t.Fatalf("setup token %q %v", h.token, err)
	}
	h.s = New(Config{Store: st, Evidence: h.ev, Now: func() time.Time { return h.now },
		AdminNetworks:      []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		MaintenanceAllowed: func() bool { return h.maint }})
	return h
}

// do sends a request from peer (default loopback) with cookie and body.
func (h *harness) do(method, path, body string, cookie *http.Cookie, peer ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = "127.0.0.1:50000"
	if len(peer) > 0 {
		r.RemoteAddr = peer[0]
	}
	if cookie != nil {
		r.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	h.s.ServeHTTP(w, r)
	return w
}

func (h *harness) login(user, pw string) *http.Cookie {
	h.t.Helper()
	w := h.do("POST", "/api/login", `{"username":"`+user+`","password":"`+pw+`"}`, nil)
	if w.Code != 200 {
		h.t.Fatalf("login %s: %d %s", user, w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	h.t.Fatal("no session cookie")
	return nil
}

const adminPW = "correct-horse-battery-9"

func (h *harness) setupAdmin() *http.Cookie {
	h.t.Helper()
	if w := h.do("POST", "/api/setup", `{"token":"`+h.token+`","username":"office","password":"`+adminPW+`"}`, nil); w.Code != 201 {
		h.t.Fatalf("setup: %d %s", w.Code, w.Body)
	}
	return h.login("office", adminPW)
}

// TestSetupOnce: no account exists until the one-time token makes the
// first; a wrong or reused token, or an expired one, makes nothing.
func TestSetupOnce(t *testing.T) {
	h := newHarness(t)
	if w := h.do("POST", "/api/setup", `{"token":"wrong","username":"office","password":"`+adminPW+`"}`, nil); w.Code != 403 {
		t.Fatalf("wrong token: %d", w.Code)
	}
	if w := h.do("POST", "/api/setup", `{"token":"`+h.token+`","username":"office","password":"short"}`, nil); w.Code != 400 || !strings.Contains(w.Body.String(), `"field":"password"`) {
		t.Fatalf("weak password: %d %s", w.Code, w.Body)
	}
	c := h.setupAdmin()
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie flags %+v", c)
	}
	if w := h.do("POST", "/api/setup", `{"token":"`+h.token+`","username":"evil","password":"`+adminPW+`x"}`, nil); w.Code != 403 {
		t.Fatalf("reused token: %d", w.Code)
	}
	h2 := newHarness(t)
	h2.now = h2.now.Add(SetupTokenLife + time.Minute)
	if w := h2.do("POST", "/api/setup", `{"token":"`+h2.token+`","username":"office","password":"`+adminPW+`"}`, nil); w.Code != 403 {
		t.Fatalf("expired token: %d", w.Code)
	}
	if tok, _ := Setup(context.Background(), h.st, time.Now()); tok != "" {
		t.Fatal("a setup token was made while an account exists")
	}
}

// TestLoginLockout: wrong passwords lock the account with a growing
// delay; while locked even the right password is refused; an unknown
// user gets the wrong-password answer.
func TestLoginLockout(t *testing.T) {
	h := newHarness(t)
	h.setupAdmin()
	for i := range 3 {
		if w := h.do("POST", "/api/login", `{"username":"office","password":"nope"}`, nil); w.Code != 401 {
			t.Fatalf("failure %d: %d", i+1, w.Code)
		}
	}
	if w := h.do("POST", "/api/login", `{"username":"office","password":"`+adminPW+`"}`, nil); w.Code != 429 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("locked account with the right password: %d", w.Code)
	}
	h.now = h.now.Add(3 * time.Second)
	h.login("office", adminPW)
	if w := h.do("POST", "/api/login", `{"username":"nobody","password":"nope"}`, nil); w.Code != 401 {
		t.Fatalf("unknown user: %d", w.Code)
	}
	if lockFor(2) != 0 || lockFor(3) != 2*time.Second || lockFor(5) != 8*time.Second || lockFor(100) != 15*time.Minute {
		t.Error("lockFor")
	}
}

// TestRolesAndSessions: an operator may view and unlock but not create
// accounts; maintenance is refused while switched off; sessions end when
// idle; every change names its actor in the evidence log.
func TestRolesAndSessions(t *testing.T) {
	h := newHarness(t)
	admin := h.setupAdmin()
	ctx := context.Background()
	h.st.AddExtension(ctx, store.Extension{Number: "201", Realm: "r", HA1MD5: "a", HA1SHA256: "b", Digest: "md5"})
	h.st.Suspend(ctx, "201", "intl-per-hour", h.now)
	for _, u := range []string{`{"username":"desk","password":"quiet-lantern-42-oak","role":"operator"}`,
		`{"username":"vendor","password":"amber-river-77-stone","role":"maintenance"}`} {
		if w := h.do("POST", "/api/users", u, admin); w.Code != 201 {
			t.Fatalf("add user: %d %s", w.Code, w.Body)
		}
	}
	op := h.login("desk", "quiet-lantern-42-oak")
	if w := h.do("POST", "/api/users", `{"username":"x2","password":"another-password-1","role":"admin"}`, op); w.Code != 403 {
		t.Fatalf("operator created an account: %d", w.Code)
	}
	w := h.do("GET", "/api/extensions", "", op)
	var exts []extView
	json.Unmarshal(w.Body.Bytes(), &exts)
	if w.Code != 200 || len(exts) != 1 || exts[0].Suspended == "" {
		t.Fatalf("extensions: %d %s", w.Code, w.Body)
	}
	if w := h.do("POST", "/api/extensions/201/unlock", "", op); w.Code != 200 {
		t.Fatalf("operator unlock: %d %s", w.Code, w.Body)
	}
	if e, _ := h.st.Extension(ctx, "201"); !e.Suspended.IsZero() {
		t.Fatal("not unlocked")
	}
	last := h.ev.got[len(h.ev.got)-1]
	if last.Type != audit.Unlock || last.Source != "console:desk" {
		t.Errorf("evidence %+v", last)
	}
	if w := h.do("POST", "/api/login", `{"username":"vendor","password":"amber-river-77-stone"}`, nil); w.Code != 403 {
		t.Fatalf("maintenance logged in while switched off: %d", w.Code)
	}
	h.maint = true
	vendor := h.login("vendor", "amber-river-77-stone")
	if w := h.do("POST", "/api/extensions/201/unlock", "", vendor); w.Code != 403 {
		t.Fatalf("maintenance unlocked: %d", w.Code)
	}
	h.maint = false
	if w := h.do("GET", "/api/me", "", vendor); w.Code != 403 {
		t.Fatalf("maintenance session still works after switch-off: %d", w.Code)
	}
	h.now = h.now.Add(IdleTimeout + time.Minute)
	if w := h.do("GET", "/api/me", "", op); w.Code != 401 {
		t.Fatalf("idle session still works: %d", w.Code)
	}
	if w := h.do("GET", "/api/me", "", nil); w.Code != 401 {
		t.Fatalf("no session: %d", w.Code)
	}
}

// TestDoorAndCSRF: a peer outside loopback and the admin networks is
// refused; a cross-site POST is refused; bad JSON names the problem.
func TestDoorAndCSRF(t *testing.T) {
	h := newHarness(t)
	admin := h.setupAdmin()
	if w := h.do("GET", "/api/me", "", admin, "198.51.100.9:40000"); w.Code != 403 {
		t.Fatalf("outside peer: %d", w.Code)
	}
	if w := h.do("GET", "/api/me", "", admin, "192.0.2.10:40000"); w.Code != 200 {
		t.Fatalf("admin-network peer: %d", w.Code)
	}
	r := httptest.NewRequest("POST", "/api/extensions/201/unlock", nil)
	r.RemoteAddr = "127.0.0.1:1"
	r.AddCookie(admin)
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	w := httptest.NewRecorder()
	h.s.ServeHTTP(w, r)
	if w.Code != 403 {
		t.Fatalf("cross-site POST: %d", w.Code)
	}
	if w := h.do("POST", "/api/users", `{"username":"x","bogus":1}`, admin); w.Code != 400 || !strings.Contains(w.Body.String(), "error") {
		t.Fatalf("unknown field: %d %s", w.Code, w.Body)
	}
	if w := h.do("POST", "/api/users", `{"username":"ok-name","password":"fine-password-long-1","role":"root"}`, admin); w.Code != 400 || !strings.Contains(w.Body.String(), `"field":"role"`) {
		t.Fatalf("bad role: %d %s", w.Code, w.Body)
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
