package test

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// Numbers a transfer may name.
const (
	referAbroad = "001023276123456"     // 010 + Sierra Leone (+232) mobile
	referTrick  = "0%23001023276123456" // 0 # 010 ...: the incident's symbol trick
)

// Refer-To targets the gate refuses for every phone here.
const (
	referNobody  = "299"         // no such extension
	referPremium = "00990123456" // premium rate: never
)

// TestReferThroughGate proves that a transfer asked for inside an answered
// call (REFER, RFC 3515) is decided by the toll gate with the policy of
// the extension that sent the REFER, before anything is rung, and that a
// refused one reaches nobody (TestBlindTransfer carries out allowed ones):
//
//   - 201 (default class: nothing abroad) calls 202 and, once answered,
//     REFERs to Sierra Leone: 403, refused by the toll gate on 201's
//     policy; to the same number behind the symbol trick (0 # 010 ...):
//     484, refused by the dial plan; to an extension that does not exist:
//     404 (each the answer the same number dialled would get); a REFER
//     with no Refer-To: 400. Never 202 Accepted.
//   - Once 201 may call Sierra Leone, the callee 202 (still not allowed
//     abroad) asking for the transfer to Sierra Leone in 201's call gets
//     403: the policy is the sender's, not the caller's. A premium-rate
//     Refer-To is refused for 201 too.
//   - A refused transfer uses up no limit: a real call abroad right after
//     one still goes out under a limit of one a minute.
//   - The carrier never receives an INVITE, the callee never receives a
//     second INVITE, a REFER or a NOTIFY, and every decided REFER is in
//     the call record's result_reason as "REFER to USER answered CODE
//     (reasons)".
func TestReferThroughGate(t *testing.T) {
	requireTool(t, "sipp")
	p, pw201, pw202, carrierPort := startPBXWithTrunk(t)
	uasPort := freePort(t, calleeIP)
	registerSIPp(t, p, "202", pw202, calleeIP, uasPort, 3600)

	// 201 has no right to call abroad.
	caller, _ := referCall(t, p, pw201, uasPort, carrierPort, referCase{
		targets: [3]string{referAbroad, referTrick, referNobody},
		want:    [3]string{"403", "484", "404"},
		callee:  "uas_answer.xml",
	})
	rec := waitOneCDR(t, p)
	checkCDR(t, rec, cdrWant{Caller: "201", Dialled: "202", Callee: oneOf{"202"}, ResultCode: 200, Answered: true, HangupBy: oneOf{"caller"}})
	outcomes := referOutcomes(rec.ResultReason)
	checkReferOutcome(t, outcomes, referAbroad, "403", "tollgate: 201:")
	checkReferOutcome(t, outcomes, referTrick, "484", "dialplan:")
	checkReferOutcome(t, outcomes, referNobody, "404", "route:")
	if t.Failed() {
		t.Fatalf("first call: record %+v\ncaller trace:\n%s", rec, caller.report())
	}

	// 201 may now call Sierra Leone; 202 still may not.
	p.run(t, "ext", "set", "201", "--class", "international", "--countries", "SL")
	time.Sleep(policyReload)
	caller, _ = referCall(t, p, pw201, uasPort, carrierPort, referCase{
		targets:      [3]string{referTrick, referNobody, referPremium},
		want:         [3]string{"484", "404", "403"},
		callee:       "refer_uas.xml",
		calleeKeys:   map[string]string{"refer": referAbroad, "pbx": p.SIPAddr()},
		calleeSets:   map[string]string{"want": "403"},
		calleeRefers: true,
	})
	p.waitCDRs(t, "two finished calls", allCallsDone(2))
	time.Sleep(300 * time.Millisecond) // give a stray record time to appear
	rs := p.CDRs(t)
	if len(rs) != 2 {
		t.Fatalf("want 2 call records, got %d: %+v", len(rs), rs)
	}
	callID := ""
	if inv := sentRequests(caller, "INVITE "); len(inv) > 0 {
		callID = inv[0].header("Call-ID")
	}
	var second *CDR
	for i := range rs {
		if rs[i].CallID == callID {
			second = &rs[i]
		}
	}
	if second == nil {
		t.Fatalf("no record with the second call's Call-ID %q: %+v", callID, rs)
	}
	checkCDR(t, *second, cdrWant{Caller: "201", Dialled: "202", Callee: oneOf{"202"}, ResultCode: 200, Answered: true, HangupBy: oneOf{"caller"}})
	outcomes = referOutcomes(second.ResultReason)
	checkReferOutcome(t, outcomes, referTrick, "484", "dialplan:")
	checkReferOutcome(t, outcomes, referNobody, "404", "route:")
	checkReferOutcome(t, outcomes, referPremium, "403", "tollgate: 201:")
	checkReferOutcome(t, outcomes, referAbroad, "403", "tollgate: 202:")
	if t.Failed() {
		t.Fatalf("second call: record %+v\ncaller trace:\n%s", *second, caller.report())
	}

	// A refused transfer placed no call, so it used up no limit: with one
	// call abroad a minute allowed, 201's real call to Sierra Leone right
	// after refused transfers still goes out.
	p.run(t, "profile", "set", "default", "--intl-per-minute", "1")
	time.Sleep(policyReload)
	callOut(t, p, pw201, carrierPort, referAbroad, "uac_call.xml")
}

// referCase is one call from 201 to 202 in which the caller sends three
// REFERs (targets, each wanted to be answered with want) and one without
// Refer-To.
type referCase struct {
	targets, want [3]string
	callee        string            // callee scenario
	calleeKeys    map[string]string // its -key values
	calleeSets    map[string]string // its -set values
	calleeRefers  bool              // the callee sends a REFER too (refer_uas.xml)
}

// referCall places the call with refer_uac.xml while the registered
// callee runs c.callee and the SIPp carrier listens, and checks on the
// traces that both sides succeeded, that each REFER got the wanted answer,
// and that nothing was transferred: the carrier got no INVITE and the
// callee no second INVITE, REFER or NOTIFY.
func referCall(t *testing.T, p *PBX, pw201 string, uasPort, carrierPort int, c referCase) (caller, callee *sippResult) {
	t.Helper()
	carrier := startCarrier(t, carrierPort)
	uas := startSIPp(t, sippSpec{
		Name: "callee", Scenario: c.callee, IP: calleeIP, Port: uasPort, Service: "202",
		Keys: c.calleeKeys, Sets: c.calleeSets,
	})
	caller = runSIPp(t, sippSpec{
		Name: "caller", Scenario: "refer_uac.xml", Target: p.SIPAddr(), IP: callerIP,
		Service: "202", Rows: [][]string{{"201", pw201}}, PauseMS: 500,
		Keys: map[string]string{"pbx": p.SIPAddr(), "refer1": c.targets[0], "refer2": c.targets[1], "refer3": c.targets[2]},
		Sets: map[string]string{"want1": c.want[0], "want2": c.want[1], "want3": c.want[2]},
	})
	wait := sippGlobalTimeout
	if caller.ExitCode != 0 {
		wait = 3 * time.Second
	}
	callee = uas.WaitAtMost(wait)
	cr := carrier.WaitAtMost(time.Second)
	if !caller.ok(1) || !callee.ok(1) {
		t.Fatalf("want one successful call on each side; got\n%s\n%s\n%s%s", caller.summary(), callee.summary(), caller.report(), callee.report())
	}

	// What SIPp checked, read again from the trace, by CSeq.
	got := referAnswers(caller)
	for i, cseq := range []string{"3", "4", "5"} {
		if got[cseq] != c.want[i] {
			t.Errorf("REFER (CSeq %s) to %s: answered %q, want %s", cseq, c.targets[i], got[cseq], c.want[i])
		}
	}
	if got["6"] != "400" {
		t.Errorf("REFER (CSeq 6) without Refer-To: answered %q, want 400", got["6"])
	}
	if c.calleeRefers {
		if a := referAnswers(callee); a["1"] != c.calleeSets["want"] {
			t.Errorf("callee's REFER to %s: answered %q, want %s", c.calleeKeys["refer"], a["1"], c.calleeSets["want"])
		}
	}
	if n := len(cr.received("INVITE ")); n != 0 {
		t.Errorf("the carrier received %d INVITEs: a transfer reached it\n%s", n, cr.report())
	}
	if n := len(callee.received("INVITE ")); n != 1 {
		t.Errorf("the callee received %d INVITEs, want 1", n)
	}
	for _, m := range []string{"REFER ", "NOTIFY "} {
		if n := len(callee.received(m)); n != 0 {
			t.Errorf("the callee received %d %s requests: a REFER was passed on", n, strings.TrimSpace(m))
		}
	}
	if t.Failed() {
		t.Fatalf("traces:\n%s%s", caller.report(), callee.report())
	}
	return caller, callee
}

// referAnswers maps the CSeq number of each REFER a SIPp side sent to the
// status code of the final answer it received.
func referAnswers(r *sippResult) map[string]string {
	out := map[string]string{}
	for _, m := range r.received("SIP/2.0 ") {
		num, method, _ := strings.Cut(m.header("CSeq"), " ")
		if strings.TrimSpace(method) != "REFER" {
			continue
		}
		code := strings.Fields(m.First)[1]
		if code >= "200" {
			out[num] = code
		}
	}
	return out
}

// sentRequests returns the requests a SIPp side sent whose first line
// starts with prefix.
func sentRequests(r *sippResult, prefix string) []sippMessage {
	var out []sippMessage
	for _, m := range r.messages() {
		if !m.Received && strings.HasPrefix(m.First, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// referOutcome is one "REFER to USER answered CODE (REASON)" entry of a
// record's result_reason.
type referOutcome struct{ user, code, reason string }

var referEntry = regexp.MustCompile(`REFER to (\S+) answered (\d{3}) \(`)

// referOutcomes parses the REFER entries of a result_reason. An entry's
// reason runs to the next entry (or the end), less its closing
// parenthesis.
func referOutcomes(s string) []referOutcome {
	idx := referEntry.FindAllStringSubmatchIndex(s, -1)
	out := make([]referOutcome, 0, len(idx))
	for i, m := range idx {
		end := len(s)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		reason := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s[m[1]:end]), ";"), ")")
		out = append(out, referOutcome{user: s[m[2]:m[3]], code: s[m[4]:m[5]], reason: reason})
	}
	return out
}

// checkReferOutcome requires exactly one recorded REFER to user (as sent,
// or with %23 decoded), answered code for a reason that mentions why.
func checkReferOutcome(t *testing.T, outcomes []referOutcome, user, code, why string) {
	t.Helper()
	var found []referOutcome
	for _, o := range outcomes {
		if o.user == user || o.user == strings.ReplaceAll(user, "%23", "#") {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Errorf("want one recorded REFER to %s, got %d; all: %+v", user, len(found), outcomes)
		return
	}
	if o := found[0]; o.code != code || !strings.Contains(o.reason, why) {
		t.Errorf("REFER to %s recorded as answered %s (%s), want %s for a reason naming %q", user, o.code, o.reason, code, why)
	}
}
