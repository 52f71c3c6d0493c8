package test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTLSOutsidePhoneNetworks: an extension allowed (by its own
// --networks) to come from outside the PBX's phone networks must use TLS
// from there. baresip as 201 over UDP is refused like a wrong password,
// and the failure is recorded; over TLS, trusting the certificate the PBX
// made on first start, it registers and calls 202 (a SIPp phone inside
// the phone networks), which answers.
func TestTLSOutsidePhoneNetworks(t *testing.T) {
	requireTool(t, "baresip")
	requireTool(t, "sipp")
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	// The phone network is 202's address only; baresip (127.0.0.1) is
	// outside it and allowed in by 201's own list.
	// baresip retries a refused registration at once: a high ban threshold
	// keeps its address usable for the TLS half of the test.
	p := startPBX(t, "--phone-networks", calleeIP+"/32", "--ban-after", "1000")
	pw201, pw202 := p.AddExt(t, "201"), p.AddExt(t, "202")
	p.run(t, "ext", "set", "201", "--networks", "127.0.0.0/8")
	uasPort := freePort(t, calleeIP)
	registerSIPp(t, p, "202", pw202, calleeIP, uasPort, 3600)

	wav := filepath.Join(t.TempDir(), "tone.wav")
	if err := writeToneWAV(wav, 440, 30, 8000); err != nil {
		t.Fatal(err)
	}
	udp := startBaresip(ctx, t, "udp-201", "201", pw201, p, wav)
	if registeredWithin(udp, 6*time.Second) {
		t.Fatal("201 registered over UDP from outside the phone networks")
	}
	udp.stop()
	if !strings.Contains(p.Log(), "TLS required from outside the phone networks") {
		t.Error("the refused UDP registration was not recorded as a failed authentication")
	}

	callee := startSIPp(t, sippSpec{Name: "callee-202", Scenario: "uas_answer.xml", IP: calleeIP, Port: uasPort})
	caller := startBaresipOver(ctx, t, "tls", "tls-201", "201", pw201, p, wav)
	caller.waitRegistered(t, 10*time.Second)
	target := fmt.Sprintf("sip:202@%s:%d;transport=tls", p.IP, p.TLSPort)
	if r, err := caller.command("dial", target); err != nil || !r.OK {
		t.Fatalf("caller: dial %s: reply %+v, error %v", target, r, err)
	}
	ev, ok := caller.waitEvent(10*time.Second, func(m ctrlMsg) bool {
		return m.Event && (m.Type == "CALL_ESTABLISHED" || m.Type == "CALL_CLOSED")
	})
	if !ok || ev.Type != "CALL_ESTABLISHED" {
		t.Fatalf("TLS call not established: %+v (ok=%v)", ev, ok)
	}
	time.Sleep(500 * time.Millisecond)
	caller.command("hangup", "")
	if r := callee.WaitAtMost(10 * time.Second); !r.ok(1) {
		t.Errorf("callee over UDP: %s\n%s", r.summary(), r.report())
	}
	rec := waitOneCDR(t, p)
	if rec.Caller != "201" || rec.Callee != "202" || rec.Answered == "" {
		t.Errorf("record of the TLS call: %+v", rec)
	}
}

// registeredWithin reports whether ua shows a registration within d.
func registeredWithin(ua *baresipUA, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		r, err := ua.command("reginfo", "")
		if err == nil && registeredOK.MatchString(ansi.ReplaceAllString(r.Data, "")) {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}
