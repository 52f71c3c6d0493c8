package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRemote: the console through the centre's maintenance session acts
// as the maintenance role under the operator's name, puts the centre's
// path before every link, is refused once the office switches
// maintenance off, and has no account pages of its own.
func TestRemote(t *testing.T) {
	h := newHarness(t)
	h.setupAdmin()
	const base = "/units/u-1/console"
	rh := h.s.Remote("alice", base)
	get := func(method, path, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.RemoteAddr = "192.0.2.7:1234" // the tunnel: no network check applies
		if body != "" {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		w := httptest.NewRecorder()
		rh.ServeHTTP(w, r)
		return w
	}
	h.maint = false
	if w := get("GET", base+"/api/me", ""); w.Code != http.StatusForbidden {
		t.Fatalf("maintenance off: %d %s", w.Code, w.Body)
	}
	h.maint = true
	w := get("GET", base+"/api/me", "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"centre/alice"`) || !strings.Contains(w.Body.String(), `"maintenance"`) {
		t.Fatalf("me: %d %s", w.Code, w.Body)
	}
	w = get("GET", base+"/extensions", "")
	page := w.Body.String()
	if w.Code != http.StatusOK || !strings.Contains(page, `href="`+base+`/policy"`) || !strings.Contains(page, `href="`+base+`/static/style.css"`) {
		t.Fatalf("links not under the centre's path: %d\n%s", w.Code, page)
	}
	if strings.Contains(page, `action="`+base+`/logout"`) {
		t.Fatal("a remote session offers the office's logout")
	}
	// The maintenance role may not add extensions, and it is said so.
	if w := get("POST", base+"/api/extensions", `{"number":"301"}`); w.Code != http.StatusForbidden {
		t.Fatalf("maintenance added an extension: %d", w.Code)
	}
	for _, p := range []string{"/login", "/setup", "/api/login", "/api/setup", "/api/logout"} {
		if w := get("GET", base+p, ""); w.Code != http.StatusNotFound {
			t.Errorf("%s through the tunnel: %d", p, w.Code)
		}
	}
	if err := h.st.SetSetting(context.Background(), SettingMaintenance, "off"); err != nil {
		t.Fatal(err)
	}
	if w := get("GET", base+"/extensions", ""); w.Code == http.StatusOK && strings.Contains(w.Body.String(), "centre/alice") {
		t.Fatal("the office switched maintenance off and the operator still sees the console")
	}
	if h.s.MaintenanceAllowed(context.Background()) {
		t.Fatal("the switch reads on after it was switched off")
	}
}
