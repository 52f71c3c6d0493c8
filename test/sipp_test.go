package test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// These tests drive sekisho with SIPp: registrations with digest auth, and
// calls between a SIPp caller on callerIP and a SIPp callee on calleeIP
// through the PBX on 127.0.0.1. Every test starts its own PBX and checks
// both what SIPp saw and the call records the PBX wrote.

// TestSIPpRegister registers many extensions, one digest round each.
func TestSIPpRegister(t *testing.T) {
	requireTool(t, "sipp")
	p := startPBX(t)
	const n = 20
	var rows [][]string
	for i := range n {
		ext := fmt.Sprint(201 + i)
		rows = append(rows, []string{ext, p.AddExt(t, ext)})
	}
	port := freePort(t, "127.0.0.1")
	r := runSIPp(t, sippSpec{
		Name:     "register",
		Scenario: "register.xml",
		Target:   p.SIPAddr(),
		Port:     port,
		Calls:    n,
		Rate:     50,
		Rows:     rows,
		Keys:     map[string]string{"contact": fmt.Sprintf("127.0.0.1:%d", port), "expires": "3600"},
	})
	r.requireSuccess(t, n)
	if got := len(r.received("SIP/2.0 200")); got != n {
		t.Errorf("got %d 200 responses, want %d\n%s", got, n, r.report())
	}
	// RFC 3261 10.3 step 8: the 200 lists the current bindings with their
	// lifetimes.
	binding := fmt.Sprintf("@127.0.0.1:%d", port)
	for _, m := range r.received("SIP/2.0 200") {
		contact := m.header("Contact")
		if !strings.Contains(contact, binding) {
			t.Errorf("200 to REGISTER: Contact %q does not list the binding %s:\n%s", contact, binding, m.Text)
		}
		if m.header("Expires") == "" && !strings.Contains(strings.ToLower(contact), "expires=") {
			t.Errorf("200 to REGISTER gives no lifetime (Expires header or parameter):\n%s", m.Text)
		}
	}
}

// TestSIPpRegisterWrongPassword sends wrong credentials: each must be
// answered with a new 401, never with 200.
func TestSIPpRegisterWrongPassword(t *testing.T) {
	requireTool(t, "sipp")
	p := startPBX(t)
	pw201 := p.AddExt(t, "201")
	p.AddExt(t, "202")
	p.AddExt(t, "203")
	rows := [][]string{
		{"201", pw201 + "x"}, // a near miss
		{"202", pw201},       // another extension's password
		{"203", ""},          // no password at all
	}
	port := freePort(t, "127.0.0.1")
	r := runSIPp(t, sippSpec{
		Name:     "register-bad",
		Scenario: "register_bad.xml",
		Target:   p.SIPAddr(),
		Port:     port,
		Calls:    len(rows),
		Rows:     rows,
		Keys:     map[string]string{"contact": fmt.Sprintf("127.0.0.1:%d", port)},
	})
	if ok := r.received("SIP/2.0 200"); len(ok) > 0 {
		t.Fatalf("wrong credentials were accepted:\n%s\n%s", ok[0].Text, r.report())
	}
	r.requireSuccess(t, len(rows))
	// Each attempt (one Call-ID) gets a challenge, then a refusal that
	// challenges again with a new nonce.
	nonces := map[string][]string{}
	for _, m := range r.received("SIP/2.0 401") {
		id := m.header("Call-ID")
		nonces[id] = append(nonces[id], digestParam(m.header("WWW-Authenticate"), "nonce"))
	}
	if len(nonces) != len(rows) {
		t.Errorf("got 401s for %d attempts, want %d\n%s", len(nonces), len(rows), r.report())
	}
	for id, ns := range nonces {
		if len(ns) != 2 || ns[0] == "" || ns[0] == ns[1] {
			t.Errorf("attempt %s: nonces %q, want two different ones\n%s", id, ns, r.report())
		}
	}
}

// digestParam returns one parameter of a Digest challenge, unquoted.
func digestParam(challenge, name string) string {
	_, params, _ := strings.Cut(challenge, " ")
	for _, kv := range strings.Split(params, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && strings.EqualFold(k, name) {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// callCase is one call from 201 to 202 through the PBX.
type callCase struct {
	name  string
	flags []string // extra serve flags
	// calleeNotGot, when set, is how many INVITEs the callee may get: the
	// one that rang it, and no re-INVITE.
	calleeNotGot int
	uas          string            // callee scenario
	uac          string            // caller scenario
	sets         map[string]string // caller scenario variables
	want         cdrWant
	// Messages each side must have received, by the start of their first
	// line: a check on the traces that does not rely on SIPp's verdict.
	callerGot, calleeGot []string
}

// TestSIPpCall places authenticated calls from 201 to a registered 202 and
// checks the outcome on both legs and in the call record.
func TestSIPpCall(t *testing.T) {
	requireTool(t, "sipp")
	base := cdrWant{Caller: "201", Dialled: "202", Callee: oneOf{"202"}}
	with := func(f func(*cdrWant)) cdrWant { w := base; f(&w); return w }
	cases := []callCase{
		{
			name: "answered caller hangs up",
			uas:  "uas_answer.xml", uac: "uac_call.xml",
			want: with(func(w *cdrWant) {
				w.ResultCode, w.Answered, w.HangupBy, w.MinDurationMS = 200, true, oneOf{"caller"}, 300
			}),
			callerGot: []string{"SIP/2.0 200"},
			calleeGot: []string{"ACK ", "BYE "},
		},
		{
			name: "answered callee hangs up",
			uas:  "uas_answer_bye.xml", uac: "uac_call_wait_bye.xml",
			want: with(func(w *cdrWant) {
				w.ResultCode, w.Answered, w.HangupBy, w.MinDurationMS = 200, true, oneOf{"callee"}, 300
			}),
			callerGot: []string{"SIP/2.0 200", "BYE "},
			calleeGot: []string{"ACK ", "SIP/2.0 200"},
		},
		{
			// re-INVITEs are relayed both ways with their SDP, and the
			// PBX ACKs the callee's 200 to each itself.
			name:  "hold and resume, relayed",
			flags: []string{"--hold-music", "off"},
			uas:   "uas_answer_hold.xml", uac: "uac_call_hold.xml",
			want: with(func(w *cdrWant) {
				w.ResultCode, w.Answered, w.HangupBy = 200, true, oneOf{"caller"}
			}),
			callerGot: []string{"SIP/2.0 200"},
			calleeGot: []string{"ACK ", "INVITE ", "BYE "},
		},
		{
			// With music on hold (the default) the PBX answers the hold
			// and the resume itself (200 with a=recvonly, then sendrecv):
			// the callee's phone sees neither re-INVITE.
			name: "hold and resume, music",
			uas:  "uas_answer.xml", uac: "uac_call_hold.xml",
			want: with(func(w *cdrWant) {
				w.ResultCode, w.Answered, w.HangupBy = 200, true, oneOf{"caller"}
			}),
			callerGot:    []string{"SIP/2.0 200"},
			calleeGot:    []string{"ACK ", "BYE "},
			calleeNotGot: 1,
		},
		{
			name: "busy",
			uas:  "uas_busy.xml", uac: "uac_reject.xml",
			sets: map[string]string{"want": "486"},
			// Who "hung up" a refused call is not pinned down; it was
			// not the caller.
			want:      with(func(w *cdrWant) { w.ResultCode, w.HangupBy = 486, oneOf{"callee"} }),
			callerGot: []string{"SIP/2.0 486"},
			calleeGot: []string{"ACK "},
		},
		{
			name: "cancelled while ringing",
			uas:  "uas_ring_cancel.xml", uac: "uac_cancel.xml",
			want:      with(func(w *cdrWant) { w.ResultCode, w.HangupBy = 487, oneOf{"caller"} }),
			callerGot: []string{"SIP/2.0 180", "SIP/2.0 487"},
			calleeGot: []string{"CANCEL ", "ACK "},
		},
		{
			name:  "ring timeout",
			flags: []string{"--ring-timeout", "2s"},
			uas:   "uas_ring_cancel.xml", uac: "uac_reject.xml",
			sets: map[string]string{"want": "480"},
			// The PBX gave up: the record says so or names nobody.
			want:      with(func(w *cdrWant) { w.ResultCode, w.HangupBy = 480, oneOf{"pbx"} }),
			callerGot: []string{"SIP/2.0 480"},
			calleeGot: []string{"CANCEL ", "ACK "},
		},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			runCallCase(t, c)
		})
	}
}

// runCallCase registers a SIPp callee as 202, has a SIPp caller call it as
// 201, and checks both legs and the call record.
func runCallCase(t *testing.T, c callCase) {
	p := startPBX(t, c.flags...)
	pw201 := p.AddExt(t, "201")
	pw202 := p.AddExt(t, "202")
	uasPort := freePort(t, calleeIP)
	registerSIPp(t, p, "202", pw202, calleeIP, uasPort, 3600)

	uas := startSIPp(t, sippSpec{
		Name:     "callee",
		Scenario: c.uas,
		IP:       calleeIP,
		Port:     uasPort,
		Service:  "202",
		PauseMS:  500,
	})
	caller := runSIPp(t, sippSpec{
		Name:     "caller",
		Scenario: c.uac,
		Target:   p.SIPAddr(),
		IP:       callerIP,
		Service:  "202",
		Rows:     [][]string{{"201", pw201}},
		Sets:     c.sets,
		PauseMS:  500,
	})
	// A callee whose caller gave up would otherwise wait for SIPp's global
	// timeout.
	wait := sippGlobalTimeout
	if caller.ExitCode != 0 {
		wait = 3 * time.Second
	}
	callee := uas.WaitAtMost(wait)
	both := caller.report() + callee.report()
	if !caller.ok(1) || !callee.ok(1) {
		t.Fatalf("want one successful call on each side; got\n%s\n%s\n%s", caller.summary(), callee.summary(), both)
	}
	checkCalleeLeg(t, caller, callee, uasPort)
	for _, want := range c.callerGot {
		if len(caller.received(want)) == 0 {
			t.Errorf("caller never received %q", want)
		}
	}
	for _, want := range c.calleeGot {
		if len(callee.received(want)) == 0 {
			t.Errorf("callee never received %q", want)
		}
	}
	if n := len(callee.received("INVITE ")); c.calleeNotGot > 0 && n != c.calleeNotGot {
		t.Errorf("callee received %d INVITEs, want %d", n, c.calleeNotGot)
	}

	rs := waitOneCDR(t, p)
	checkCDR(t, rs, c.want)
	if t.Failed() {
		t.Logf("SIPp traces:\n%s", both)
	}
}

// checkCalleeLeg checks the INVITE the PBX sent the callee: a new call
// (B2BUA) to exactly the registered Contact, with the caller's SDP unchanged
// and no trace of the caller's credentials.
func checkCalleeLeg(t *testing.T, caller, callee *sippResult, uasPort int) {
	t.Helper()
	invites := callee.received("INVITE ")
	if len(invites) == 0 {
		t.Errorf("callee got no INVITE\n%s", callee.report())
		return
	}
	got := invites[0]
	var sent []sippMessage
	for _, m := range caller.messages() {
		if !m.Received && strings.HasPrefix(m.First, "INVITE ") {
			sent = append(sent, m)
		}
	}
	if len(sent) == 0 {
		t.Errorf("caller sent no INVITE\n%s", caller.report())
		return
	}
	// The initial INVITE that carried credentials; re-INVITEs come later.
	authed := sent[len(sent)-1]
	for _, m := range sent {
		if m.header("Proxy-Authorization") != "" {
			authed = m
			break
		}
	}

	wantRURI := fmt.Sprintf("INVITE sip:202@%s:%d SIP/2.0", calleeIP, uasPort)
	if got.First != wantRURI {
		t.Errorf("callee INVITE request line = %q, want %q (the registered Contact)", got.First, wantRURI)
	}
	if got.header("Call-ID") == "" || got.header("Call-ID") == authed.header("Call-ID") {
		t.Errorf("callee leg Call-ID %q must be new (caller leg %q)", got.header("Call-ID"), authed.header("Call-ID"))
	}
	if !strings.Contains(got.header("From"), "sip:201@") {
		t.Errorf("callee leg From = %q, want sip:201@<pbx>", got.header("From"))
	}
	if !strings.Contains(got.header("To"), "sip:202@") {
		t.Errorf("callee leg To = %q, want sip:202@<pbx>", got.header("To"))
	}
	// A B2BUA that forwards Proxy-Authorization hands the caller's digest
	// response to whoever registered the callee.
	for _, h := range []string{"Proxy-Authorization", "Authorization"} {
		if v := got.header(h); v != "" {
			t.Errorf("callee leg carries the caller's %s: %q", h, v)
		}
	}
	checkAnchored(t, sdpBody(authed.Text), sdpBody(got.Text))
}

// checkAnchored checks that the SDP the far side got is the SDP the near
// side sent with only the addresses (origin, connection) and the media
// port replaced by the PBX's relay: codecs and attributes pass unchanged,
// and the near side's own address is not handed out.
func checkAnchored(t *testing.T, sent, got string) {
	t.Helper()
	sl, gl := strings.Split(sent, "\n"), strings.Split(got, "\n")
	if len(sl) != len(gl) {
		t.Errorf("SDP lines differ in number:\nsent:\n%s\ngot:\n%s", sent, got)
		return
	}
	for i := range sl {
		s, g := strings.TrimSpace(sl[i]), strings.TrimSpace(gl[i])
		switch {
		case strings.HasPrefix(s, "c="):
			if g != "c=IN IP4 127.0.0.1" {
				t.Errorf("SDP connection %q, want the PBX's relay address (sent %q)", g, s)
			}
		case strings.HasPrefix(s, "o="):
			sf, gf := strings.Fields(s), strings.Fields(g)
			if len(sf) != 6 || len(gf) != 6 || strings.Join(sf[:5], " ") != strings.Join(gf[:5], " ") || gf[5] != "127.0.0.1" {
				t.Errorf("SDP origin %q, want %q with the relay's address", g, s)
			}
		case strings.HasPrefix(s, "m=audio "):
			sf, gf := strings.Fields(s), strings.Fields(g)
			if len(sf) != len(gf) || gf[1] == sf[1] || strings.Join(sf[2:], " ") != strings.Join(gf[2:], " ") {
				t.Errorf("SDP media line %q, want %q with a relay port", g, s)
			}
		case s != g:
			t.Errorf("SDP line changed: sent %q, got %q", s, g)
		}
	}
}

// sdpBody returns the body of a traced message, trimmed.
func sdpBody(msg string) string {
	_, body, _ := strings.Cut(msg, "\n\n")
	return strings.TrimSpace(body)
}

// waitOneCDR waits for the call to be recorded and requires that it is the
// only record: a 407 challenge round must not leave one.
func waitOneCDR(t *testing.T, p *PBX) CDR {
	t.Helper()
	p.waitCDRs(t, "one finished call", allCallsDone(1))
	// Records are written asynchronously: give a stray one time to appear.
	time.Sleep(300 * time.Millisecond)
	rs := p.CDRs(t)
	if len(rs) != 1 {
		t.Fatalf("want exactly 1 call record, got %d: %+v", len(rs), rs)
	}
	return rs[0]
}

// TestSIPpCallRejected calls destinations the PBX must refuse after
// authenticating the caller.
func TestSIPpCallRejected(t *testing.T) {
	requireTool(t, "sipp")
	cases := []struct {
		name   string
		dial   string
		setup  func(t *testing.T, p *PBX) // run after 201 exists
		code   int
		callee oneOf
	}{
		{
			// No extension was resolved: the record may leave the
			// callee empty or repeat the dialled number.
			name:   "unknown extension",
			dial:   "299",
			code:   404,
			callee: oneOf{"299"},
		},
		{
			name:   "never registered",
			dial:   "203",
			setup:  func(t *testing.T, p *PBX) { p.AddExt(t, "203") },
			code:   480,
			callee: oneOf{"203"},
		},
		{
			name: "registration removed",
			dial: "203",
			setup: func(t *testing.T, p *PBX) {
				pw := p.AddExt(t, "203")
				port := freePort(t, calleeIP)
				registerSIPp(t, p, "203", pw, calleeIP, port, 3600)
				registerSIPp(t, p, "203", pw, calleeIP, port, 0)
			},
			code:   480,
			callee: oneOf{"203"},
		},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			p := startPBX(t)
			pw201 := p.AddExt(t, "201")
			if c.setup != nil {
				c.setup(t, p)
			}
			r := runSIPp(t, sippSpec{
				Name:     "caller",
				Scenario: "uac_reject.xml",
				Target:   p.SIPAddr(),
				IP:       callerIP,
				Service:  c.dial,
				Rows:     [][]string{{"201", pw201}},
				Sets:     map[string]string{"want": fmt.Sprint(c.code)},
			})
			r.requireSuccess(t, 1)
			rec := waitOneCDR(t, p)
			checkCDR(t, rec, cdrWant{
				Caller:     "201",
				Dialled:    c.dial,
				Callee:     c.callee,
				ResultCode: c.code,
				HangupBy:   oneOf{"pbx"},
			})
			if t.Failed() {
				t.Logf("SIPp trace:\n%s", r.report())
			}
		})
	}
}

// TestSIPpBadSDP: an authenticated INVITE whose body is not a usable
// session description is refused with 488 and recorded; nothing is rung.
func TestSIPpBadSDP(t *testing.T) {
	requireTool(t, "sipp")
	p := startPBX(t)
	pw201, pw202 := p.AddExt(t, "201"), p.AddExt(t, "202")
	uasPort := freePort(t, calleeIP)
	registerSIPp(t, p, "202", pw202, calleeIP, uasPort, 3600)
	callee := startSIPp(t, sippSpec{Name: "callee", Scenario: "uas_answer.xml", IP: calleeIP, Port: uasPort, Service: "202"})
	r := runSIPp(t, sippSpec{
		Name: "caller", Scenario: "uac_bad_sdp.xml", Target: p.SIPAddr(), IP: callerIP,
		Service: "202", Rows: [][]string{{"201", pw201}}, Sets: map[string]string{"want": "488"},
	})
	if !r.ok(1) {
		t.Fatalf("want 488:\n%s\n%s", r.summary(), r.report())
	}
	if n := len(callee.WaitAtMost(time.Second).received("INVITE ")); n != 0 {
		t.Errorf("callee was rung %d times for an unusable offer", n)
	}
	rec := waitOneCDR(t, p)
	checkCDR(t, rec, cdrWant{Caller: "201", Dialled: "202", Callee: oneOf{"202"}, ResultCode: 488, HangupBy: oneOf{"pbx"}})
}
