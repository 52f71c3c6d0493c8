package test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"
)

// TestHoldMusic: two baresip phones in a call, 201 playing 440 Hz and 202
// 880 Hz. 201 puts the call on hold (re-INVITE, a=sendonly) and, four
// seconds later, resumes it. The PBX answers the hold itself and plays
// its music on hold (here a 1000 Hz WAV given with --hold-music) to 202,
// which must hear it while held and 201's tone again after the resume.
func TestHoldMusic(t *testing.T) {
	requireTool(t, "baresip")
	const (
		callerTone, calleeTone, musicTone = 440.0, 880.0, 1000.0
		toleranceHz                       = 5.0
	)
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()

	dir := t.TempDir()
	music := filepath.Join(dir, "hold-1000.wav")
	callerWAV, calleeWAV := filepath.Join(dir, "caller.wav"), filepath.Join(dir, "callee.wav")
	for _, w := range []struct {
		path string
		freq float64
	}{{music, musicTone}, {callerWAV, callerTone}, {calleeWAV, calleeTone}} {
		if err := writeToneWAV(w.path, w.freq, 30, 8000); err != nil {
			t.Fatal(err)
		}
	}
	pbx := startPBX(t, "--hold-music", music)
	pw201, pw202 := pbx.AddExt(t, "201"), pbx.AddExt(t, "202")
	caller := startBaresip(ctx, t, "caller-201", "201", pw201, pbx, callerWAV)
	callee := startBaresip(ctx, t, "callee-202", "202", pw202, pbx, calleeWAV)
	caller.waitRegistered(t, 10*time.Second)
	callee.waitRegistered(t, 10*time.Second)

	if r, err := caller.command("dial", fmt.Sprintf("sip:202@%s", pbx.SIPAddr())); err != nil || !r.OK {
		t.Fatalf("dial: %+v %v", r, err)
	}
	if ev, ok := caller.waitEvent(10*time.Second, isEvent("CALL_ESTABLISHED")); !ok {
		t.Fatalf("call not established: %+v\n%s", ev, caller.log())
	}
	time.Sleep(1500 * time.Millisecond)
	for _, step := range []struct {
		cmd  string
		wait time.Duration
	}{{"hold", 4 * time.Second}, {"resume", 2 * time.Second}, {"hangup", 0}} {
		if r, err := caller.command(step.cmd, ""); err != nil || !r.OK {
			t.Fatalf("%s: %+v %v\n%s", step.cmd, r, err, caller.log())
		}
		time.Sleep(step.wait)
	}
	if _, ok := callee.waitEvent(5*time.Second, isEvent("CALL_CLOSED")); !ok {
		t.Errorf("202 never saw the call end")
	}
	caller.stop()
	callee.stop()

	a := callee.heard(t)
	start, end := audibleSpan(a)
	if start < 0 || end-start < 6*a.Rate {
		t.Fatalf("202 heard %.2f s of audio, want about 7.5 s", float64(end-start)/float64(a.Rate))
	}
	// Half a second from each phase: before the hold, on hold, resumed.
	half := a.Rate / 2
	for _, c := range []struct {
		what string
		at   int
		want float64
	}{
		{"before the hold", start + a.Rate/2, callerTone},
		{"on hold", start + 3*a.Rate, musicTone},
		{"after the resume", end - a.Rate, callerTone},
	} {
		if got := strongestIn(a, c.at, half); math.Abs(got-c.want) > toleranceHz {
			t.Errorf("%s 202 heard %.0f Hz, want %.0f Hz", c.what, got, c.want)
		}
	}
	if t.Failed() {
		t.Logf("caller log:\n%s\nPBX log:\n%s", caller.log(), pbx.Log())
	}
}
