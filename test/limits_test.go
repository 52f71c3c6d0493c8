package test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// webhookReceiver is a local HTTP endpoint that keeps the alerts POSTed to
// it whose signature checks out against the PBX's key.
type webhookReceiver struct {
	srv      *httptest.Server
	dataDir  string
	mu       sync.Mutex
	alerts   []map[string]any
	rejected int
}

func startWebhook(t *testing.T) *webhookReceiver {
	w := &webhookReceiver{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		keyHex, err := os.ReadFile(filepath.Join(w.dataDir, "webhook.key"))
		key, _ := hex.DecodeString(strings.TrimSpace(string(keyHex)))
		m := hmac.New(sha256.New, key)
		m.Write(body)
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil || !hmac.Equal([]byte(r.Header.Get("X-Sekisho-Signature")), []byte("sha256="+hex.EncodeToString(m.Sum(nil)))) {
			w.rejected++
			http.Error(rw, "bad signature", http.StatusUnauthorized)
			return
		}
		var a map[string]any
		json.Unmarshal(body, &a)
		w.alerts = append(w.alerts, a)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhookReceiver) wait(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		w.mu.Lock()
		got := append([]map[string]any(nil), w.alerts...)
		rej := w.rejected
		w.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook got %d alerts (%d with a bad signature), want %d", len(got), rej, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// policyReload is how long the server may take to see a policy change
// made with the CLI (it reloads every 2 s).
const policyReload = 3 * time.Second

// TestSuspensionLoop is the incident replayed against an extension that is
// allowed to call Sierra Leone, with its credentials stolen: calls to +232
// are placed while earlier ones are still up; the call that would exceed
// the profile's limit is refused, the extension is suspended, the calls in
// progress are hung up by the PBX, a signed alert reaches the webhook, and
// every later outside call is refused until `sekisho ext unlock`.
func TestSuspensionLoop(t *testing.T) {
	requireTool(t, "sipp")
	hook := startWebhook(t)
	p, pw201, _, carrierPort := startPBXWithTrunk(t, "--alert-webhooks", hook.srv.URL+"/alerts/secret-path")
	hook.dataDir = p.Data
	p.run(t, "profile", "add", "abroad", "--class", "international", "--countries", "SL",
		"--intl-per-hour", "3", "--intl-per-minute", "10", "--max-calls", "5", "--daily-spend", "200000")
	p.run(t, "ext", "set", "201", "--profile", "abroad")
	// The PBX-wide budget would hold after two hour-long calls to +232
	// are reserved; this test is about the extension's limit.
	p.run(t, "limits", "set", "--daily-spend", "0")
	time.Sleep(policyReload)

	// Three calls to Sierra Leone, up at the same time; the attacker's
	// SIPp keeps them open until the PBX hangs them up.
	carrier := startSIPp(t, sippSpec{
		Name: "carrier", Scenario: "carrier_uas.xml", IP: carrierIP, Port: carrierPort, Calls: 3,
		Keys: map[string]string{"cuser": trunkUser, "cpass": trunkPassword},
	})
	attacker := startSIPp(t, sippSpec{
		Name: "attacker", Scenario: "uac_call_wait_bye.xml", Target: p.SIPAddr(), IP: callerIP,
		Service: "001023276123456", Rows: [][]string{{"201", pw201}}, Calls: 3, Rate: 10,
	})
	p.waitCDRs(t, "three answered calls abroad", func(rs []CDR) bool {
		n := 0
		for _, r := range rs {
			if r.Answered != "" && r.State == "active" && r.Country == "SL" {
				n++
			}
		}
		return n == 3
	})

	// The fourth breaks intl-per-hour 3.
	r := runSIPp(t, sippSpec{
		Name: "attacker-4", Scenario: "uac_reject.xml", Target: p.SIPAddr(), IP: callerIP,
		Service: "001023276123456", Rows: [][]string{{"201", pw201}}, Sets: map[string]string{"want": "403"},
	})
	if !r.ok(1) {
		t.Fatalf("the call over the limit was not refused with 403:\n%s\n%s", r.summary(), r.report())
	}
	// The PBX ends the three calls in progress, on both legs.
	if ar, cr := attacker.WaitAtMost(20*time.Second), carrier.WaitAtMost(20*time.Second); !ar.ok(3) || !cr.ok(3) {
		t.Fatalf("calls in progress were not hung up by the PBX:\n%s\n%s\n%s%s", ar.summary(), cr.summary(), ar.report(), cr.report())
	}
	alerts := hook.wait(t, 1)
	if a := alerts[0]; a["kind"] != "suspended" || a["subject"] != "extension 201" || !strings.Contains(a["detail"].(string), "intl-per-hour") {
		t.Errorf("alert %+v", a)
	}
	rs := p.waitCDRs(t, "every call finished", allCallsDone(4))
	for _, c := range rs {
		if c.Answered == "" {
			continue
		}
		if c.HangupBy != "pbx" || !strings.Contains(c.ResultReason, "suspended") || c.Cost <= 0 {
			t.Errorf("call in progress at the suspension: %+v", c)
		}
	}

	// Suspended: abroad, at home, anything outside is refused; the
	// carrier hears nothing.
	quiet := startCarrier(t, carrierPort)
	for _, dial := range []string{"001023276123456", "00312345678"} {
		r := runSIPp(t, sippSpec{
			Name: "suspended", Scenario: "uac_reject.xml", Target: p.SIPAddr(), IP: callerIP,
			Service: dial, Rows: [][]string{{"201", pw201}}, Sets: map[string]string{"want": "403"},
		})
		if !r.ok(1) {
			t.Errorf("suspended extension dialling %s: want 403\n%s\n%s", dial, r.summary(), r.report())
		}
	}
	if n := len(quiet.WaitAtMost(time.Second).received("INVITE ")); n != 0 {
		t.Fatalf("the carrier received %d INVITEs from a suspended extension", n)
	}
	var exts []struct {
		Number    string `json:"number"`
		Suspended string `json:"suspended"`
	}
	json.Unmarshal(p.run(t, "ext", "list", "--json"), &exts)
	if len(exts) == 0 || exts[0].Number != "201" || !strings.Contains(exts[0].Suspended, "intl-per-hour") {
		t.Errorf("ext list does not show the suspension: %+v", exts)
	}

	// A person unlocks it: calls abroad work again.
	p.run(t, "ext", "unlock", "201")
	callOut(t, p, pw201, carrierPort, "001023276123456", "uac_call.xml")
	if strings.Contains(p.Log(), "secret-path") {
		t.Error("the webhook URL's path was written to the log")
	}
}
