package test

import (
	"testing"
	"time"
)

// TestSIPpForking registers 202 at two contacts (a desk phone and a
// softphone). A call rings both; the first to answer gets the call and the
// other is cancelled, so it does not keep ringing an empty line.
func TestSIPpForking(t *testing.T) {
	requireTool(t, "sipp")
	const secondIP = "127.0.0.4"
	p := startPBX(t)
	pw201 := p.AddExt(t, "201")
	pw202 := p.AddExt(t, "202")
	answerPort := freePort(t, calleeIP)
	ringPort := freePort(t, secondIP)
	registerSIPp(t, p, "202", pw202, calleeIP, answerPort, 3600)
	registerSIPp(t, p, "202", pw202, secondIP, ringPort, 3600)

	answerer := startSIPp(t, sippSpec{Name: "answerer", Scenario: "uas_answer.xml", IP: calleeIP, Port: answerPort, Service: "202"})
	ringer := startSIPp(t, sippSpec{Name: "ringer", Scenario: "uas_ring_cancel.xml", IP: secondIP, Port: ringPort, Service: "202"})
	caller := runSIPp(t, sippSpec{
		Name: "caller", Scenario: "uac_call.xml", Target: p.SIPAddr(), IP: callerIP,
		Service: "202", Rows: [][]string{{"201", pw201}}, PauseMS: 500,
	})
	a, r := answerer.WaitAtMost(10*time.Second), ringer.WaitAtMost(10*time.Second)
	if !caller.ok(1) || !a.ok(1) || !r.ok(1) {
		t.Fatalf("want the call answered on one contact and cancelled on the other:\n%s\n%s\n%s\n%s%s%s",
			caller.summary(), a.summary(), r.summary(), caller.report(), a.report(), r.report())
	}
	if len(r.received("CANCEL ")) == 0 {
		t.Errorf("the second contact was never cancelled")
	}
	rec := waitOneCDR(t, p)
	checkCDR(t, rec, cdrWant{Caller: "201", Dialled: "202", Callee: oneOf{"202"}, ResultCode: 200, Answered: true, HangupBy: oneOf{"caller"}})
}
