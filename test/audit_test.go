package test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAuditCountsFlood: N failed registrations from K addresses leave
// per-source counts in the evidence log equal to N exactly, in a handful
// of records; the log verifies, an administrator's change is in it, and an
// export kept aside verifies the log too.
func TestAuditCountsFlood(t *testing.T) {
	requireTool(t, "sipp")
	const perSource = 400
	sources := []string{"127.0.3.1", "127.0.3.2", "127.0.3.3", "127.0.3.4"}
	// No bans and no rate limit: every attempt must reach authentication
	// and be counted.
	p := startPBX(t, "--ban-after", "1000000", "--source-rate", "100000", "--log-level", "info")
	p.AddExt(t, "201")
	var floods []*sippProc
	for _, ip := range sources {
		port := freePort(t, ip)
		floods = append(floods, startSIPp(t, sippSpec{
			Name: "bad-" + ip, Scenario: "register_bad.xml", Target: p.SIPAddr(), IP: ip, Port: port,
			Calls: perSource, Rate: 200, Quiet: true, Rows: [][]string{{"201", "not-the-password"}},
			Keys: map[string]string{"contact": fmt.Sprintf("%s:%d", ip, port)},
		}))
	}
	for _, f := range floods {
		if r := f.Wait(); !r.ok(perSource) {
			t.Fatalf("flood: %s", r.summary())
		}
	}
	p.run(t, "ext", "set", "201", "--class", "domestic")
	p.Stop(t) // flushes the open aggregates

	var recs []struct {
		Type, Source, Detail string
		Count                int64
	}
	if err := json.Unmarshal(runCLI(t, p, "audit", "list", "--limit", "0", "--json"), &recs); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	n, change := 0, false
	for _, r := range recs {
		switch r.Type {
		case "auth-failure":
			counts[r.Source] += r.Count
			n++
			if !strings.Contains(r.Detail, `"201"`) {
				t.Errorf("aggregate without the user name tried: %+v", r)
			}
		case "config-change":
			change = change || strings.Contains(r.Detail, "ext set 201 --class domestic")
		}
	}
	for _, ip := range sources {
		if counts[ip] != perSource {
			t.Errorf("%s: %d failures in the evidence log, want %d exactly", ip, counts[ip], perSource)
		}
	}
	if n > 2*len(sources) {
		t.Errorf("%d aggregate records for %d sources", n, len(sources))
	}
	if !change {
		t.Error("the administrator's change is not in the evidence log")
	}
	if out := runCLI(t, p, "audit", "verify"); !strings.HasPrefix(string(out), "ok:") {
		t.Fatalf("audit verify: %s", out)
	}
	if out := string(runCLI(t, p, "audit", "show", "1")); !strings.Contains(out, "record  1\n") || !strings.Contains(out, "hash    ") {
		t.Errorf("audit show 1: %s", out)
	}
	exp := filepath.Join(t.TempDir(), "export.json")
	runCLI(t, p, "audit", "export", "--out", exp)
	if out := runCLI(t, p, "audit", "verify", "--against", exp); !strings.HasPrefix(string(out), "ok:") {
		t.Fatalf("audit verify --against: %s", out)
	}
}

// runCLI runs the CLI on p's data directory even after p stopped.
func runCLI(t *testing.T, p *PBX, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(binPath, append(args, "--data", p.Data)...).CombinedOutput()
	if err != nil {
		t.Fatalf("sekisho %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestAuditSurvivesKill: the server is killed (SIGKILL) in the middle of
// a flood; after a restart the evidence log verifies and every record that
// had been acknowledged (here: administrators' bans, committed before the
// command returned) is in it.
func TestAuditSurvivesKill(t *testing.T) {
	requireTool(t, "sipp")
	p := startPBX(t, "--ban-after", "1000000", "--source-rate", "100000", "--audit-checkpoint", "1s", "--log-level", "info")
	p.AddExt(t, "201")
	ip := "127.0.3.9"
	port := freePort(t, ip)
	startSIPp(t, sippSpec{
		Name: "flood", Scenario: "register_bad.xml", Target: p.SIPAddr(), IP: ip, Port: port,
		Calls: 20000, Rate: 1000, Quiet: true, RecvTimeoutMS: 200, Rows: [][]string{{"201", "wrong"}},
		Keys: map[string]string{"contact": fmt.Sprintf("%s:%d", ip, port)},
	})
	var acked []string
	for i := range 5 {
		addr := fmt.Sprintf("203.0.113.%d", 20+i)
		p.run(t, "ban", "add", addr)
		acked = append(acked, addr)
		time.Sleep(400 * time.Millisecond)
	}
	p.cmd.Process.Kill()
	<-p.done

	p = startPBXIn(t, p.Data, "--log-level", "info")
	if out := runCLI(t, p, "audit", "verify"); !strings.HasPrefix(string(out), "ok:") {
		t.Fatalf("after SIGKILL: %s", out)
	}
	out := string(runCLI(t, p, "audit", "list", "--type", "ban", "--limit", "0", "--json"))
	for _, a := range acked {
		if !strings.Contains(out, a) {
			t.Errorf("acknowledged ban of %s missing after SIGKILL", a)
		}
	}
}

// TestBreakInReplay is the done-when of the evidence log: a 30,000-attempt
// password guessing run from three addresses, with the PBX's defaults,
// leaves an account that verifies and says, per address, how many
// guesses reached the PBX, when it was banned, and how many packets it
// kept sending after: the 30,000 attempts accounted for.
func TestBreakInReplay(t *testing.T) {
	requireTool(t, "sipp")
	const perSource = 10000
	attackers := []string{"127.0.4.1", "127.0.4.2", "127.0.4.3"}
	p := startPBX(t, "--log-level", "info")
	p.AddExt(t, "201")
	var runs []*sippProc
	for _, ip := range attackers {
		port := freePort(t, ip)
		runs = append(runs, startSIPp(t, sippSpec{
			Name: "guess-" + ip, Scenario: "register_bad.xml", Target: p.SIPAddr(), IP: ip, Port: port,
			Calls: perSource, Rate: 2000, Quiet: true, RecvTimeoutMS: 300, Limit: 2000,
			Rows: [][]string{{"201", "guess"}}, Keys: map[string]string{"contact": fmt.Sprintf("%s:%d", ip, port)},
		}))
	}
	sent := map[string]int{}
	for i, r := range runs {
		res := r.Wait()
		sent[attackers[i]] = res.Successful + res.Failed
	}
	p.Stop(t)
	if out := runCLI(t, p, "audit", "verify"); !strings.HasPrefix(string(out), "ok:") {
		t.Fatalf("audit verify: %s", out)
	}
	var recs []struct {
		Type, Source, Target string
		Count                int64
	}
	json.Unmarshal(runCLI(t, p, "audit", "list", "--limit", "0", "--json"), &recs)
	failures, dropped, banned := map[string]int64{}, map[string]int64{}, map[string]bool{}
	for _, r := range recs {
		switch r.Type {
		case "auth-failure":
			failures[r.Source] += r.Count
		case "dropped":
			dropped[r.Source] += r.Count
		case "ban":
			banned[r.Source] = true
		}
	}
	for _, ip := range attackers {
		if sent[ip] != perSource {
			t.Fatalf("%s sent %d attempts, want %d", ip, sent[ip], perSource)
		}
		// Each guess before the ban was two REGISTERs (challenged, then
		// wrong); every one after it was one REGISTER, dropped unread.
		accounted := failures[ip] + dropped[ip]
		t.Logf("%s: %d wrong passwords, banned=%v, %d packets dropped", ip, failures[ip], banned[ip], dropped[ip])
		// The ban comes at the 10th failure. Guesses already read by then
		// are still answered and counted (dozens when the server is slow,
		// under the race detector); a guess whose first half was answered
		// before the ban has its second half dropped; and on a loaded box
		// the kernel may lose or SIPp retransmit a few packets. So: banned
		// within the first 1%, and the count within 2% of what was sent.
		if failures[ip] < 10 || failures[ip] > perSource/100 || !banned[ip] ||
			accounted < perSource*98/100 || accounted > perSource*102/100 {
			t.Errorf("%s: %d failures + %d dropped = %d, want 10 to %d failures and %d within 2%% (banned %v)",
				ip, failures[ip], dropped[ip], accounted, perSource/100, perSource, banned[ip])
		}
	}
}
