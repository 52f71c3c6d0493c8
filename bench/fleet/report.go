package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// report is the whole benchmark's output.
type report struct {
	opts      options
	machine   [][2]string
	limit     syscall.Rlimit
	limitNote string
	runs      []result
}

func readFirst(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// machineInfo is what the figures depend on: the machine, its load
// before the run, and the versions under test.
func machineInfo(root string) [][2]string {
	var u syscall.Utsname
	syscall.Uname(&u)
	str := func(b [65]int8) string {
		var s []byte
		for _, c := range b {
			if c == 0 {
				break
			}
			s = append(s, byte(c))
		}
		return string(s)
	}
	model := "?"
	for _, l := range strings.Split(readFirst("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			model = strings.TrimSpace(v)
			break
		}
	}
	mem := "?"
	for _, l := range strings.Split(readFirst("/proc/meminfo"), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(l, "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	load := strings.Join(strings.Fields(readFirst("/proc/loadavg"))[:3], " ")
	rev := "no commit"
	if b, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		rev = strings.TrimSpace(string(b))
		if b, err := exec.Command("git", "-C", root, "status", "--porcelain").Output(); err == nil && len(b) > 0 {
			rev += " (uncommitted changes)"
		}
	}
	return [][2]string{
		{"date", time.Now().UTC().Format("2006-01-02 15:04:05 UTC")},
		{"host", fmt.Sprintf("%s %s %s", str(u.Sysname), str(u.Release), str(u.Machine))},
		{"CPU", fmt.Sprintf("%d x %s", runtime.NumCPU(), model)},
		{"memory", mem},
		{"load average (1, 5, 15 min) before", load},
		{"net.core.somaxconn", readFirst("/proc/sys/net/core/somaxconn")},
		{"ephemeral ports", strings.Join(strings.Fields(readFirst("/proc/sys/net/ipv4/ip_local_port_range")), "-")},
		{"sekisho", rev},
		{"Go", runtime.Version()},
	}
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond))
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }

func pct(cpu, wall time.Duration) string {
	if wall <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", 100*cpu.Seconds()/wall.Seconds())
}

func (rep *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	o := rep.opts
	p("# sekisho fleet benchmark: push to acknowledgement, centre memory per unit")
	p("")
	p("| | |")
	p("|---|---|")
	for _, kv := range rep.machine {
		p("| %s | %s |", kv[0], kv[1])
	}
	backend := "SQLite (in the centre's data directory)"
	if o.db != "" {
		backend = "PostgreSQL (-db)"
	}
	p("| centre database | %s |", backend)
	p("| RLIMIT_NOFILE (this process and the centre) | soft %d, hard %d: %s |", rep.limit.Cur, rep.limit.Max, rep.limitNote)
	p("")
	connect := "all at once (as after a centre restart)"
	if o.connectRate > 0 {
		connect = fmt.Sprintf("%d per second", o.connectRate)
	}
	tokens := "each made just before its join"
	if o.tokensFirst {
		tokens = "all made before the first join (-tokens-first)"
	}
	p("One real `sekisho centre serve` on 127.0.0.1; the units are goroutines of this process running the real")
	p("`fleet.Link` (`fleet.New`, `Run`, `Apply`: signature check, staleness check, ack) over an in-memory store,")
	p("each with its own TLS 1.3 HTTP/2 connection. Enrolment: the real `fleet.Join` over HTTP, %d at a time, tokens %s.", o.workers, tokens)
	p("The centre is restarted after enrolment; the units then connect %s, report their figures every %v,", connect, o.statusEvery)
	p("idle %v, and `sekisho centre push --block-international` is run once. Times are from the start of that command.", o.idle)
	p("")

	p("## Push to acknowledgement")
	p("")
	p("| units | push command ms | **applied in all units** ms | **acknowledged in the centre** (coverage: all) ms | coverage: 50 %% / 90 %% / 99 %% ms | per unit, sent by the centre (its log): p50 / p90 / p99 / max ms | per unit, applied: p50 / p90 / p99 / max ms | per unit, ack read by the centre (acks.at): p50 / p90 / p99 / max ms | one coverage call ms (p50 / max) | refused | CPU s, push to all acknowledged: centre / simulated units / machine busy %% |")
	p("|---:|---:|---:|---:|---|---|---|---|---|---:|---|")
	for _, r := range rep.runs {
		if r.seq == 0 {
			p("| %d | did not run: %s ||||||||||", r.units, oneLine(r.err))
			continue
		}
		p("| %d | %s | **%s** | **%s** | %s / %s / %s | %s / %s / %s / %s | %s / %s / %s / %s | %s / %s / %s / %s | %s / %s | %d | %.1f / %.1f / %.0f |", r.units, ms(r.pushCLI),
			ms(r.appliedAll), ms(r.coverageAll), ms(r.coverageAt[0]), ms(r.coverageAt[1]), ms(r.coverageAt[2]),
			ms(r.sentLat.p50), ms(r.sentLat.p90), ms(r.sentLat.p99), ms(r.sentLat.max),
			ms(r.unitLat.p50), ms(r.unitLat.p90), ms(r.unitLat.p99), ms(r.unitLat.max),
			ms(r.ackLat.p50), ms(r.ackLat.p90), ms(r.ackLat.p99), ms(r.ackLat.max),
			ms(r.coveragePoll.p50), ms(r.coveragePoll.max), r.refused, r.pushCPU.Seconds(), r.pushSelfCPU.Seconds(), r.pushMachine)
	}
	for _, r := range rep.runs {
		if r.seq != 0 && r.err != "" {
			p("")
			p("%d units: the push did not finish: %s.", r.units, oneLine(r.err))
		}
	}
	p("")

	p("## Memory")
	p("")
	p("| units | centre RSS idle MiB | centre RSS connected MiB | **centre memory per connected unit KiB** | centre VmHWM MiB | centre threads | centre open files: all / sockets / database | centre peak RSS / threads / files during push | simulated units: Go heap + stacks per unit KiB | this process RSS per unit KiB | goroutines here |")
	p("|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
	for _, r := range rep.runs {
		if r.connected.RSS == 0 {
			p("| %d | did not get that far |||||||||", r.units)
			continue
		}
		per := float64(r.connected.RSS-r.idle.RSS) / float64(r.units) / 1024
		p("| %d | %.1f | %.1f | **%.1f** | %.1f | %d | %d / %d / %d | %s | %.1f | %.1f | %d |", r.units, mib(r.idle.RSS), mib(r.connected.RSS), per,
			mib(r.connected.HWM), r.connected.Threads, r.connected.FDs, r.connected.Sockets, r.connected.DBFiles,
			peak(r.pushPeak), r.heapPerUnit/1024, r.selfRSSUnit/1024, r.goroutines)
	}
	p("")

	p("## Enrolment, connection and idle load")
	p("")
	p("| units | enrol s | enrolments /s | centre CPU s enrolling | centre open files after enrolling: all / sockets / database (peak all) | all links up s | all online in the centre s | centre CPU s connecting (peak files) | centre CPU %% idle, connected | simulated units CPU %% idle | links down after idle | streams opened (centre log) |")
	p("|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---:|---:|")
	for _, r := range rep.runs {
		if r.joinWall == 0 {
			continue
		}
		up, online, conn, idle, selfIdle := "-", "-", "-", "-", "-"
		if r.centreOnline > 0 {
			up, online = secs(r.linksUp), secs(r.centreOnline)
			conn = fmt.Sprintf("%.1f (%d)", r.connectCPU.Seconds(), r.connectFDMax)
		}
		if r.idleWall > 0 {
			idle, selfIdle = pct(r.idleCPU, r.idleWall), pct(r.idleSelfCPU, r.idleWall)
		}
		p("| %d | %s | %.0f | %.1f | %d / %d / %d (%d) | %s | %s | %s | %s | %s | %d | %d |", r.units, secs(r.joinWall), float64(r.units)/r.joinWall.Seconds(),
			r.joinCentreCP.Seconds(), r.joinCentre.FDs, r.joinCentre.Sockets, r.joinCentre.DBFiles, r.joinFDsMax, up, online, conn, idle, selfIdle, r.idleDropped, r.connectedLog)
	}
	p("")

	p("## The centre's log")
	p("")
	for _, r := range rep.runs {
		var plain []string
		for k, v := range r.logLines {
			if !slices.Contains(r.logSample, k) {
				plain = append(plain, fmt.Sprintf("%s: %d", k, v))
			}
		}
		slices.Sort(plain)
		p("- %d units: %s", r.units, strings.Join(plain, "; "))
		for i, k := range r.logSample {
			if i == 12 {
				p("  - ... and %d other kinds", len(r.logSample)-i)
				break
			}
			p("  - %d × `%s`", r.logLines[k], oneLine(k))
		}
		if r.err != "" {
			p("  - run failed: %s", oneLine(r.err))
		}
	}
	p("")
	p("Columns: *applied in all units* is the last simulated unit's `ApplyFleetBundle` returning (the unit side, in this")
	p("process). *Acknowledged in the centre* is the first `Store.Coverage` poll (every 50 ms, from this process) that")
	p("showed every unit applied: the acks committed to the centre's database. *acks.at* is the time the centre stamped on")
	p("each ack when it read it off the stream, before writing it: the gap between the two is the wait for the database.")
	p("*Centre memory per connected unit* is (VmRSS with every unit connected and idle − VmRSS of the freshly restarted")
	p("centre) ÷ units.")
	return b.String()
}

func peak(ps procStatus) string {
	if ps.RSS == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f / %d / %d", mib(ps.RSS), ps.Threads, ps.FDs)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
