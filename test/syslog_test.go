package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const syslogIP = "127.0.0.20"

// rsyslog is a real rsyslogd on loopback writing every message it gets,
// with the input it came on, to one file.
type rsyslog struct {
	dir, out string
	cmd      *exec.Cmd
	cancel   context.CancelFunc
}

func startRsyslog(t *testing.T, udp, tcp int) *rsyslog {
	t.Helper()
	bin := requireTool(t, "rsyslogd")
	r := &rsyslog{dir: t.TempDir()}
	r.out = filepath.Join(r.dir, "received.log")
	conf := fmt.Sprintf(`global(workDirectory="%s")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="%s" port="%d")
input(type="imtcp" address="%s" port="%d")
template(name="raw" type="string" string="%%inputname%% %%rawmsg%%\n")
*.* action(type="omfile" file="%s" template="raw")
`, r.dir, syslogIP, udp, syslogIP, tcp, r.out)
	cf := filepath.Join(r.dir, "rsyslog.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.cmd = exec.CommandContext(ctx, bin, "-n", "-f", cf, "-i", filepath.Join(r.dir, "pid"))
	r.cmd.Stdout, r.cmd.Stderr = os.Stderr, os.Stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	t.Cleanup(func() { r.cancel(); r.cmd.Wait() })
	return r
}

// wait polls the received file until every want string is in it.
func (r *rsyslog) wait(t *testing.T, within time.Duration, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, _ := os.ReadFile(r.out)
		missing := ""
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslog never received %q; it has:\n%s", missing, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSyslogExport: the evidence log reaches a real rsyslog over TCP and
// UDP as RFC 5424 messages, checkpoints included. A collector that is down
// costs nothing: the backlog goes out when it comes up, and the outage
// itself is in the evidence log.
func TestSyslogExport(t *testing.T) {
	requireTool(t, "rsyslogd")
	udp, tcp := freePort(t, syslogIP), freePort(t, syslogIP)
	p := startPBX(t, "--syslog", fmt.Sprintf("udp://%s:%d,tcp://%s:%d", syslogIP, udp, syslogIP, tcp), "--audit-checkpoint", "1s")
	// Collector down: a ban is recorded, the TCP export fails and waits.
	p.run(t, "ban", "add", "203.0.113.7", "--reason", "before the collector was up")
	time.Sleep(2 * time.Second)
	r := startRsyslog(t, udp, tcp)
	r.wait(t, 40*time.Second,
		`imtcp <108>1 `, `sekisho - ban [sekisho@32473 seq="1"`, `target="ban add"`, "203.0.113.7",
		`sekisho - export-failure`, "collector unreachable", "backlog delivered",
		`checkpoint [sekisho-checkpoint@32473 size=`)
	// With the collector up, a new record reaches it over UDP as well.
	p.run(t, "ban", "add", "203.0.113.8", "--reason", "while the collector was up")
	got := r.wait(t, 15*time.Second, "imudp <108>1 ", "203.0.113.8")
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		if !strings.Contains(line, " sekisho - ") {
			t.Errorf("not an RFC 5424 message from sekisho: %q", line)
		}
	}
	var recs []struct{ Type, Target, Detail string }
	if err := json.Unmarshal(runCLI(t, p, "audit", "list", "--type", "export-failure", "--json"), &recs); err != nil || len(recs) < 2 {
		t.Fatalf("the outage is not in the evidence log: %+v %v", recs, err)
	}
}
