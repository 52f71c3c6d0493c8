package test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"testing"
	"time"
)

// TestFloodKeepsPhonesWorking: while SIPp floods wrong passwords at
// several thousand requests a second from two attacker addresses, a
// legitimate phone keeps registering and another keeps calling through
// the PBX from their own addresses: at least 99.9% of their attempts
// succeed, and both attacker addresses end up banned.
func TestFloodKeepsPhonesWorking(t *testing.T) {
	requireTool(t, "sipp")
	p := startPBX(t)
	pw201, pw202, pw203 := p.AddExt(t, "201"), p.AddExt(t, "202"), p.AddExt(t, "203")
	uasPort := freePort(t, calleeIP)
	registerSIPp(t, p, "202", pw202, calleeIP, uasPort, 3600)

	attackers := []string{"127.0.1.1", "127.0.1.2"}
	var floods []*sippProc
	for _, ip := range attackers {
		port := freePort(t, ip)
		floods = append(floods, startSIPp(t, sippSpec{
			Name: "flood-" + ip, Scenario: "register_bad.xml", Target: p.SIPAddr(), IP: ip, Port: port,
			Calls: 30000, Rate: 2000, Quiet: true, RecvTimeoutMS: 200, Limit: 3000,
			Rows: [][]string{{"201", "not-the-password"}},
			Keys: map[string]string{"contact": fmt.Sprintf("%s:%d", ip, port)},
		}))
	}
	time.Sleep(time.Second) // the flood is on before the phones start

	callee := startSIPp(t, sippSpec{Name: "callee", Scenario: "uas_answer.xml", IP: calleeIP, Port: uasPort, Calls: 40})
	regPort := freePort(t, callerIP)
	phone := startSIPp(t, sippSpec{
		Name: "phone-201", Scenario: "register.xml", Target: p.SIPAddr(), IP: callerIP, Port: regPort,
		Calls: 300, Rate: 20, Rows: [][]string{{"201", pw201}},
		Keys: map[string]string{"contact": fmt.Sprintf("%s:%d", callerIP, regPort), "expires": "600"},
	})
	caller := startSIPp(t, sippSpec{
		Name: "caller-203", Scenario: "uac_call.xml", Target: p.SIPAddr(), IP: "127.0.0.4",
		Service: "202", Calls: 40, Rate: 3, PauseMS: 200, Rows: [][]string{{"203", pw203}},
	})
	pr, cr := phone.WaitAtMost(40*time.Second), caller.WaitAtMost(40*time.Second)
	callee.WaitAtMost(10 * time.Second)
	sent := 0
	for _, f := range floods {
		r := f.WaitAtMost(time.Second)
		sent += r.Successful + r.Failed
	}
	// The flood must really have run: 2 x 2000/s for the phones' ~15 s.
	if sent < 20000 {
		t.Errorf("the flood made only %d attempts", sent)
	}
	t.Logf("flood: %d attempts from %d addresses", sent, len(attackers))
	for _, r := range []struct {
		res   *sippResult
		total int
	}{{pr, 300}, {cr, 40}} {
		if r.res.Successful*1000 < r.total*999 {
			t.Errorf("%s: %d of %d succeeded during the flood, want >= 99.9%%\n%s", r.res.Name, r.res.Successful, r.total, r.res.summary())
		}
	}
	var bans []struct {
		Address string `json:"address"`
	}
	json.Unmarshal(p.run(t, "ban", "list", "--json"), &bans)
	banned := map[string]bool{}
	for _, b := range bans {
		banned[b.Address] = true
	}
	for _, ip := range attackers {
		if !banned[ip] {
			t.Errorf("attacker %s not banned; bans %+v", ip, bans)
		}
	}
	if banned[callerIP] || banned["127.0.0.4"] || banned[calleeIP] {
		t.Errorf("a legitimate phone was banned: %+v", bans)
	}
	p.Stop(t)
	if m := regexp.MustCompile(`guard_dropped=(\d+)`).FindStringSubmatch(p.Log()); m == nil {
		t.Error("no drop count in the server's last words")
	} else {
		t.Logf("the guard dropped %s packets", m[1])
	}
}
