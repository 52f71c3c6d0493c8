package test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMaintenanceThroughCentre is the vendor's door done right: the
// centre's operator opens a unit's console through the unit's own
// outbound link, only while the office has maintenance switched on; the
// unit's evidence log names the operator; switching it off shuts the
// door at once. The unit listens for nothing of this.
func TestMaintenanceThroughCentre(t *testing.T) {
	c := startCentre(t)
	dir := t.TempDir()
	id := c.join(t, dir, "office-1")
	p := startPBXIn(t, dir)
	waitLog(t, p, "fleet: link to the centre up")
	p.AddExt(t, "201")

	// The operator: a one-time link, a password and a TOTP code.
	var op struct {
		URL string `json:"setup_url"`
	}
	out := c.run(t, "operator", "add", "alice", "--role", "admin", "--json")
	if err := json.Unmarshal(out, &op); err != nil || op.URL == "" {
		t.Fatalf("operator add: %v\n%s", err, out)
	}
	cookie := dashSetup(t, op.URL)
	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", c.dash+path, nil)
		req.AddCookie(cookie)
		res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	consolePath := "/units/" + id + "/console/"

	// Off (the default): the unit declines, and says so in its evidence.
	if code, body := get(consolePath); code != http.StatusForbidden || !strings.Contains(body, "switched off") {
		t.Fatalf("maintenance off: %d %s", code, body)
	}
	waitAudit(t, p, "maintenance-declined", "centre/alice")

	p.run(t, "maintenance", "on")
	code, body := get(consolePath + "extensions")
	if code != http.StatusOK || !strings.Contains(body, "centre/alice") || !strings.Contains(body, "201") {
		t.Fatalf("the unit's console through the centre: %d\n%s", code, body)
	}
	if !strings.Contains(body, `href="/units/`+id+`/console/policy"`) {
		t.Fatal("the unit's links do not stay under the centre's path")
	}
	waitAudit(t, p, "maintenance-open", "centre/alice")

	// The office switches it off: the very next request is refused, and
	// the unit closes the session.
	p.run(t, "maintenance", "off")
	if code, body := get(consolePath + "extensions"); code == http.StatusOK && strings.Contains(body, "centre/alice") {
		t.Fatal("the console still served the operator after the office switched maintenance off")
	}
	waitAudit(t, p, "maintenance-close", "switched maintenance access off")
}

var hiddenInput = regexp.MustCompile(`name="(token|totp_secret)" value="([^"]+)"`)

// dashSetup completes an operator's setup link and returns the session
// cookie it starts.
func dashSetup(t *testing.T, link string) *http.Cookie {
	t.Helper()
	res, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	form := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], m[2])
	}
	if form.Get("token") == "" || form.Get("totp_secret") == "" {
		t.Fatalf("setup page without token or secret:\n%s", page)
	}
	form.Set("password", "a long passphrase for the vendor's centre")
	form.Set("code", totpCode(t, form.Get("totp_secret"), time.Now()))
	u, _ := url.Parse(link)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err = noRedirect.PostForm(u.Scheme+"://"+u.Host+"/setup", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, ck := range res.Cookies() {
		if ck.Value != "" {
			return ck
		}
	}
	t.Fatalf("setup started no session: %d\n%s", res.StatusCode, body)
	return nil
}

// waitAudit waits for an evidence record of typ whose text holds want.
func waitAudit(t *testing.T, p *PBX, typ, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out := string(p.run(t, "audit", "list", "--type", typ, "--limit", "0", "--json"))
		if strings.Contains(out, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s record with %q:\n%s", typ, want, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
