package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium, which CI installs (scripts/test.sh).
const chromiumPath = "/usr/bin/chromium"

// Bounds of the browser's waits: one page load or form post, and the
// start of the browser.
const (
	browserStep  = 10 * time.Second
	browserStart = 30 * time.Second
)

// requireChromium returns chromiumPath, or skips the test when it is
// missing on a developer's machine; under CI a missing browser fails.
// (requireTool does not fit: it looks the name up on PATH, and fails
// only when CI is exactly "true".)
func requireChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return chromiumPath
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not installed: CI must install chromium (scripts/test.sh)", chromiumPath)
	}
	t.Skipf("%s not installed", chromiumPath)
	return ""
}

// browser is a headless Chromium tab on the PBX's console.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string // http://127.0.0.1:PORT
}

// startBrowser starts headless Chromium with a fresh profile; it is closed
// when the test ends.
func startBrowser(t *testing.T, base string) *browser {
	t.Helper()
	path := requireChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		// English unless the page's switch says otherwise, whatever the
		// machine's locale.
		chromedp.Flag("lang", "en-US"),
		chromedp.Flag("accept-lang", "en-US"),
		// Only the console on loopback: no proxy, no updates.
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("disable-component-update", true),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	// The first Run starts the browser and ties it to its context, so it
	// gets no timeout of its own: a timer cancels a start that hangs.
	stuck := time.AfterFunc(browserStart, cancel)
	err := chromedp.Do(ctx)
	if !stuck.Stop() {
		t.Fatalf("chromium did not start in %v", browserStart)
	}
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, base: base}
}

// browserRun runs one action, bounded by browserStep.
func browserRun[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("browser: %s: %v%s", what, err, b.page())
	}
	return v
}

// do runs actions that return nothing, bounded by browserStep.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	browserRun(b, what, chromedp.Steps(actions...))
}

// page describes the current page for a failure message.
func (b *browser) page() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return fmt.Sprintf("\n--- page %s:\n%s", loc, text)
}

// open loads path (or a full URL) and fails unless it answers 200.
func (b *browser) open(path string) {
	b.t.Helper()
	url := path
	if strings.HasPrefix(path, "/") {
		url = b.base + path
	}
	res := browserRun(b, "open "+path, chromedp.NavigateResponse(url))
	if res == nil || res.Status != 200 {
		b.t.Fatalf("open %s: %v%s", path, status(res), b.page())
	}
}

// submit clicks the button sel (a form's submit, a link) and waits for
// the page it leads to; it returns that page's status.
func (b *browser) submit(what, sel string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("browser: %s: %v%s", what, err, b.page())
	}
	return int(status(res))
}

func status(res *network.Response) int64 {
	if res == nil {
		return 0
	}
	return res.Status
}

// fill types value into the form field sel, replacing what it held.
func (b *browser) fill(sel, value string) {
	b.t.Helper()
	// SetValue(sel, "") cannot clear a field: chromedp v0.23.0 passes
	// the empty string as undefined, and the field then reads
	// "undefined" ("could not set value on node").
	clear := chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).value = ""`, sel))
	b.do("fill "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), clear, chromedp.SendKeys(chromedp.CSS(sel), value))
}

// text returns the visible text of the first element matching sel.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return browserRun(b, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// has tells whether an element matches sel now (without waiting).
func (b *browser) has(sel string) bool {
	b.t.Helper()
	return browserRun(b, "look for "+sel, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q) !== null`, sel)))
}

// path is the path of the page shown.
func (b *browser) path() string {
	b.t.Helper()
	loc := browserRun(b, "location", chromedp.Location())
	return strings.TrimPrefix(loc, b.base)
}

// must fails the test unless the page at path shows sel.
func (b *browser) must(sel, why string) {
	b.t.Helper()
	if !b.has(sel) {
		b.t.Fatalf("%s: no %s on %s%s", why, sel, b.path(), b.page())
	}
}

// sessionCookie fails the test unless the browser holds the console's
// session cookie, HttpOnly, Secure and SameSite=Strict.
func (b *browser) sessionCookie() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base + "/"}})
	if err != nil {
		b.t.Fatalf("browser: cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == "sekisho_session" {
			if !c.Secure || !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict {
				b.t.Errorf("session cookie: Secure %v, HttpOnly %v, SameSite %q; want Secure, HttpOnly, Strict", c.Secure, c.HTTPOnly, c.SameSite)
			}
			return
		}
	}
	b.t.Fatalf("the browser holds no session cookie for %s%s", b.base, b.page())
}

// rawKey matches an i18n key shown as itself (a key missing from the
// console's words): "nav.calls", "limit.intl_hour".
var rawKey = regexp.MustCompile(`\b(?:brand|nav|setup|totp|enrol|login|dash|ext|trunk|did|policy|limit|ban|cdr|ev|set|lang|err)\.[a-z_.]+\b`)

// noRawKeys fails the test if the page shows an untranslated key.
func (b *browser) noRawKeys(where string) {
	b.t.Helper()
	text := browserRun(b, "page text", chromedp.Evaluate[string](`document.body.innerText`))
	if keys := rawKey.FindAllString(text, -1); len(keys) > 0 {
		b.t.Errorf("%s shows untranslated keys %q", where, keys)
	}
}

// addCarrierTrunk adds a trunk to a SIPp carrier at carrierIP (as
// startPBXWithTrunk, without its extensions) and returns the carrier's port.
func addCarrierTrunk(t *testing.T, p *PBX) int {
	t.Helper()
	carrierPort := freePort(t, carrierIP)
	pwFile := filepath.Join(t.TempDir(), "trunk-password")
	if err := os.WriteFile(pwFile, []byte(trunkPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.secretsMu.Lock()
	p.secrets = append(p.secrets, trunkPassword)
	p.secretsMu.Unlock()
	p.run(t, "trunk", "add", "carrier", "--peer", net.JoinHostPort(carrierIP, strconv.Itoa(carrierPort)),
		"--username", trunkUser, "--password-file", pwFile, "--caller-id", trunkCallerID)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Log(), `msg="trunk: loaded" count=1`) {
		if time.Now().After(deadline) {
			t.Fatalf("server never loaded the trunk:\n%s", p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return carrierPort
}

// TestBrowserConsole drives the console's pages in headless Chromium as
// an office would: first-run setup with the printed URL and a second
// factor, log out and in again (a TOTP code is good once), add an
// extension and read its show-once password and QR code, see it turn
// registered, see it suspended after calls abroad over its limit and
// unlock it, check the incident's dial string, switch the language, and
// keep a screenshot of the dashboard.
func TestBrowserConsole(t *testing.T) {
	requireTool(t, "sipp")
	requireChromium(t)
	start := time.Now()
	p := startPBX(t)
	carrierPort := addCarrierTrunk(t, p)
	// The profile 201 will get: Sierra Leone allowed, one call an hour.
	p.run(t, "profile", "add", "abroad", "--class", "international", "--countries", "SL",
		"--intl-per-hour", "1", "--intl-per-minute", "10", "--max-calls", "5", "--daily-spend", "200000")
	p.run(t, "limits", "set", "--daily-spend", "0")
	setupURL, token := consoleSetup(t, p)
	base := "http://" + p.ConsoleAddr()
	if !strings.HasPrefix(setupURL, base+"/") {
		t.Fatalf("setup URL %q is not on the console %s", setupURL, base)
	}
	b := startBrowser(t, base)

	// First run: the token comes from the URL; the second factor is
	// enrolled from the key shown on the page.
	const user, password = "office", "correct-horse-battery-9"
	b.open(setupURL)
	if got := browserRun(b, "token field", chromedp.Value(chromedp.CSS(`#setup input[name=token]`))); got != token {
		t.Fatalf("setup page's token field %q, want the URL's token", got)
	}
	secret := strings.TrimSpace(b.text("#totp-secret"))
	if secret == "" {
		t.Fatalf("no TOTP key on the setup page%s", b.page())
	}
	b.must(".qr svg", "setup page's enrolment QR code")
	b.fill(`#setup input[name=username]`, user)
	b.fill(`#setup input[name=password]`, password)
	setupAt := time.Now()
	setupCode := totpCode(t, secret, setupAt)
	b.fill(`#setup input[name=code]`, setupCode)
	if code := b.submit("create the administrator", `#setup button`); code != 200 || b.path() != "/" {
		t.Fatalf("setup led to %s (%d), want the dashboard%s", b.path(), code, b.page())
	}
	// Logged in: Chromium keeps the Secure session cookie on
	// http://127.0.0.1, a potentially trustworthy origin.
	b.must("#suspended", "dashboard after setup")
	b.sessionCookie()
	if who := b.text("header .who"); !strings.Contains(who, user) {
		t.Errorf("header %q does not name %s", who, user)
	}

	// Log out, and in again: the code spent at setup is refused, the next
	// step's code is accepted.
	if code := b.submit("log out", `header form[action="/logout"] button`); code != 200 || b.path() != "/login" {
		t.Fatalf("log out led to %s (%d)%s", b.path(), code, b.page())
	}
	login := func(code string) int {
		t.Helper()
		b.fill(`#login input[name=username]`, user)
		b.fill(`#login input[name=password]`, password)
		b.fill(`#login input[name=code]`, code)
		return b.submit("log in", `#login button`)
	}
	if code := login(setupCode); code != 401 || b.path() != "/login" {
		t.Fatalf("the code spent at setup logged in again: %s (%d)%s", b.path(), code, b.page())
	}
	if msg := b.text(`main .error`); !strings.Contains(msg, "wrong") {
		t.Errorf("refused login shows %q", msg)
	}
	if code := login(totpCode(t, secret, waitTOTPStepAfter(t, totpStep(setupAt)))); code != 200 || b.path() != "/" {
		t.Fatalf("login with the next code led to %s (%d)%s", b.path(), code, b.page())
	}
	b.must("#suspended", "dashboard after login")

	// Add extension 201: its password and QR code are shown once.
	if code := b.submit("go to Extensions", `nav a[href="/extensions"]`); code != 200 {
		t.Fatalf("extensions page: %d%s", code, b.page())
	}
	b.fill(`#add-extension input[name=number]`, "201")
	b.fill(`#add-extension input[name=name]`, "Reception")
	if code := b.submit("add extension 201", `#add-extension button`); code != 200 {
		t.Fatalf("add extension: %d%s", code, b.page())
	}
	pw := strings.TrimSpace(b.text("#new-password"))
	if pw == "" {
		t.Fatalf("no password shown for 201%s", b.page())
	}
	p.secretsMu.Lock()
	p.secrets = append(p.secrets, pw) // Stop checks the whole log too
	p.secretsMu.Unlock()
	b.must("#created .qr svg", "provisioning QR code of 201")
	if strings.Contains(p.Log(), pw) {
		t.Error("201's password is in the PBX's log")
	}

	// SIPp registers 201; the page shows it within seconds.
	b.open("/extensions")
	if b.has("#ext-201 .state-registered") {
		t.Fatal("201 shown registered before it registered")
	}
	registerSIPp(t, p, "201", pw, callerIP, freePort(t, callerIP), 600)
	for deadline := time.Now().Add(10 * time.Second); ; {
		b.open("/extensions") // a GET: reloading the POST's answer would post again
		if b.has("#ext-201 .state-registered") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("201 not shown registered 10 s after SIPp registered it%s", b.page())
		}
		time.Sleep(300 * time.Millisecond)
	}

	// Calls abroad over 201's limit: the second call to Sierra Leone in
	// the hour is refused and 201 is suspended.
	p.run(t, "ext", "set", "201", "--profile", "abroad")
	time.Sleep(policyReload)
	callOut(t, p, pw, carrierPort, "001023276123456", "uac_call.xml")
	r := runSIPp(t, sippSpec{
		Name: "over-limit", Scenario: "uac_reject.xml", Target: p.SIPAddr(), IP: callerIP,
		Service: "001023276123456", Rows: [][]string{{"201", pw}}, Sets: map[string]string{"want": "403"},
	})
	if !r.ok(1) {
		t.Fatalf("the call over the limit was not refused with 403:\n%s\n%s", r.summary(), r.report())
	}
	// The dashboard reloads itself every 5 s; opening it again is quicker.
	for deadline := time.Now().Add(10 * time.Second); ; {
		b.open("/")
		if b.has(`#suspended form[action="/extensions/201/unlock"]`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard does not list 201 as suspended%s", b.page())
		}
		time.Sleep(300 * time.Millisecond)
	}
	if s := b.text("#suspended"); !strings.Contains(s, "201") || !strings.Contains(s, "intl-per-hour") {
		t.Errorf("suspended list %q: want 201 and the limit it broke", s)
	}
	if code := b.submit("unlock 201", `#suspended form[action="/extensions/201/unlock"] button`); code != 200 {
		t.Fatalf("unlock: %d%s", code, b.page())
	}
	if b.has("#ext-201 .state-suspended") || b.has("#ext-201.bad") {
		t.Errorf("201 still shown suspended after the unlock%s", b.page())
	}
	var exts []struct {
		Number    string `json:"number"`
		Suspended string `json:"suspended"`
	}
	if err := json.Unmarshal(p.run(t, "ext", "list", "--json"), &exts); err != nil || len(exts) != 1 || exts[0].Number != "201" || exts[0].Suspended != "" {
		t.Errorf("ext list after the unlock: %+v %v", exts, err)
	}
	b.open("/")
	if b.has(`#suspended form`) {
		t.Errorf("the dashboard still lists a suspension%s", b.page())
	}

	// Check a number: the incident's dial string (a symbol before 010)
	// is denied.
	if code := b.submit("go to the policy", `nav a[href="/policy"]`); code != 200 {
		t.Fatalf("policy page: %d%s", code, b.page())
	}
	b.fill(`#check input[name=from]`, "201")
	b.fill(`#check input[name=dialled]`, "0#001023276123456")
	if code := b.submit("check a number", `#check button`); code != 200 {
		t.Fatalf("check a number: %d%s", code, b.page())
	}
	if v := b.text("#verdict"); !strings.Contains(v, "deny") {
		t.Errorf("verdict for 0#001023276123456 from 201: %q, want deny", v)
	}
	b.must("#verdict.deny", "the verdict's style")

	// Japanese with the switch, every page translated, and back.
	b.open("/")
	if code := b.submit("switch to Japanese", `a.lang`); code != 200 || b.path() != "/" {
		t.Fatalf("language switch led to %s (%d)%s", b.path(), code, b.page())
	}
	b.must(`html[lang=ja]`, "Japanese after the switch")
	if nav := b.text("nav"); !strings.Contains(nav, "ダッシュボード") {
		t.Errorf("navigation in Japanese: %q", nav)
	}
	for _, page := range []string{"/", "/extensions", "/trunks", "/policy", "/bans", "/calls", "/evidence", "/settings"} {
		b.open(page)
		b.noRawKeys("ja " + page)
	}
	b.open("/")
	if code := b.submit("switch to English", `a.lang`); code != 200 {
		t.Fatalf("language switch back: %d%s", code, b.page())
	}
	b.must(`html[lang=en]`, "English after switching back")
	if nav := b.text("nav"); !strings.Contains(nav, "Dashboard") {
		t.Errorf("navigation in English: %q", nav)
	}
	b.noRawKeys("en /")

	// A screenshot of the dashboard, kept as an artefact.
	png := browserRun(b, "screenshot", chromedp.FullScreenshot(100)) // 100: PNG; less is JPEG
	dir := os.Getenv("SEKISHO_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if abs, err := filepath.Abs(shot); err == nil {
		shot = abs
	}
	t.Logf("dashboard screenshot: %s", shot)
	t.Logf("browser flow took %v", time.Since(start).Round(100*time.Millisecond))
}
