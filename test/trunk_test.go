package test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Addresses that play the carrier and a stranger posing as it.
const (
	carrierIP  = "127.0.0.10"
	strangerIP = "127.0.0.11"

	trunkUser     = "office-trunk"
	trunkPassword = "carrier-issued-Secret-42"
	trunkCallerID = "0312340000"
	did           = "0312345678"
)

// startPBXWithTrunk starts sekisho (with extra serve flags) with extensions
// 201 and 202, a trunk to a carrier at carrierIP and the DID did ringing 202.
func startPBXWithTrunk(t *testing.T, flags ...string) (p *PBX, pw201, pw202 string, carrierPort int) {
	t.Helper()
	p = startPBX(t, flags...)
	pw201, pw202 = p.AddExt(t, "201"), p.AddExt(t, "202")
	carrierPort = freePort(t, carrierIP)
	pwFile := filepath.Join(t.TempDir(), "trunk-password")
	if err := os.WriteFile(pwFile, []byte(trunkPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.secretsMu.Lock()
	p.secrets = append(p.secrets, trunkPassword)
	p.secretsMu.Unlock()
	p.run(t, "trunk", "add", "carrier", "--peer", net.JoinHostPort(carrierIP, strconv.Itoa(carrierPort)),
		"--username", trunkUser, "--password-file", pwFile, "--caller-id", trunkCallerID)
	p.run(t, "did", "add", did, "--ext", "202")
	// The running server picks trunk changes up within seconds.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Log(), `msg="trunk: loaded" count=1`) {
		if time.Now().After(deadline) {
			t.Fatalf("server never loaded the trunk:\n%s", p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p, pw201, pw202, carrierPort
}

// startCarrier starts the SIPp carrier (challenging with the trunk's
// credentials) on carrierIP:port.
func startCarrier(t *testing.T, port int) *sippProc {
	t.Helper()
	return startSIPp(t, sippSpec{
		Name: "carrier", Scenario: "carrier_uas.xml", IP: carrierIP, Port: port,
		Keys: map[string]string{"cuser": trunkUser, "cpass": trunkPassword},
	})
}

// callOut has 201 dial through the PBX with callerScenario while the SIPp
// carrier answers, and fails the test unless both sides succeed.
func callOut(t *testing.T, p *PBX, pw201 string, carrierPort int, dial, callerScenario string) (caller, carrier *sippResult) {
	t.Helper()
	c := startCarrier(t, carrierPort)
	caller = runSIPp(t, sippSpec{
		Name: "caller", Scenario: callerScenario, Target: p.SIPAddr(), IP: callerIP,
		Service: dial, Rows: [][]string{{"201", pw201}}, PauseMS: 300,
	})
	carrier = c.WaitAtMost(10 * time.Second)
	if !caller.ok(1) || !carrier.ok(1) {
		t.Fatalf("call to %s through the carrier failed:\n%s\n%s\n%s%s", dial, caller.summary(), carrier.summary(), caller.report(), carrier.report())
	}
	return caller, carrier
}

// TestTrunkOutbound: an extension dials 0 + a domestic number; the carrier
// gets the canonical number in the Request-URI, the trunk's caller ID, and
// a correct answer to its digest challenge.
func TestTrunkOutbound(t *testing.T) {
	requireTool(t, "sipp")
	p, pw201, _, carrierPort := startPBXWithTrunk(t)
	_, cr := callOut(t, p, pw201, carrierPort, "0"+"0312345678", "uac_call.xml")
	invites := cr.received("INVITE ")
	if len(invites) != 2 {
		t.Fatalf("carrier got %d INVITEs, want 2 (challenged, then authenticated)", len(invites))
	}
	inv := invites[1]
	if want := "INVITE sip:0312345678@" + net.JoinHostPort(carrierIP, strconv.Itoa(carrierPort)) + " SIP/2.0"; inv.First != want {
		t.Errorf("carrier Request-URI line %q, want %q", inv.First, want)
	}
	if from := inv.header("From"); !strings.Contains(from, "sip:"+trunkCallerID+"@") || strings.Contains(from, "201") {
		t.Errorf("carrier From %q: want the trunk caller ID, never the extension", from)
	}
	if pai := inv.header("P-Asserted-Identity"); !strings.Contains(pai, trunkCallerID) {
		t.Errorf("carrier P-Asserted-Identity %q, want %s", pai, trunkCallerID)
	}
	if pa := inv.header("Authorization"); !strings.Contains(pa, `username="`+trunkUser+`"`) {
		t.Errorf("carrier Authorization %q", pa)
	}
	rec := waitOneCDR(t, p)
	checkCDR(t, rec, cdrWant{Caller: "201", Dialled: "00312345678", Callee: oneOf{"0312345678"}, ResultCode: 200, Answered: true, HangupBy: oneOf{"caller"}})
	if rec.Direction != "outbound" || rec.Trunk != "carrier" || rec.SentNumber != "0312345678" {
		t.Errorf("record direction/trunk/sent = %q/%q/%q, want outbound/carrier/0312345678", rec.Direction, rec.Trunk, rec.SentNumber)
	}
	if inv.header("Privacy") != "" {
		t.Errorf("Privacy %q on a call that did not ask for it", inv.header("Privacy"))
	}

	// 184 before the number hides the caller's number (RFC 3323): the
	// carrier gets the same canonical number, an anonymous From, Privacy:
	// id, and the asserted identity it needs for billing.
	_, cr = callOut(t, p, pw201, carrierPort, "0"+"184"+"0312345678", "uac_call.xml")
	inv = cr.received("INVITE ")[1]
	if want := "INVITE sip:0312345678@"; !strings.HasPrefix(inv.First, want) {
		t.Errorf("withheld call: Request-URI line %q, want the canonical number", inv.First)
	}
	if from := inv.header("From"); !strings.Contains(from, "sip:anonymous@anonymous.invalid") || strings.Contains(from, trunkCallerID) {
		t.Errorf("withheld call: From %q", from)
	}
	if inv.header("Privacy") != "id" || !strings.Contains(inv.header("P-Asserted-Identity"), trunkCallerID) {
		t.Errorf("withheld call: Privacy %q, P-Asserted-Identity %q", inv.header("Privacy"), inv.header("P-Asserted-Identity"))
	}
}

// TestTrunkOutboundDenied: an attacker holding a domestic-only
// extension's credentials tries the incident's family of dial strings:
// each is refused with a record, nothing reaches the carrier, and a
// legitimate domestic call still does. The first rows are the incident:
// a symbol in front of 010.
func TestTrunkOutboundDenied(t *testing.T) {
	requireTool(t, "sipp")
	p, pw201, _, carrierPort := startPBXWithTrunk(t)
	p.run(t, "ext", "set", "201", "--class", "domestic")
	carrier := startCarrier(t, carrierPort)
	// 484: not a number at all. 403: a number, but not one this
	// extension may call (abroad, premium).
	dials := []struct{ dial, want string }{
		{"0%23001023276123456", "484"}, // 0 # 010 ...: the incident
		{"%23001023276123456", "484"},  // # 0 010 ...
		{"*001023276123456", "484"},
		{"0%2523001023276123456", "484"}, // double-encoded #
		{"001023276123456", "403"},       // 0 + 010 + Sierra Leone
		{"0003301023276123456", "403"},   // carrier code before 010
		{"018401023276123456", "403"},    // 184 before 010
		{"%2B23276123456", "403"},        // +232 percent-encoded
		{"00990123456", "403"},           // premium rate
		{"009012345678", "403"},          // mobile: not in the domestic class
		{"tel:%2B23276123456", "484"},    // a URI inside the user part
		{"0003312345678", "484"},
		{"0312345678", "484"}, // no outside-line prefix: not an extension either
	}
	for _, d := range dials {
		r := runSIPp(t, sippSpec{
			Name: "caller", Scenario: "uac_reject.xml", Target: p.SIPAddr(), IP: callerIP,
			Service: d.dial, Rows: [][]string{{"201", pw201}}, Sets: map[string]string{"want": d.want},
		})
		if !r.ok(1) {
			t.Errorf("dialled %q: want %s\n%s\n%s", d.dial, d.want, r.summary(), r.report())
		}
	}
	cr := carrier.WaitAtMost(time.Second)
	if n := len(cr.received("INVITE ")); n != 0 {
		t.Fatalf("the carrier received %d INVITEs for refused numbers:\n%s", n, cr.report())
	}
	rs := p.waitCDRs(t, "a record per refused call", allCallsDone(len(dials)))
	for _, r := range rs {
		if (r.ResultCode != 484 && r.ResultCode != 403) || r.SentNumber != "" || r.Direction != "internal" {
			t.Errorf("refused call record: %+v", r)
		}
	}
	// The same extension's honest domestic call still goes through: the
	// tricks cost it nothing.
	callOut(t, p, pw201, carrierPort, "00312345678", "uac_call.xml")
}

// TestTrunkInbound: the carrier calls a DID, which rings the extension it
// is mapped to. An unknown DID gets 404 and a record; a stranger posing as
// the carrier from another address is challenged like any phone.
func TestTrunkInbound(t *testing.T) {
	requireTool(t, "sipp")
	p, _, pw202, _ := startPBXWithTrunk(t)
	uasPort := freePort(t, calleeIP)
	registerSIPp(t, p, "202", pw202, calleeIP, uasPort, 3600)
	callee := startSIPp(t, sippSpec{Name: "callee", Scenario: "uas_answer.xml", IP: calleeIP, Port: uasPort, Service: "202"})
	carrier := runSIPp(t, sippSpec{Name: "carrier", Scenario: "carrier_uac.xml", Target: p.SIPAddr(), IP: carrierIP, Service: did, PauseMS: 300})
	ce := callee.WaitAtMost(10 * time.Second)
	if !carrier.ok(1) || !ce.ok(1) {
		t.Fatalf("inbound call failed:\n%s\n%s\n%s%s", carrier.summary(), ce.summary(), carrier.report(), ce.report())
	}
	if inv := ce.received("INVITE "); len(inv) != 1 || !strings.Contains(inv[0].header("From"), "0398765432") {
		t.Errorf("callee INVITE should present the caller's number: %+v", inv)
	}
	rec := waitOneCDR(t, p)
	checkCDR(t, rec, cdrWant{Caller: "0398765432", Dialled: did, Callee: oneOf{"202"}, ResultCode: 200, Answered: true, HangupBy: oneOf{"caller"}})
	if rec.Direction != "inbound" || rec.Trunk != "carrier" {
		t.Errorf("record direction/trunk = %q/%q, want inbound/carrier", rec.Direction, rec.Trunk)
	}

	for _, c := range []struct {
		name, ip, dial, want string
	}{
		{"unknown DID", carrierIP, "0399999999", "404"},
		// A call from the carrier cannot be sent back out.
		{"hairpin", carrierIP, "00312345678", "404"},
		{"stranger posing as carrier", strangerIP, did, "407"},
	} {
		r := runSIPp(t, sippSpec{Name: "c", Scenario: "carrier_uac_reject.xml", Target: p.SIPAddr(), IP: c.ip, Service: c.dial, Sets: map[string]string{"want": c.want}})
		if !r.ok(1) {
			t.Errorf("%s: want %s\n%s\n%s", c.name, c.want, r.summary(), r.report())
		}
	}
	rs := p.waitCDRs(t, "records of refused inbound calls", allCallsDone(3))
	if len(rs) != 3 || rs[0].ResultCode != 404 || rs[1].ResultCode != 404 {
		t.Errorf("want records for the two refused carrier calls (none for the challenged stranger): %+v", rs)
	}
}

// TestTrunkRegistration: a trunk with --register registers to the
// carrier, answers its digest challenge, refreshes before the granted
// lifetime runs out, and shows its state in `trunk list`.
func TestTrunkRegistration(t *testing.T) {
	requireTool(t, "sipp")
	p := startPBX(t)
	port := freePort(t, carrierIP)
	registrar := startSIPp(t, sippSpec{
		Name: "carrier-registrar", Scenario: "carrier_registrar.xml", IP: carrierIP, Port: port, Calls: 2,
		Keys: map[string]string{"cuser": trunkUser, "cpass": trunkPassword, "grant": "12"},
	})
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte(trunkPassword), 0o600)
	p.secretsMu.Lock()
	p.secrets = append(p.secrets, trunkPassword)
	p.secretsMu.Unlock()
	p.run(t, "trunk", "add", "carrier", "--peer", net.JoinHostPort(carrierIP, strconv.Itoa(port)),
		"--username", trunkUser, "--password-file", pwFile, "--register")
	// Granted 12 s, the PBX refreshes at 80% (about 10 s): two
	// registrations within the SIPp run.
	r := registrar.WaitAtMost(25 * time.Second)
	if !r.ok(2) {
		t.Fatalf("want a registration and a refresh:\n%s\n%s", r.summary(), r.report())
	}
	out := string(p.run(t, "trunk", "list", "--json"))
	if !strings.Contains(out, `"reg_state": "registered"`) || strings.Contains(out, trunkPassword) {
		t.Fatalf("trunk list: %s", out)
	}
}

// TestTrunkSilent: a carrier that does not answer at all gets the caller a
// 503 within seconds, and a record.
func TestTrunkSilent(t *testing.T) {
	requireTool(t, "sipp")
	p, pw201, _, _ := startPBXWithTrunk(t) // nothing listens on the carrier port
	start := time.Now()
	r := runSIPp(t, sippSpec{
		Name: "caller", Scenario: "uac_reject.xml", Target: p.SIPAddr(), IP: callerIP,
		Service: "00312345678", Rows: [][]string{{"201", pw201}}, Sets: map[string]string{"want": "503"},
	})
	if !r.ok(1) {
		t.Fatalf("want 503 from a silent carrier\n%s\n%s", r.summary(), r.report())
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("503 took %v", took)
	}
	rec := waitOneCDR(t, p)
	if rec.ResultCode != 503 || rec.Trunk != "carrier" || rec.HangupBy != "pbx" || !strings.Contains(rec.ResultReason, "no response") {
		t.Errorf("record: %+v", rec)
	}
}

// TestTrunkInboundToBaresip: the carrier (SIPp) calls a DID that rings a
// registered baresip phone, which answers; the phone's audio goes out
// through the PBX's relay toward the carrier.
func TestTrunkInboundToBaresip(t *testing.T) {
	requireTool(t, "sipp")
	requireTool(t, "baresip")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	p, _, pw202, _ := startPBXWithTrunk(t)
	wav := filepath.Join(t.TempDir(), "tone.wav")
	if err := writeToneWAV(wav, 880, 20, 8000); err != nil {
		t.Fatal(err)
	}
	phone := startBaresip(ctx, t, "phone-202", "202", pw202, p, wav)
	phone.waitRegistered(t, 10*time.Second)

	carrier := runSIPp(t, sippSpec{Name: "carrier", Scenario: "carrier_uac.xml", Target: p.SIPAddr(), IP: carrierIP, Service: did, PauseMS: 2000})
	if !carrier.ok(1) {
		t.Fatalf("carrier call to the DID failed:\n%s\n%s\nphone log:\n%s", carrier.summary(), carrier.report(), phone.log())
	}
	if _, ok := phone.waitEvent(5*time.Second, isEvent("CALL_CLOSED")); !ok {
		t.Errorf("the phone never saw the carrier's BYE")
	}
	rec := waitOneCDR(t, p)
	checkCDR(t, rec, cdrWant{Caller: "0398765432", Dialled: did, Callee: oneOf{"202"}, ResultCode: 200, Answered: true, HangupBy: oneOf{"caller"}})
	if rec.Direction != "inbound" || rec.PacketsBtoA < 50 {
		t.Errorf("want an inbound call with the phone's audio relayed toward the carrier: %+v", rec)
	}
}

// TestTrunkCountryPolicy: an extension allowed to call the US only tries
// Sierra Leone and Jamaica (+1, but not the US): refused, and the carrier
// hears nothing. An extension allowed Sierra Leone reaches the carrier with
// the E.164 number.
func TestTrunkCountryPolicy(t *testing.T) {
	requireTool(t, "sipp")
	p, pw201, _, carrierPort := startPBXWithTrunk(t)
	p.run(t, "ext", "set", "201", "--class", "international", "--countries", "US")
	for _, dial := range []string{"001023276123456", "%2B23276123456", "%2B18765550123"} {
		r := runSIPp(t, sippSpec{
			Name: "caller", Scenario: "uac_reject.xml", Target: p.SIPAddr(), IP: callerIP,
			Service: dial, Rows: [][]string{{"201", pw201}}, Sets: map[string]string{"want": "403"},
		})
		if !r.ok(1) {
			t.Errorf("US-only extension dialling %q: want 403\n%s\n%s", dial, r.summary(), r.report())
		}
	}
	p.run(t, "ext", "set", "201", "--countries", "SL")
	_, cr := callOut(t, p, pw201, carrierPort, "001023276123456", "uac_call.xml")
	invites := cr.received("INVITE ")
	if len(invites) != 2 {
		t.Fatalf("carrier got %d INVITEs, want 2 (the refused calls must not have reached it)", len(invites))
	}
	if want := "INVITE sip:+23276123456@"; !strings.HasPrefix(invites[1].First, want) {
		t.Errorf("carrier Request-URI %q, want %s...", invites[1].First, want)
	}
}

// TestTrunkMaxDuration: an answered outbound call is hung up by the PBX,
// on both legs, when it reaches --max-call-duration.
func TestTrunkMaxDuration(t *testing.T) {
	requireTool(t, "sipp")
	p, pw201, _, carrierPort := startPBXWithTrunk(t, "--max-call-duration", "2s")
	// Both sides wait for a BYE that only the PBX sends.
	callOut(t, p, pw201, carrierPort, "00312345678", "uac_call_wait_bye.xml")
	rec := waitOneCDR(t, p)
	if rec.HangupBy != "pbx" || rec.DurationMS < 1900 || rec.DurationMS > 6000 || !strings.Contains(rec.ResultReason, "maximum call duration") {
		t.Errorf("record: %+v", rec)
	}
}
