package test

import (
	"testing"
	"time"
)

// TestSIPpShutdownHangsUpCalls checks SIGTERM handling: a call in progress
// may go on for the grace period, then the PBX hangs up both legs with a
// BYE, completes the call record and exits 0.
func TestSIPpShutdownHangsUpCalls(t *testing.T) {
	requireTool(t, "sipp")
	p := startPBX(t, "--grace", "1s")
	pw201 := p.AddExt(t, "201")
	pw202 := p.AddExt(t, "202")
	uasPort := freePort(t, calleeIP)
	registerSIPp(t, p, "202", pw202, calleeIP, uasPort, 3600)

	// Both sides wait for a BYE that only the PBX will send.
	callee := startSIPp(t, sippSpec{Name: "callee", Scenario: "uas_answer.xml", IP: calleeIP, Port: uasPort, Service: "202"})
	caller := startSIPp(t, sippSpec{
		Name: "caller", Scenario: "uac_call_wait_bye.xml", Target: p.SIPAddr(), IP: callerIP,
		Service: "202", Rows: [][]string{{"201", pw201}},
	})
	p.waitCDRs(t, "an answered call", func(rs []CDR) bool {
		return len(rs) == 1 && rs[0].Answered != "" && rs[0].State == "active"
	})
	start := time.Now()
	p.Stop(t) // SIGTERM; fails the test unless the exit is clean (0)
	took := time.Since(start)
	if took < time.Second {
		t.Errorf("PBX stopped after %v, before the 1s grace period", took)
	}
	cr, ce := caller.WaitAtMost(10*time.Second), callee.WaitAtMost(10*time.Second)
	if !cr.ok(1) || !ce.ok(1) {
		t.Fatalf("both legs should get a BYE from the PBX:\n%s\n%s\n%s%s", cr.summary(), ce.summary(), cr.report(), ce.report())
	}
	rs := p.CDRs(t)
	if len(rs) != 1 {
		t.Fatalf("want 1 record, got %+v", rs)
	}
	checkCDR(t, rs[0], cdrWant{Caller: "201", Dialled: "202", Callee: oneOf{"202"}, ResultCode: 200, Answered: true, HangupBy: oneOf{"pbx"}})
	if rs[0].State != "done" {
		t.Errorf("record state %q after shutdown, want done", rs[0].State)
	}
}
