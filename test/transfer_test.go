package test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// targetIP plays extension 203's phone, the target of transfers.
const targetIP = "127.0.0.5"

// TestBlindTransfer proves that a blind transfer (REFER, RFC 3515) ends
// with the transferee talking to the target, and that the transferor's
// policy decides a transfer to an outside number:
//
//   - 201 calls 202; 202 transfers 201 to 203. 202 gets 202 Accepted,
//     NOTIFYs of "100 Trying" and "200 OK", then the PBX's BYE; 201 is
//     re-INVITEd to 203's media; 201's hang-up reaches 203. Two records:
//     the call's own, noting the REFER, and the transfer's, on 202's
//     behalf, 202 to 203.
//   - The carrier calls the office's number, which rings 202; 202 (not
//     allowed abroad) transfers the outside caller to Sierra Leone: 403,
//     nothing reaches the carrier as a new call.
//   - Once 202 may call Sierra Leone, the same transfer of 201's call
//     reaches the SIPp carrier with the canonical number, on a record with
//     202 as the caller.
func TestBlindTransfer(t *testing.T) {
	requireTool(t, "sipp")
	p, pw201, pw202, carrierPort := startPBXWithTrunk(t)
	pw203 := p.AddExt(t, "203")
	port202, port203 := freePort(t, calleeIP), freePort(t, targetIP)
	registerSIPp(t, p, "202", pw202, calleeIP, port202, 3600)
	registerSIPp(t, p, "203", pw203, targetIP, port203, 3600)

	// 1. An extension transfers a call to another extension.
	target := startSIPp(t, sippSpec{Name: "target-203", Scenario: "uas_answer.xml", IP: targetIP, Port: port203, Service: "203"})
	transferor := startSIPp(t, sippSpec{Name: "transferor-202", Scenario: "xfer_uas.xml", IP: calleeIP, Port: port202, Service: "202",
		Keys: map[string]string{"refer": "203", "pbx": p.SIPAddr()}, Sets: map[string]string{"mode": "blind", "want": "202"}})
	caller := runSIPp(t, sippSpec{Name: "caller-201", Scenario: "xfer_uac.xml", Target: p.SIPAddr(), IP: callerIP,
		Service: "202", Rows: [][]string{{"201", pw201}}, PauseMS: 500, Sets: map[string]string{"ending": "bye"}})
	tr, tg := transferor.WaitAtMost(5*time.Second), target.WaitAtMost(5*time.Second)
	if !caller.ok(1) || !tr.ok(1) || !tg.ok(1) {
		t.Fatalf("blind transfer to 203:\n%s\n%s\n%s\n%s%s%s", caller.summary(), tr.summary(), tg.summary(), caller.report(), tr.report(), tg.report())
	}
	checkTransferSignalling(t, caller, tr, tg, 1)
	if inv := tg.received("INVITE "); len(inv) == 1 && !strings.Contains(inv[0].header("From"), "sip:201@") {
		t.Errorf("203 should see the party handed to it, 201, calling: From %q", inv[0].header("From"))
	}
	rs := p.waitCDRs(t, "the call's and the transfer's records", allCallsDone(2))
	own, xfer := splitTransferRecords(t, rs, "201")
	checkCDR(t, own, cdrWant{Caller: "201", Dialled: "202", Callee: oneOf{"202"}, ResultCode: 200, Answered: true, HangupBy: oneOf{"caller"}})
	if !strings.Contains(own.ResultReason, "REFER to 203 answered 202") {
		t.Errorf("the call's record does not note the transfer: %q", own.ResultReason)
	}
	checkCDR(t, xfer, cdrWant{Caller: "202", Dialled: "203", Callee: oneOf{"203"}, ResultCode: 200, Answered: true, HangupBy: oneOf{"caller"}})

	// 2. An outside caller transferred abroad by a domestic-only phone.
	carrier := startCarrier(t, carrierPort)
	transferor = startSIPp(t, sippSpec{Name: "transferor-202", Scenario: "xfer_uas.xml", IP: calleeIP, Port: port202, Service: "202",
		Keys: map[string]string{"refer": referAbroad, "pbx": p.SIPAddr()}, Sets: map[string]string{"mode": "blind", "want": "403"}})
	inbound := runSIPp(t, sippSpec{Name: "carrier-call", Scenario: "carrier_uac.xml", Target: p.SIPAddr(), IP: carrierIP, Service: did, PauseMS: 1500})
	tr = transferor.WaitAtMost(5 * time.Second)
	cr := carrier.WaitAtMost(time.Second)
	if !inbound.ok(1) || !tr.ok(1) {
		t.Fatalf("outside call transferred abroad:\n%s\n%s\n%s%s", inbound.summary(), tr.summary(), inbound.report(), tr.report())
	}
	if n := len(cr.received("INVITE ")); n != 0 {
		t.Errorf("a refused transfer reached the carrier: %d INVITEs\n%s", n, cr.report())
	}
	if n := len(tr.received("NOTIFY ")); n != 0 {
		t.Errorf("a refused transfer sent %d NOTIFYs", n)
	}
	rs = p.waitCDRs(t, "the inbound call's record", allCallsDone(3))
	if r := newest(rs); r.Direction != "inbound" || !strings.Contains(r.ResultReason, "REFER to "+referAbroad+" answered 403") ||
		!strings.Contains(r.ResultReason, "tollgate: 202:") {
		t.Errorf("the inbound call's record does not show the refused transfer on 202's policy: %+v", r)
	}

	// 3. Allowed abroad, the transfer goes out with the canonical number.
	p.run(t, "ext", "set", "202", "--class", "international", "--countries", "SL")
	time.Sleep(policyReload)
	carrier = startCarrier(t, carrierPort)
	transferor = startSIPp(t, sippSpec{Name: "transferor-202", Scenario: "xfer_uas.xml", IP: calleeIP, Port: port202, Service: "202",
		Keys: map[string]string{"refer": referAbroad, "pbx": p.SIPAddr()}, Sets: map[string]string{"mode": "blind", "want": "202"}})
	caller = runSIPp(t, sippSpec{Name: "caller-201", Scenario: "xfer_uac.xml", Target: p.SIPAddr(), IP: callerIP,
		Service: "202", Rows: [][]string{{"201", pw201}}, PauseMS: 500, Sets: map[string]string{"ending": "bye"}})
	tr, cr = transferor.WaitAtMost(5*time.Second), carrier.WaitAtMost(5*time.Second)
	if !caller.ok(1) || !tr.ok(1) || !cr.ok(1) {
		t.Fatalf("blind transfer abroad:\n%s\n%s\n%s\n%s%s%s", caller.summary(), tr.summary(), cr.summary(), caller.report(), tr.report(), cr.report())
	}
	checkTransferSignalling(t, caller, tr, cr, 2) // the carrier challenges
	rs = p.waitCDRs(t, "five records", allCallsDone(5))
	var out *CDR
	for i := range rs {
		if rs[i].Caller == "202" && rs[i].Dialled == referAbroad {
			out = &rs[i]
		}
	}
	if out == nil {
		t.Fatalf("no record of 202's transfer abroad: %+v", rs)
	}
	if out.Direction != "outbound" || out.Country != "SL" || out.SentNumber == "" || out.Answered == "" {
		t.Errorf("transfer abroad record: %+v", *out)
	}
	inv := cr.received("INVITE ")
	for _, m := range inv {
		if !strings.Contains(m.First, "sip:"+out.SentNumber+"@") {
			t.Errorf("the carrier should be asked for %s only: %s", out.SentNumber, m.First)
		}
	}
}

// TestAttendedTransfer: 201 calls 202, then 203 calls 202; 202 transfers
// its first call to its second (REFER with Replaces, RFC 3891). 201 and
// 203 are each re-INVITEd onto one relay session, 202's two legs end with
// NOTIFY 200 and BYE, and 201's hang-up reaches 203. Both calls' records
// end when that call does.
func TestAttendedTransfer(t *testing.T) {
	requireTool(t, "sipp")
	p := startPBX(t)
	pw201, pw202, pw203 := p.AddExt(t, "201"), p.AddExt(t, "202"), p.AddExt(t, "203")
	port202 := freePort(t, calleeIP)
	registerSIPp(t, p, "202", pw202, calleeIP, port202, 3600)

	transferor := startSIPp(t, sippSpec{Name: "transferor-202", Scenario: "xfer_uas.xml", IP: calleeIP, Port: port202, Service: "202",
		Calls: 2, Keys: map[string]string{"refer": "203", "pbx": p.SIPAddr()}, Sets: map[string]string{"mode": "attended", "want": "202"}})
	caller := startSIPp(t, sippSpec{Name: "caller-201", Scenario: "xfer_uac.xml", Target: p.SIPAddr(), IP: callerIP,
		Service: "202", Rows: [][]string{{"201", pw201}}, PauseMS: 500, Sets: map[string]string{"ending": "bye"}})
	time.Sleep(500 * time.Millisecond)
	second := runSIPp(t, sippSpec{Name: "caller-203", Scenario: "xfer_uac.xml", Target: p.SIPAddr(), IP: targetIP,
		Service: "202", Rows: [][]string{{"203", pw203}}, Sets: map[string]string{"ending": "wait"}})
	first, tr := caller.WaitAtMost(5*time.Second), transferor.WaitAtMost(5*time.Second)
	if !first.ok(1) || !second.ok(1) || !tr.ok(2) {
		t.Fatalf("attended transfer:\n%s\n%s\n%s\n%s%s%s", first.summary(), second.summary(), tr.summary(), first.report(), second.report(), tr.report())
	}
	if n := len(second.received("BYE ")); n != 1 {
		t.Errorf("203 should get 201's hang-up once, got %d BYEs", n)
	}
	for _, r := range []*sippResult{first, second} {
		if n := len(r.received("INVITE ")); n != 1 {
			t.Errorf("%s: want one re-INVITE onto the joined call, got %d", r.Name, n)
		}
	}
	rs := p.waitCDRs(t, "both calls' records", allCallsDone(2))
	for _, r := range rs {
		if r.ResultCode != 200 || r.Answered == "" || r.Callee != "202" {
			t.Errorf("record after the attended transfer: %+v", r)
		}
	}
	own, _ := splitTransferRecords(t, rs, "201")
	if !strings.Contains(own.ResultReason, "REFER to 203 (attended) answered 202") {
		t.Errorf("the first call's record does not note the attended transfer: %q", own.ResultReason)
	}
}

// checkTransferSignalling checks the traces of a completed blind
// transfer: the transferor's two NOTIFYs, the transferee's re-INVITE and
// the target's INVITEs (two where it challenges) and single BYE.
func checkTransferSignalling(t *testing.T, transferee, transferor, target *sippResult, targetInvites int) {
	t.Helper()
	n := transferor.received("NOTIFY ")
	if len(n) != 2 || n[0].header("Event") != "refer" || !strings.Contains(n[1].Text, "SIP/2.0 200 OK") ||
		!strings.Contains(n[1].header("Subscription-State"), "terminated") {
		t.Errorf("transferor NOTIFYs: %+v", n)
	}
	if k := len(transferee.received("INVITE ")); k != 1 {
		t.Errorf("the transferee should be re-INVITEd once, got %d", k)
	}
	if k := len(target.received("INVITE ")); k != targetInvites {
		t.Errorf("the target should get %d INVITEs, got %d", targetInvites, k)
	}
	if k := len(target.received("BYE ")); k != 1 {
		t.Errorf("the transferee's hang-up should reach the target once, got %d BYEs", k)
	}
}

// splitTransferRecords returns the record of the call caller placed and
// the other one.
func splitTransferRecords(t *testing.T, rs []CDR, caller string) (own, other CDR) {
	t.Helper()
	if len(rs) < 2 {
		t.Fatalf("want two records, got %+v", rs)
	}
	a, b := rs[0], rs[1]
	if b.Caller == caller {
		a, b = b, a
	}
	if a.Caller != caller {
		t.Fatalf("no record of %s's call among %+v", caller, rs[:2])
	}
	return a, b
}

// newest returns the record with the highest id.
func newest(rs []CDR) CDR {
	best := rs[0]
	for _, r := range rs {
		if r.ID > best.ID {
			best = r
		}
	}
	return best
}

// TestTransferPhones: the transfer button, or the keypad, of a real phone. 201, 202 and
// 203 are baresip phones playing 440, 880 and 1300 Hz. 201 calls 202;
// 202 transfers the call to 203 (baresip's transfer: a blind REFER; or
// ##203# typed as RFC 4733 events). 202's
// call ends, and 201 and 203 hear each other: 201 hears 202's tone first,
// then 203's; 203 hears 201's.
func TestTransferPhones(t *testing.T) {
	requireTool(t, "baresip")
	t.Run("button", func(t *testing.T) { transferPhones(t, false) })
	t.Run("keypad", func(t *testing.T) { transferPhones(t, true) })
}

// transferPhones runs TestTransferPhones with 202 transferring by its
// transfer button (REFER) or by typing ##203# (b2bua.TransferCode).
func transferPhones(t *testing.T, keypad bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	p := startPBX(t)
	dir := t.TempDir()
	phones := map[string]*baresipUA{}
	for _, ph := range []struct {
		ext  string
		tone float64
	}{{"201", 440}, {"202", 880}, {"203", 1300}} {
		wav := filepath.Join(dir, ph.ext+".wav")
		if err := writeToneWAV(wav, ph.tone, 40, 8000); err != nil {
			t.Fatal(err)
		}
		phones[ph.ext] = startBaresip(ctx, t, "phone-"+ph.ext, ph.ext, p.AddExt(t, ph.ext), p, wav)
	}
	for _, ph := range phones {
		ph.waitRegistered(t, 10*time.Second)
	}
	a, b, c := phones["201"], phones["202"], phones["203"]
	if r, err := a.command("dial", fmt.Sprintf("sip:202@%s", p.SIPAddr())); err != nil || !r.OK {
		t.Fatalf("dial: %+v %v", r, err)
	}
	if _, ok := b.waitEvent(10*time.Second, isEvent("CALL_ESTABLISHED")); !ok {
		t.Fatalf("202 never answered\n%s", a.log())
	}
	time.Sleep(1500 * time.Millisecond)
	if keypad {
		for _, k := range "##203#" {
			if r, err := b.command("sndcode", string(k)); err != nil || !r.OK {
				t.Fatalf("sndcode %c: %+v %v", k, r, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	} else if r, err := b.command("transfer", fmt.Sprintf("sip:203@%s", p.SIPAddr())); err != nil || !r.OK {
		t.Fatalf("transfer: %+v %v", r, err)
	}
	if _, ok := c.waitEvent(10*time.Second, isEvent("CALL_ESTABLISHED")); !ok {
		t.Fatalf("203 never got the transferred call\n%s", b.log())
	}
	if _, ok := b.waitEvent(10*time.Second, isEvent("CALL_CLOSED")); !ok {
		t.Errorf("202's call did not end after its transfer")
	}
	time.Sleep(2500 * time.Millisecond)
	if r, err := a.command("hangup", ""); err != nil || !r.OK {
		t.Fatalf("hangup: %+v %v", r, err)
	}
	if _, ok := c.waitEvent(5*time.Second, isEvent("CALL_CLOSED")); !ok {
		t.Errorf("201's hang-up did not reach 203")
	}
	for _, ph := range phones {
		ph.stop()
	}
	wa, wc := a.heard(t), c.heard(t)
	start, end := audibleSpan(wa)
	if start < 0 {
		t.Fatal("201 heard nothing")
	}
	if f := strongestIn(wa, start+wa.Rate/4, wa.Rate/2); math.Abs(f-880) > 5 {
		t.Errorf("201 first heard %.0f Hz, want 202's 880 Hz", f)
	}
	if f := strongestIn(wa, end-wa.Rate, wa.Rate/2); math.Abs(f-1300) > 5 {
		t.Errorf("201 last heard %.0f Hz, want 203's 1300 Hz", f)
	}
	if f, _, err := dominantFrequency(wc); err != nil || math.Abs(f-440) > 5 {
		t.Errorf("203 heard %.0f Hz (%v), want 201's 440 Hz", f, err)
	}
	rs := p.waitCDRs(t, "the call's and the transfer's records", allCallsDone(2))
	note := "REFER to 203 answered 202"
	if keypad {
		note = "keypad transfer to 203 by 202"
	}
	if own, xfer := splitTransferRecords(t, rs, "201"); xfer.Caller != "202" || xfer.Callee != "203" || !strings.Contains(own.ResultReason, note) {
		t.Errorf("records: %+v / %+v", own, xfer)
	}
}
