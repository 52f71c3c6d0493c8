package test

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// forwardCall has 201 call 202, with 202 forwarded; the SIPp carrier
// answers if the forward reaches it. It returns the carrier's result.
func forwardCall(t *testing.T, p *PBX, pw201 string, carrierPort int, callerScenario string, sets map[string]string) *sippResult {
	t.Helper()
	carrier := startCarrier(t, carrierPort)
	caller := runSIPp(t, sippSpec{
		Name: "caller", Scenario: callerScenario, Target: p.SIPAddr(), IP: callerIP,
		Service: "202", Rows: [][]string{{"201", pw201}}, Sets: sets, PauseMS: 300,
	})
	wait := 10 * time.Second
	if !caller.ok(1) {
		wait = 3 * time.Second
	}
	cr := carrier.WaitAtMost(wait)
	if !caller.ok(1) {
		t.Fatalf("caller:\n%s\n%s", caller.summary(), caller.report())
	}
	return cr
}

// TestForward: call forwarding is a call the forwarding extension
// places. It is refused when set if the extension may not dial the
// number, reaches the carrier with the canonical number when allowed
// (always, when busy, when not registered), counts on the forwarding
// extension's account, and is decided again on every call: a forward set
// while it was allowed is refused, and recorded, once the policy changes.
func TestForward(t *testing.T) {
	requireTool(t, "sipp")
	p, pw201, pw202, carrierPort := startPBXWithTrunk(t)

	// Set time: the gate's reasons, exit 2, nothing stored.
	out, err := exec.Command(binPath, "forward", "set", "202", "--to", "001023276123456", "--data", p.Data).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "may not call abroad") {
		t.Fatalf("forward to Sierra Leone from a domestic phone: %v\n%s", err, out)
	}
	if fw := string(p.run(t, "forward", "list", "202", "--json")); strings.Contains(fw, "232") {
		t.Fatalf("a refused forward was stored: %s", fw)
	}

	t.Run("always", func(t *testing.T) {
		p.run(t, "forward", "set", "202", "--to", "00312345678")
		defer p.run(t, "forward", "clear", "202")
		cr := forwardCall(t, p, pw201, carrierPort, "uac_call.xml", nil)
		if inv := cr.received("INVITE "); len(inv) == 0 || !strings.Contains(inv[len(inv)-1].First, "INVITE sip:0312345678@") {
			t.Fatalf("the carrier did not get the forward's canonical number:\n%s", cr.report())
		}
		p.waitCDRs(t, "the forwarded call on 202's account", func(rs []CDR) bool {
			for _, r := range rs {
				if r.Caller == "202" && r.SentNumber == "0312345678" && r.Direction == "outbound" && r.ResultCode == 200 &&
					strings.Contains(r.ResultReason, "forwarded (always)") {
					return true
				}
			}
			return false
		})
	})

	t.Run("noanswer_unregistered", func(t *testing.T) {
		p.run(t, "forward", "set", "202", "--to", "00312345678", "--when", "noanswer")
		defer p.run(t, "forward", "clear", "202")
		cr := forwardCall(t, p, pw201, carrierPort, "uac_call.xml", nil)
		if len(cr.received("INVITE ")) == 0 {
			t.Fatal("an unregistered extension's no-answer forward did not reach the carrier")
		}
	})

	t.Run("busy", func(t *testing.T) {
		p.run(t, "forward", "set", "202", "--to", "00312345678", "--when", "busy")
		defer p.run(t, "forward", "clear", "202")
		uasPort := freePort(t, calleeIP)
		registerSIPp(t, p, "202", pw202, calleeIP, uasPort, 60)
		defer registerSIPp(t, p, "202", pw202, calleeIP, uasPort, 0)
		busy := startSIPp(t, sippSpec{Name: "busy-202", Scenario: "uas_busy.xml", IP: calleeIP, Port: uasPort, Service: "202"})
		cr := forwardCall(t, p, pw201, carrierPort, "uac_call.xml", nil)
		if b := busy.WaitAtMost(5 * time.Second); len(b.received("INVITE ")) == 0 {
			t.Fatal("202's phone was not rung first")
		}
		if len(cr.received("INVITE ")) == 0 {
			t.Fatal("the busy forward did not reach the carrier")
		}
	})

	t.Run("feature_codes", func(t *testing.T) {
		dial := func(code, scenario string, sets map[string]string) *sippResult {
			return runSIPp(t, sippSpec{Name: "code", Scenario: scenario, Target: p.SIPAddr(), IP: callerIP,
				Service: code, Rows: [][]string{{"201", pw201}}, Sets: sets, PauseMS: 300})
		}
		if r := dial("*7200312345678", "uac_call_wait_bye.xml", nil); !r.ok(1) {
			t.Fatalf("*72 with a domestic number: want answered and hung up\n%s\n%s", r.summary(), r.report())
		}
		if fw := string(p.run(t, "forward", "list", "201", "--json")); !strings.Contains(fw, `"to": "00312345678"`) || !strings.Contains(fw, `"always"`) {
			t.Fatalf("*72 set nothing: %s", fw)
		}
		// A hijacked phone forwarding itself abroad: 403, nothing stored.
		if r := dial("*72001023276123456", "uac_reject.xml", map[string]string{"want": "403"}); !r.ok(1) {
			t.Fatalf("*72 abroad: want 403\n%s\n%s", r.summary(), r.report())
		}
		if fw := string(p.run(t, "forward", "list", "201", "--json")); strings.Contains(fw, "232") {
			t.Fatalf("a refused feature code stored a forward: %s", fw)
		}
		if r := dial("*73", "uac_call_wait_bye.xml", nil); !r.ok(1) {
			t.Fatalf("*73: %s\n%s", r.summary(), r.report())
		}
		if fw := string(p.run(t, "forward", "list", "201", "--json")); strings.Contains(fw, "00312345678") {
			t.Fatalf("*73 cleared nothing: %s", fw)
		}
	})

	t.Run("decided_again_per_call", func(t *testing.T) {
		// Allowed when set (202 may call Sierra Leone then)...
		p.run(t, "profile", "add", "abroad", "--class", "international", "--countries", "SL")
		p.run(t, "ext", "set", "202", "--profile", "abroad")
		p.run(t, "forward", "set", "202", "--to", "001023276123456")
		// ...then 202 loses calls abroad: the forward stays set, but no
		// call follows it to the carrier, and the refusal is evidence.
		p.run(t, "ext", "set", "202", "--profile", "default")
		time.Sleep(2500 * time.Millisecond) // the server reloads policy every 2 s
		cr := forwardCall(t, p, pw201, carrierPort, "uac_reject.xml", map[string]string{"want": "480"})
		if n := len(cr.received("INVITE ")); n != 0 {
			t.Fatalf("the carrier got %d INVITEs for a forward the policy no longer allows", n)
		}
		// Refusals are aggregated for a minute; stopping writes them.
		p.run(t, "forward", "clear", "202")
		p.Stop(t)
		if out := string(runCLI(t, p, "audit", "list", "--type", "policy-denial", "--json")); !strings.Contains(out, "23276123456") || !strings.Contains(out, `"202"`) {
			t.Fatalf("the refused forward is not in the evidence log on 202's name:\n%s", out)
		}
	})
}
