package test

import (
	"strings"
	"testing"
	"time"
)

// TestParkAndPickup: 201 calls 202; 202 parks 201 in slot 1 with its
// transfer button (REFER to *851): 202 gets 202 Accepted, NOTIFYs and the
// PBX's BYE, while 201 stays on the line. 203, on another phone, dials
// *861 and is answered by the PBX; 201 is re-INVITEd onto 203's media,
// and 203's hang-up reaches 201. Slot 1 is empty after that: *861 again
// gets 404. The call's one record notes both steps.
func TestParkAndPickup(t *testing.T) {
	requireTool(t, "sipp")
	p := startPBX(t)
	pw201, pw202, pw203 := p.AddExt(t, "201"), p.AddExt(t, "202"), p.AddExt(t, "203")
	port202 := freePort(t, calleeIP)
	registerSIPp(t, p, "202", pw202, calleeIP, port202, 3600)

	parker := startSIPp(t, sippSpec{Name: "parker-202", Scenario: "xfer_uas.xml", IP: calleeIP, Port: port202, Service: "202",
		Keys: map[string]string{"refer": "*851", "pbx": p.SIPAddr()}, Sets: map[string]string{"mode": "blind", "want": "202"}})
	parkee := startSIPp(t, sippSpec{Name: "parked-201", Scenario: "xfer_uac.xml", Target: p.SIPAddr(), IP: callerIP,
		Service: "202", Rows: [][]string{{"201", pw201}}, Sets: map[string]string{"ending": "wait"}})
	pk := parker.WaitAtMost(10 * time.Second)
	if !pk.ok(1) {
		t.Fatalf("park:\n%s\n%s", pk.summary(), pk.report())
	}
	if n := pk.received("NOTIFY "); len(n) != 2 || !strings.Contains(n[1].Text, "SIP/2.0 200 OK") {
		t.Errorf("the parker's NOTIFYs: %+v", n)
	}
	time.Sleep(500 * time.Millisecond) // parked, with music

	picker := runSIPp(t, sippSpec{Name: "picker-203", Scenario: "uac_call.xml", Target: p.SIPAddr(), IP: targetIP,
		Service: "*861", Rows: [][]string{{"203", pw203}}, PauseMS: 800})
	pe := parkee.WaitAtMost(10 * time.Second)
	if !picker.ok(1) || !pe.ok(1) {
		t.Fatalf("pickup:\n%s\n%s\n%s%s", picker.summary(), pe.summary(), picker.report(), pe.report())
	}
	if n := len(pe.received("INVITE ")); n != 1 {
		t.Errorf("the parked party should be re-INVITEd once, at the pickup; got %d", n)
	}
	if n := len(pe.received("BYE ")); n != 1 {
		t.Errorf("the picker's hang-up should reach the parked party once; got %d BYEs", n)
	}

	empty := runSIPp(t, sippSpec{Name: "picker-again", Scenario: "uac_reject.xml", Target: p.SIPAddr(), IP: targetIP,
		Service: "*861", Rows: [][]string{{"203", pw203}}, Sets: map[string]string{"want": "404"}})
	if !empty.ok(1) {
		t.Errorf("pickup from an empty slot:\n%s\n%s", empty.summary(), empty.report())
	}

	rec := waitOneCDR(t, p)
	checkCDR(t, rec, cdrWant{Caller: "201", Dialled: "202", Callee: oneOf{"202"}, ResultCode: 200, Answered: true, HangupBy: oneOf{"callee"}})
	for _, want := range []string{"parked in slot 1 by 202", "picked up from slot 1 by 203"} {
		if !strings.Contains(rec.ResultReason, want) {
			t.Errorf("record %q does not say %q", rec.ResultReason, want)
		}
	}
}

// TestGroupPickup: 202 and 203 share ring group 600. 201 calls 202, whose
// phone rings and rings; 203 dials *8 and gets the call: 202's phone is
// cancelled, the PBX answers both 201 and 203, and 203's hang-up reaches
// 201. The record names 203 as the callee and says it picked the call up.
// 204, in no group with 202, gets 404 for *8 while 202 rings: a phone
// cannot take calls of people it does not share a group with.
func TestGroupPickup(t *testing.T) {
	requireTool(t, "sipp")
	p := startPBX(t)
	pw201, pw202, pw203, pw204 := p.AddExt(t, "201"), p.AddExt(t, "202"), p.AddExt(t, "203"), p.AddExt(t, "204")
	p.run(t, "group", "add", "600", "--members", "202,203")
	port202 := freePort(t, calleeIP)
	registerSIPp(t, p, "202", pw202, calleeIP, port202, 3600)

	ringer := startSIPp(t, sippSpec{Name: "ringing-202", Scenario: "uas_ring_cancel.xml", IP: calleeIP, Port: port202, Service: "202"})
	caller := startSIPp(t, sippSpec{Name: "caller-201", Scenario: "uac_call_wait_bye.xml", Target: p.SIPAddr(), IP: callerIP,
		Service: "202", Rows: [][]string{{"201", pw201}}})
	time.Sleep(800 * time.Millisecond) // 202 rings

	stranger := runSIPp(t, sippSpec{Name: "stranger-204", Scenario: "uac_reject.xml", Target: p.SIPAddr(), IP: "127.0.0.6",
		Service: "*8", Rows: [][]string{{"204", pw204}}, Sets: map[string]string{"want": "404"}})
	if !stranger.ok(1) {
		t.Errorf("204 outside the group:\n%s\n%s", stranger.summary(), stranger.report())
	}
	picker := runSIPp(t, sippSpec{Name: "picker-203", Scenario: "uac_call.xml", Target: p.SIPAddr(), IP: targetIP,
		Service: "*8", Rows: [][]string{{"203", pw203}}, PauseMS: 800})
	cr, rr := caller.WaitAtMost(10*time.Second), ringer.WaitAtMost(5*time.Second)
	if !picker.ok(1) || !cr.ok(1) || !rr.ok(1) {
		t.Fatalf("group pickup:\n%s\n%s\n%s\n%s%s%s", picker.summary(), cr.summary(), rr.summary(), picker.report(), cr.report(), rr.report())
	}
	rec := waitOneCDR(t, p)
	checkCDR(t, rec, cdrWant{Caller: "201", Dialled: "202", Callee: oneOf{"203"}, ResultCode: 200, Answered: true, HangupBy: oneOf{"callee"}})
	if !strings.Contains(rec.ResultReason, "picked up by 203 (*8) while ringing 202") {
		t.Errorf("record %q does not say who picked up", rec.ResultReason)
	}
}
