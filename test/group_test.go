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

// member is a SIPp phone registered as an extension, playing a
// scenario once.
type member struct {
	ext, scenario string
}

// ringGroupCall registers each member's phone, has 201 dial number and
// returns each member's result, in order.
func ringGroupCall(t *testing.T, p *PBX, pws map[string]string, number string, members []member) []*sippResult {
	t.Helper()
	procs := make([]*sippProc, len(members))
	ports := make([]int, len(members))
	for i, m := range members {
		port := freePort(t, calleeIP)
		ports[i] = port
		registerSIPp(t, p, m.ext, pws[m.ext], calleeIP, port, 60)
		procs[i] = startSIPp(t, sippSpec{Name: fmt.Sprintf("member-%s-%d", m.ext, i), Scenario: m.scenario, IP: calleeIP, Port: port, Service: m.ext, PauseMS: 300})
	}
	caller := runSIPp(t, sippSpec{Name: "caller", Scenario: "uac_call.xml", Target: p.SIPAddr(), IP: callerIP,
		Service: number, Rows: [][]string{{"201", pws["201"]}}, PauseMS: 300})
	out := make([]*sippResult, len(procs))
	for i, pr := range procs {
		out[i] = pr.WaitAtMost(10 * time.Second)
	}
	if !caller.ok(1) {
		var b strings.Builder
		for _, r := range out {
			b.WriteString(r.summary() + "\n" + r.report())
		}
		t.Fatalf("call to group %s:\n%s\n%s\n%s", number, caller.summary(), caller.report(), b.String())
	}
	// Each member's phone is unregistered again, for the next case.
	for i, m := range members {
		registerSIPp(t, p, m.ext, pws[m.ext], calleeIP, ports[i], 0)
	}
	return out
}

// TestRingGroup: a group number rings its members all at once (the
// first answer wins, the other phone gets CANCEL), or one after another
// (hunt: a busy member passes the call on), and overflows to another
// group when nobody answers in time; a DID can ring a group.
func TestRingGroup(t *testing.T) {
	requireTool(t, "sipp")
	p := startPBX(t)
	pws := map[string]string{}
	for _, e := range []string{"201", "202", "203"} {
		pws[e] = p.AddExt(t, e)
	}
	p.run(t, "group", "add", "600", "--members", "202,203", "--name", "Sales")
	p.run(t, "group", "add", "610", "--members", "202,203", "--strategy", "hunt")
	p.run(t, "group", "add", "621", "--members", "203")
	p.run(t, "group", "add", "620", "--members", "202", "--ring", "5s", "--overflow", "621")

	t.Run("ring-all", func(t *testing.T) {
		rs := ringGroupCall(t, p, pws, "600", []member{{"202", "uas_ring_cancel.xml"}, {"203", "uas_answer.xml"}})
		if !rs[0].ok(1) || len(rs[0].received("CANCEL ")) == 0 {
			t.Errorf("202 was not rung and cancelled:\n%s", rs[0].report())
		}
		if !rs[1].ok(1) {
			t.Errorf("203 did not answer:\n%s", rs[1].report())
		}
	})
	t.Run("hunt", func(t *testing.T) {
		rs := ringGroupCall(t, p, pws, "610", []member{{"202", "uas_busy.xml"}, {"203", "uas_answer.xml"}})
		if len(rs[0].received("INVITE ")) == 0 || !rs[1].ok(1) {
			t.Errorf("hunt: 202 rung first, then 203 answers:\n%s\n%s", rs[0].report(), rs[1].report())
		}
	})
	t.Run("overflow", func(t *testing.T) {
		start := time.Now()
		rs := ringGroupCall(t, p, pws, "620", []member{{"202", "uas_ring_cancel.xml"}, {"203", "uas_answer.xml"}})
		if len(rs[0].received("CANCEL ")) == 0 || !rs[1].ok(1) || time.Since(start) < 5*time.Second {
			t.Errorf("overflow: 202 rings 5 s and is cancelled, then group 621 answers:\n%s\n%s", rs[0].report(), rs[1].report())
		}
	})
	p.waitCDRs(t, "three answered group calls", func(rs []CDR) bool {
		n := 0
		for _, r := range rs {
			if r.Caller == "201" && r.ResultCode == 200 && strings.HasPrefix(r.Dialled, "6") {
				n++
			}
		}
		return n == 3
	})
}

// TestRingGroupPhones: a ring-all group of two baresip phones (202 at
// 880 Hz, 203 at 1300 Hz), both answering at once. The first answer wins:
// 201 is bridged to one phone only and hears that phone's tone from the
// start of the call to its end, and the record names that phone.
func TestRingGroupPhones(t *testing.T) {
	requireTool(t, "baresip")
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	p := startPBX(t)
	dir := t.TempDir()
	phones := map[string]*baresipUA{}
	tones := map[string]float64{"201": 440, "202": 880, "203": 1300}
	for ext, tone := range tones {
		wav := filepath.Join(dir, ext+".wav")
		if err := writeToneWAV(wav, tone, 40, 8000); err != nil {
			t.Fatal(err)
		}
		phones[ext] = startBaresip(ctx, t, "phone-"+ext, ext, p.AddExt(t, ext), p, wav)
	}
	for _, ph := range phones {
		ph.waitRegistered(t, 10*time.Second)
	}
	p.run(t, "group", "add", "600", "--members", "202,203")
	a := phones["201"]
	if r, err := a.command("dial", fmt.Sprintf("sip:600@%s", p.SIPAddr())); err != nil || !r.OK {
		t.Fatalf("dial: %+v %v", r, err)
	}
	if _, ok := a.waitEvent(10*time.Second, isEvent("CALL_ESTABLISHED")); !ok {
		t.Fatalf("the group never answered\n%s", a.log())
	}
	time.Sleep(3 * time.Second)
	if r, err := a.command("hangup", ""); err != nil || !r.OK {
		t.Fatalf("hangup: %+v %v", r, err)
	}
	time.Sleep(500 * time.Millisecond)
	for _, ph := range phones {
		ph.stop()
	}
	w := a.heard(t)
	start, end := audibleSpan(w)
	if start < 0 || end-start < 2*w.Rate {
		t.Fatalf("201 heard %.2f s", float64(end-start)/float64(w.Rate))
	}
	first := strongestIn(w, start+w.Rate/4, w.Rate/2)
	last := strongestIn(w, end-w.Rate, w.Rate/2)
	rec := waitOneCDR(t, p)
	want := tones[rec.Callee]
	if rec.Callee != "202" && rec.Callee != "203" || math.Abs(first-want) > 5 || math.Abs(last-want) > 5 {
		t.Errorf("record callee %q (%.0f Hz); 201 heard %.0f Hz first and %.0f Hz last", rec.Callee, want, first, last)
	}
}
