package test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// setupURLPattern is the line a first start prints to the terminal: the
// console's setup page with the one-time token.
var setupURLPattern = regexp.MustCompile(`(http://\S+/setup\?token=([0-9a-f]{64}))\n`)

// consoleSetup waits for the setup URL a first start prints and returns it
// with its token. The token must never be in a log line.
func consoleSetup(t *testing.T, p *PBX) (url, token string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m := setupURLPattern.FindStringSubmatch(p.Log()); m != nil {
			url, token = m[1], m[2]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no setup URL printed:\n%s", p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if regexp.MustCompile(`level=\w+ .*` + token).MatchString(p.Log()) {
		t.Fatal("the setup token is in a log line")
	}
	return url, token
}

// The console's TOTP: RFC 6238, SHA-1, 6 digits, 30-second steps.
const totpPeriod = 30

// totpCode is what an authenticator app shows for secret at time at.
func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatalf("totp code: %v", err)
	}
	return code
}

// totpStep is the 30-second step of at.
func totpStep(at time.Time) int64 { return at.Unix() / totpPeriod }

// waitTOTPStepAfter waits until the clock is in a step after step, so that
// an app shows a code the console has not accepted yet (a code is good
// once), and returns the time to compute that code at.
func waitTOTPStepAfter(t *testing.T, step int64) time.Time {
	t.Helper()
	next := time.Unix((step+1)*totpPeriod, 0)
	if d := time.Until(next); d > 0 {
		if d > (totpPeriod+1)*time.Second {
			t.Fatalf("step %d is %v away", step+1, d)
		}
		t.Logf("waiting %v for the next TOTP step", d.Round(time.Millisecond))
		time.Sleep(d + 50*time.Millisecond)
	}
	return time.Now()
}

// TestConsoleFirstRun: the first start prints a one-time setup URL
// (never into the log lines); with its token, a password and a second
// factor the first administrator is made and is logged in at once, and
// sees an extension turn registered when a SIPp phone registers; the
// code used at setup is good once, a later login needs the next one; the
// console answers only on its own port.
func TestConsoleFirstRun(t *testing.T) {
	requireTool(t, "sipp")
	p := startPBX(t)
	pw := p.AddExt(t, "201")
	setupURL, token := consoleSetup(t, p)
	base := "http://" + p.ConsoleAddr()
	if want := base + "/setup?token=" + token; setupURL != want {
		t.Errorf("setup URL %q, want %q", setupURL, want)
	}
	// No cookie jar: Go's jar keeps Secure cookies off plain http, so
	// the test client sends the session cookie to loopback by hand.
	c := &http.Client{Timeout: 10 * time.Second}
	post := func(path, body string) *http.Response {
		t.Helper()
		res, err := c.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	get := func(path string, session *http.Cookie, v any) int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if session != nil {
			req.AddCookie(session)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		if v != nil && res.StatusCode == 200 {
			if err := json.NewDecoder(res.Body).Decode(v); err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
		}
		return res.StatusCode
	}
	sessionOf := func(res *http.Response) *http.Cookie {
		t.Helper()
		for _, ck := range res.Cookies() {
			if ck.Name == "sekisho_session" && ck.Value != "" {
				if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
					t.Errorf("session cookie %s: want Secure, HttpOnly, SameSite=Strict", ck)
				}
				return ck
			}
		}
		t.Fatalf("no session cookie in %v", res.Cookies())
		return nil
	}

	var enrol struct{ Secret string }
	if code := get("/api/totp/new?username=office", nil, &enrol); code != 200 || enrol.Secret == "" {
		t.Fatalf("totp/new: %d %+v", code, enrol)
	}
	const password = "correct-horse-battery-9"
	setupAt := time.Now()
	setupCode := totpCode(t, enrol.Secret, setupAt)
	res := post("/api/setup", fmt.Sprintf(`{"token":%q,"username":"office","password":%q,"totp_secret":%q,"code":%q}`,
		token, password, enrol.Secret, setupCode))
	if res.StatusCode != 201 {
		t.Fatalf("setup: %d", res.StatusCode)
	}
	// Setup logs the administrator in: no separate login.
	session := sessionOf(res)
	var me struct{ Username, Role string }
	if code := get("/api/me", session, &me); code != 200 || me.Username != "office" || me.Role != "admin" {
		t.Fatalf("me after setup: %d %+v", code, me)
	}
	registered := func() bool {
		t.Helper()
		var exts []struct {
			Number     string
			Registered bool
		}
		if code := get("/api/extensions", session, &exts); code != 200 {
			t.Fatalf("extensions: %d", code)
		}
		return len(exts) == 1 && exts[0].Number == "201" && exts[0].Registered
	}
	if registered() {
		t.Fatal("201 shown registered before it registered")
	}
	registerSIPp(t, p, "201", pw, callerIP, freePort(t, callerIP), 600)
	if !registered() {
		t.Fatal("201 not shown registered after SIPp registered it")
	}

	// The code spent at setup does not log in again; the next step's does.
	login := func(code string) *http.Response {
		t.Helper()
		return post("/api/login", fmt.Sprintf(`{"username":"office","password":%q,"code":%q}`, password, code))
	}
	if res := login(setupCode); res.StatusCode != 401 {
		t.Errorf("login with the code spent at setup: %d, want 401", res.StatusCode)
	}
	res = login(totpCode(t, enrol.Secret, waitTOTPStepAfter(t, totpStep(setupAt))))
	if res.StatusCode != 200 {
		t.Fatalf("login with the next code: %d", res.StatusCode)
	}
	if code := get("/api/me", sessionOf(res), &me); code != 200 || me.Username != "office" {
		t.Errorf("me after login: %d %+v", code, me)
	}

	quick := &http.Client{Timeout: 2 * time.Second}
	if _, err := quick.Get(fmt.Sprintf("http://%s/api/me", p.SIPAddr())); err == nil {
		t.Error("the SIP address answers HTTP")
	}
	// The console's port on the SIP address: nothing listens there.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(p.IP, fmt.Sprint(p.ConsolePort)), 2*time.Second); err == nil {
		c.Close()
		t.Errorf("the console's port %d answers on the SIP address %s", p.ConsolePort, p.IP)
	}
}
