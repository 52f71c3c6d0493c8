package test

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// gateCallOut has 201 place the call described by caller (its Target, IP
// and credentials are filled in here) while the SIPp carrier answers, and
// fails the test unless both sides succeed. It is callOut for scenarios
// that need keys of their own.
func gateCallOut(t *testing.T, p *PBX, pw201 string, carrierPort int, caller sippSpec) (cl, carrier *sippResult) {
	t.Helper()
	c := startCarrier(t, carrierPort)
	caller.Name, caller.Target, caller.IP = "caller", p.SIPAddr(), callerIP
	caller.Rows, caller.PauseMS = [][]string{{"201", pw201}}, 300
	cl = runSIPp(t, caller)
	carrier = c.WaitAtMost(10 * time.Second)
	if !cl.ok(1) || !carrier.ok(1) {
		t.Fatalf("call to %s through the carrier failed:\n%s\n%s\n%s%s", caller.Service, cl.summary(), carrier.summary(), cl.report(), carrier.report())
	}
	return cl, carrier
}

// sipUser returns the user part of the first sip: URI in a header value or
// request line ("" if there is none).
func sipUser(s string) string {
	_, rest, ok := strings.Cut(s, "sip:")
	if !ok {
		return ""
	}
	user, _, ok := strings.Cut(rest, "@")
	if !ok {
		return ""
	}
	return user
}

// gateRecords waits for the records of the refused calls and one answered
// call, checks that each refused call (refused maps its dialled text to the
// wanted code) has exactly one record from 201 with that code, never
// answered and with no number sent to a trunk, and returns the remaining
// record, that of the answered call.
func gateRecords(t *testing.T, p *PBX, refused map[string]int) CDR {
	t.Helper()
	want := len(refused) + 1
	p.waitCDRs(t, "a record per call", allCallsDone(want))
	time.Sleep(300 * time.Millisecond) // give a stray record time to appear
	rs := p.CDRs(t)
	if len(rs) != want {
		t.Fatalf("want %d call records, got %d: %+v", want, len(rs), rs)
	}
	seen := map[string]int{}
	var rest []CDR
	for _, r := range rs {
		code, ok := refused[r.Dialled]
		if !ok {
			rest = append(rest, r)
			continue
		}
		seen[r.Dialled]++
		if r.ResultCode != code || r.Caller != "201" || r.SentNumber != "" || r.Answered != "" {
			t.Errorf("record of refused %q: want result %d from 201, nothing sent, never answered; got %+v", r.Dialled, code, r)
		}
	}
	for d := range refused {
		if seen[d] != 1 {
			t.Errorf("refused %q: %d records, want 1; records %+v", d, seen[d], rs)
		}
	}
	if len(rest) != 1 {
		t.Fatalf("want exactly one record besides the refused calls: %+v", rs)
	}
	return rest[0]
}

// TestGateTelURI proves that a tel: Request-URI (RFC 3966) goes through the
// same toll gate as a sip: one, with nothing dropped on the way: a global
// Japanese number is sent to the carrier in national form (Request-URI
// and record), a number abroad is refused 403 for a domestic extension, and
// a tel: number whose meaning depends on a parameter (phone-context) or that
// carries visual separators is refused 484, never normalised into a number
// and dialled; none of the refused calls reaches the carrier. It also
// proves that digest authentication works with a tel: Request-URI.
func TestGateTelURI(t *testing.T) {
	requireTool(t, "sipp")
	p, pw201, _, carrierPort := startPBXWithTrunk(t)

	refused := []struct {
		dial string
		want int
	}{
		{"+23276123456", 403},                 // Sierra Leone: abroad, not allowed
		{"0312345678;phone-context=+81", 484}, // a local number with a context
		{"+81-3-1234-5678", 484},              // visual separators
	}
	carrier := startCarrier(t, carrierPort)
	for _, d := range refused {
		r := runSIPp(t, sippSpec{
			Name: "caller", Scenario: "gate_uac_tel_reject.xml", Target: p.SIPAddr(), IP: callerIP,
			Service: d.dial, Rows: [][]string{{"201", pw201}}, Sets: map[string]string{"want": strconv.Itoa(d.want)},
		})
		if !r.ok(1) {
			t.Errorf("dialled tel:%s: want %d\n%s\n%s", d.dial, d.want, r.summary(), r.report())
		}
		if m := r.messages(); len(m) == 0 || m[0].First != "INVITE tel:"+d.dial+" SIP/2.0" {
			t.Errorf("dialled tel:%s: the caller did not send that Request-URI:\n%s", d.dial, r.report())
		}
		if inv := r.received("SIP/2.0 407"); len(inv) != 1 {
			t.Errorf("dialled tel:%s: want one 407 challenge before the verdict, got %d", d.dial, len(inv))
		}
	}
	cr := carrier.WaitAtMost(time.Second)
	if n := len(cr.received("INVITE ")); n != 0 {
		t.Fatalf("the carrier received %d INVITEs for refused tel: numbers:\n%s", n, cr.report())
	}

	cl, cr := gateCallOut(t, p, pw201, carrierPort, sippSpec{Scenario: "gate_uac_tel_call.xml", Service: "+81312345678"})
	// The call was really dialled as tel: and authenticated with it.
	var sent []sippMessage
	for _, m := range cl.messages() {
		if !m.Received && strings.HasPrefix(m.First, "INVITE ") {
			sent = append(sent, m)
		}
	}
	if len(sent) != 2 || sent[0].First != "INVITE tel:+81312345678 SIP/2.0" || sent[1].First != sent[0].First || sent[1].header("Proxy-Authorization") == "" {
		t.Fatalf("the caller did not send tel:+81312345678, then the same with Proxy-Authorization:\n%s", cl.report())
	}
	invites := cr.received("INVITE ")
	if len(invites) != 2 {
		t.Fatalf("carrier got %d INVITEs, want 2 (challenged, then authenticated)", len(invites))
	}
	for i, inv := range invites {
		if want := "INVITE sip:0312345678@" + net.JoinHostPort(carrierIP, strconv.Itoa(carrierPort)) + " SIP/2.0"; inv.First != want {
			t.Errorf("carrier INVITE %d Request-URI line %q, want %q", i, inv.First, want)
		}
		if to := inv.header("To"); sipUser(to) != "0312345678" {
			t.Errorf("carrier INVITE %d To %q, want user 0312345678", i, to)
		}
		if strings.Contains(inv.Text, "tel:") || strings.Contains(inv.Text, "+81") {
			t.Errorf("carrier INVITE %d carries the caller's tel: URI or the +81 form:\n%s", i, inv.Text)
		}
	}

	codes := map[string]int{}
	for _, d := range refused {
		codes[d.dial] = d.want
	}
	rec := gateRecords(t, p, codes)
	checkCDR(t, rec, cdrWant{Caller: "201", Dialled: "+81312345678", Callee: oneOf{"0312345678"}, ResultCode: 200, Answered: true, HangupBy: oneOf{"caller"}})
	if rec.Direction != "outbound" || rec.Trunk != "carrier" || rec.SentNumber != "0312345678" {
		t.Errorf("record direction/trunk/sent = %q/%q/%q, want outbound/carrier/0312345678", rec.Direction, rec.Trunk, rec.SentNumber)
	}
}

// TestGateToMismatch proves that the toll gate decides on the Request-URI
// alone and that the carrier hears only the number that was decided on:
// (A) an allowed domestic Request-URI with a To header naming Sierra Leone
// reaches the carrier with the domestic number in both Request-URI and To,
// and no trace of the Sierra Leone number anywhere in the INVITE; (B) a
// Sierra Leone Request-URI with a To header naming a domestic number is
// refused 403 and the carrier receives nothing.
func TestGateToMismatch(t *testing.T) {
	requireTool(t, "sipp")
	p, pw201, _, carrierPort := startPBXWithTrunk(t)

	// Case B first, while a carrier listens to catch anything that leaks.
	carrier := startCarrier(t, carrierPort)
	r := runSIPp(t, sippSpec{
		Name: "caller", Scenario: "gate_uac_to_mismatch_reject.xml", Target: p.SIPAddr(), IP: callerIP,
		Service: "001023276123456", Rows: [][]string{{"201", pw201}},
		Keys: map[string]string{"to_user": "00312345678"}, Sets: map[string]string{"want": "403"},
	})
	if !r.ok(1) {
		t.Errorf("Request-URI 001023276123456 with To 00312345678: want 403\n%s\n%s", r.summary(), r.report())
	}
	if sent := r.messages(); len(sent) == 0 || sipUser(sent[0].header("To")) != "00312345678" || sipUser(sent[0].First) != "001023276123456" {
		t.Fatalf("the caller's INVITE did not carry the intended mismatch:\n%s", r.report())
	}
	cr := carrier.WaitAtMost(time.Second)
	if n := len(cr.received("INVITE ")); n != 0 {
		t.Fatalf("the carrier received %d INVITEs for a refused Request-URI:\n%s", n, cr.report())
	}

	// Case A.
	cl, cr := gateCallOut(t, p, pw201, carrierPort, sippSpec{
		Scenario: "gate_uac_to_mismatch_call.xml", Service: "00312345678",
		Keys: map[string]string{"to_user": "001023276123456"},
	})
	if sent := cl.messages(); len(sent) == 0 || sipUser(sent[0].header("To")) != "001023276123456" {
		t.Fatalf("the caller's INVITE did not carry the intended To:\n%s", cl.report())
	}
	invites := cr.received("INVITE ")
	if len(invites) != 2 {
		t.Fatalf("carrier got %d INVITEs, want 2 (challenged, then authenticated)", len(invites))
	}
	for i, inv := range invites {
		if want := "INVITE sip:0312345678@" + net.JoinHostPort(carrierIP, strconv.Itoa(carrierPort)) + " SIP/2.0"; inv.First != want {
			t.Errorf("carrier INVITE %d Request-URI line %q, want %q", i, inv.First, want)
		}
		to := inv.header("To")
		if sipUser(to) != "0312345678" || strings.Contains(to, "232") {
			t.Errorf("carrier INVITE %d To %q, want user 0312345678 and nothing else of a number", i, to)
		}
		// Call-ID, tags, branches and the digest are random hex, where
		// "232" alone turns up by chance: look for the number's parts
		// that cannot.
		for _, bad := range []string{"23276123456", "010232", "+232", "%2B232", "001023276"} {
			if strings.Contains(inv.Text, bad) {
				t.Errorf("carrier INVITE %d contains %q from the caller's To:\n%s", i, bad, inv.Text)
			}
		}
	}

	rec := gateRecords(t, p, map[string]int{"001023276123456": 403})
	checkCDR(t, rec, cdrWant{Caller: "201", Dialled: "00312345678", Callee: oneOf{"0312345678"}, ResultCode: 200, Answered: true, HangupBy: oneOf{"caller"}})
	if rec.Direction != "outbound" || rec.Trunk != "carrier" || rec.SentNumber != "0312345678" {
		t.Errorf("record direction/trunk/sent = %q/%q/%q, want outbound/carrier/0312345678", rec.Direction, rec.Trunk, rec.SentNumber)
	}
}
