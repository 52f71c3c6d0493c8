package test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestBanSurvivesRestart: a source banned for wrong passwords is still
// dropped after the PBX restarts, while another address is answered; an
// administrator's unban lets it in again.
func TestBanSurvivesRestart(t *testing.T) {
	requireTool(t, "sipp")
	const attacker = "127.0.1.5"
	p := startPBX(t, "--ban-after", "5")
	p.AddExt(t, "201")
	bad := func(p *PBX, ip string, calls int) *sippResult {
		port := freePort(t, ip)
		return runSIPp(t, sippSpec{
			Name: "bad-" + ip, Scenario: "register_bad.xml", Target: p.SIPAddr(), IP: ip, Port: port,
			Calls: calls, RecvTimeoutMS: 1000, Rows: [][]string{{"201", "not-the-password"}},
			Keys: map[string]string{"contact": fmt.Sprintf("%s:%d", ip, port)},
		})
	}
	if r := bad(p, attacker, 5); !r.ok(5) {
		t.Fatalf("the first five wrong passwords were not answered:\n%s", r.summary())
	}
	if r := bad(p, attacker, 1); r.Successful != 0 {
		t.Fatalf("a banned source was answered:\n%s", r.summary())
	}
	p.Stop(t)

	p = startPBXIn(t, p.Data, "--ban-after", "5")
	if r := bad(p, attacker, 1); r.Successful != 0 {
		t.Fatalf("the ban did not survive a restart:\n%s", r.summary())
	}
	if r := bad(p, "127.0.1.6", 1); !r.ok(1) {
		t.Fatalf("another address was not answered:\n%s", r.summary())
	}
	var bans []struct {
		Address, Reason string
		Offences        int
	}
	json.Unmarshal(p.run(t, "ban", "list", "--json"), &bans)
	if len(bans) != 1 || bans[0].Address != attacker || bans[0].Offences != 1 {
		t.Fatalf("ban list: %+v", bans)
	}
	p.run(t, "ban", "del", attacker)
	waitFor(t, "the unban to reach the server", func() bool { return bad(p, attacker, 1).ok(1) })
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestNewSourceAlert: an extension's first address starts its history
// quietly; a registration from a second address it never used is an alert.
func TestNewSourceAlert(t *testing.T) {
	requireTool(t, "sipp")
	p := startPBX(t)
	pw := p.AddExt(t, "201")
	kinds := func() []string {
		var as []struct{ Kind, Subject string }
		json.Unmarshal(p.run(t, "alert", "list", "--json"), &as)
		var out []string
		for _, a := range as {
			out = append(out, a.Kind+" "+a.Subject)
		}
		return out
	}
	registerSIPp(t, p, "201", pw, callerIP, freePort(t, callerIP), 600)
	registerSIPp(t, p, "201", pw, callerIP, freePort(t, callerIP), 600) // same address, new port
	time.Sleep(500 * time.Millisecond)
	if got := kinds(); len(got) != 0 {
		t.Fatalf("alerts after registrations from one address: %v", got)
	}
	registerSIPp(t, p, "201", pw, "127.0.2.9", freePort(t, "127.0.2.9"), 600)
	waitFor(t, "the new-source alert", func() bool {
		got := kinds()
		return len(got) == 1 && got[0] == "new-source extension 201"
	})
}
