package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestConsoleFirstRun: the first start prints a one-time setup token
// (never into the log lines); with it the first administrator is made,
// logs in, and sees an extension turn registered when a SIPp phone
// registers; the console answers only on its own port.
func TestConsoleFirstRun(t *testing.T) {
	requireTool(t, "sipp")
	p := startPBX(t)
	pw := p.AddExt(t, "201")
	var token string
	deadline := time.Now().Add(5 * time.Second)
	for token == "" && time.Now().Before(deadline) {
		if m := regexp.MustCompile(`setup token:\n([0-9a-f]{64})\n`).FindStringSubmatch(p.Log()); m != nil {
			token = m[1]
		}
		time.Sleep(100 * time.Millisecond)
	}
	if token == "" {
		t.Fatalf("no setup token printed:\n%s", p.Log())
	}
	if regexp.MustCompile(`level=\w+ .*` + token).MatchString(p.Log()) {
		t.Fatal("the setup token is in a log line")
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", p.ConsolePort)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	post := func(path, body string) *http.Response {
		t.Helper()
		res, err := c.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := post("/api/setup", `{"token":"`+token+`","username":"office","password":"correct-horse-battery-9"}`); res.StatusCode != 201 {
		t.Fatalf("setup: %d", res.StatusCode)
	}
	res := post("/api/login", `{"username":"office","password":"correct-horse-battery-9"}`)
	if res.StatusCode != 200 {
		t.Fatalf("login: %d", res.StatusCode)
	}
	// The cookie is Secure; the test client sends it to loopback by hand.
	var session *http.Cookie
	for _, ck := range res.Cookies() {
		session = ck
	}
	registered := func() bool {
		req, _ := http.NewRequest("GET", base+"/api/extensions", nil)
		req.AddCookie(session)
		res, err := c.Do(req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("extensions: %v %v", res, err)
		}
		var exts []struct {
			Number     string
			Registered bool
		}
		json.NewDecoder(res.Body).Decode(&exts)
		res.Body.Close()
		return len(exts) == 1 && exts[0].Number == "201" && exts[0].Registered
	}
	if registered() {
		t.Fatal("201 shown registered before it registered")
	}
	registerSIPp(t, p, "201", pw, callerIP, freePort(t, callerIP), 600)
	if !registered() {
		t.Fatal("201 not shown registered after SIPp registered it")
	}
	quick := &http.Client{Timeout: 2 * time.Second}
	if _, err := quick.Get(fmt.Sprintf("http://%s/api/me", p.SIPAddr())); err == nil {
		t.Error("the SIP address answers HTTP")
	}
}
