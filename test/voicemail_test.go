package test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVoicemail: 202 has a mailbox (its PIN made by the CLI, its own
// greeting set with it) and is busy. 201 (baresip, playing 440 Hz) calls
// it: the PBX answers with the greeting and a beep, and what 201
// says after the greeting is kept as a WAV file holding the 440 Hz tone;
// 202's phone gets a message-waiting NOTIFY. Then 202 dials *97 from a
// baresip phone, types its PIN as DTMF (RFC 4733) and hears the message.
func TestVoicemail(t *testing.T) {
	requireTool(t, "sipp")
	requireTool(t, "baresip")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p := startPBX(t)
	pw201, pw202 := p.AddExt(t, "201"), p.AddExt(t, "202")
	var box struct{ PIN string }
	if err := json.Unmarshal([]byte(p.run(t, "voicemail", "enable", "202", "--json")), &box); err != nil || len(box.PIN) != 6 {
		t.Fatalf("voicemail enable: %+v %v", box, err)
	}
	port202 := freePort(t, calleeIP)
	registerSIPp(t, p, "202", pw202, calleeIP, port202, 3600)

	dir := t.TempDir()
	speech, quiet := filepath.Join(dir, "speech.wav"), filepath.Join(dir, "quiet.wav")
	if err := writeToneWAV(speech, 440, 5, 8000); err != nil {
		t.Fatal(err)
	}
	if err := writeToneWAV(quiet, 3000, 60, 8000); err != nil {
		t.Fatal(err)
	}
	// 202's own greeting: 1.5 s of 2000 Hz, which 201 must hear.
	hello := filepath.Join(dir, "greeting.wav")
	if err := writeToneWAV(hello, 2000, 1.5, 8000); err != nil {
		t.Fatal(err)
	}
	p.run(t, "voicemail", "greeting", "202", hello)

	// 1. A message left while 202 is busy.
	busy := startSIPp(t, sippSpec{Name: "busy-202", Scenario: "uas_busy.xml", IP: calleeIP, Port: port202, Service: "202"})
	caller := startBaresip(ctx, t, "caller-201", "201", pw201, p, speech)
	caller.waitRegistered(t, 10*time.Second)
	if r, err := caller.command("dial", fmt.Sprintf("sip:202@%s", p.SIPAddr())); err != nil || !r.OK {
		t.Fatalf("dial: %+v %v", r, err)
	}
	if b := busy.WaitAtMost(10 * time.Second); !b.ok(1) {
		t.Fatalf("202's phone should have answered busy:\n%s\n%s", b.summary(), b.report())
	}
	mwi := startSIPp(t, sippSpec{Name: "mwi-202", Scenario: "mwi_uas.xml", IP: calleeIP, Port: port202, Service: "202"})
	if _, ok := caller.waitEvent(15*time.Second, isEvent("CALL_CLOSED")); !ok {
		t.Fatalf("201's call did not end\n%s", caller.log())
	}
	if m := mwi.WaitAtMost(10 * time.Second); !m.ok(1) {
		t.Errorf("no message-waiting NOTIFY for 202:\n%s\n%s", m.summary(), m.report())
	}
	caller.stop()
	w := caller.heard(t)
	if start, _ := audibleSpan(w); start < 0 || math.Abs(strongestIn(w, start+w.Rate/4, w.Rate/2)-2000) > 5 {
		t.Errorf("201 did not hear 202's own greeting (2000 Hz) first")
	}

	var msgs []struct {
		ID       int64
		Caller   string
		Duration int64 `json:"duration_ms"`
		File     string
		Heard    bool
	}
	if err := json.Unmarshal([]byte(p.run(t, "voicemail", "list", "202", "--json")), &msgs); err != nil || len(msgs) != 1 {
		t.Fatalf("voicemail list: %+v %v", msgs, err)
	}
	m := msgs[0]
	if m.Caller != "201" || m.Heard || m.Duration < int64(2*time.Second) {
		t.Errorf("message: %+v", m)
	}
	a, err := readWAV(m.File)
	if err != nil {
		t.Fatal(err)
	}
	if f, _, err := dominantFrequency(a); err != nil || math.Abs(f-440) > 5 {
		t.Errorf("the message holds %.0f Hz (%v), want 201's 440 Hz", f, err)
	}
	rec := waitOneCDR(t, p)
	if rec.Callee != "202" || rec.ResultCode != 200 || !strings.Contains(rec.ResultReason, "voicemail: message") {
		t.Errorf("call record: %+v", rec)
	}

	// 2. 202 listens: *97, the PIN, the message.
	phone := startBaresip(ctx, t, "phone-202", "202", pw202, p, quiet)
	phone.waitRegistered(t, 10*time.Second)
	if r, err := phone.command("dial", fmt.Sprintf("sip:*97@%s", p.SIPAddr())); err != nil || !r.OK {
		t.Fatalf("dial *97: %+v %v", r, err)
	}
	if ev, ok := phone.waitEvent(10*time.Second, isEvent("CALL_ESTABLISHED")); !ok {
		t.Fatalf("*97 not answered: %+v\n%s", ev, phone.log())
	}
	time.Sleep(800 * time.Millisecond) // the PIN prompt
	for _, d := range box.PIN + "#" {
		if r, err := phone.command("sndcode", string(d)); err != nil || !r.OK {
			t.Fatalf("sndcode %c: %+v %v", d, r, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if _, ok := phone.waitEvent(20*time.Second, isEvent("CALL_CLOSED")); !ok {
		t.Fatalf("the mailbox did not hang up after the messages\n%s", phone.log())
	}
	phone.stop()
	heard := phone.heard(t)
	start, end := audibleSpan(heard)
	if start < 0 || end-start < heard.Rate {
		t.Fatalf("202 heard %.2f s from its mailbox", float64(end-start)/float64(heard.Rate))
	}
	if f := strongestIn(heard, end-2*heard.Rate, heard.Rate/2); math.Abs(f-440) > 5 {
		t.Errorf("202 heard %.0f Hz from its mailbox, want the message's 440 Hz", f)
	}
	if err := json.Unmarshal([]byte(p.run(t, "voicemail", "list", "202", "--json")), &msgs); err != nil || len(msgs) != 1 || !msgs[0].Heard {
		t.Errorf("after listening: %+v %v", msgs, err)
	}
}
