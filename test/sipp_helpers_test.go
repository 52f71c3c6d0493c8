package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sippScenarioDir holds the SIPp scenarios the tests drive.
const sippScenarioDir = "testdata/sipp"

// SIPp bounds: a scenario that hangs is stopped by SIPp itself after
// sippGlobalTimeout (and then counts as failed); the process is killed if it
// outlives sippKillAfter.
const (
	sippGlobalTimeout = 30 * time.Second
	sippRecvTimeout   = 10 * time.Second
	sippKillAfter     = 45 * time.Second
)

// Loopback addresses that play different hosts: the PBX listens on
// 127.0.0.1, callees answer on calleeIP and callers dial from callerIP.
const (
	calleeIP = "127.0.0.2"
	callerIP = "127.0.0.3"
)

// sippSpec describes one SIPp process.
type sippSpec struct {
	Name     string            // label used in logs and failure messages
	Scenario string            // file name under testdata/sipp
	Target   string            // host:port to send to; empty for a UAS
	IP       string            // local address (-i)
	Port     int               // local SIP port (-p); 0 picks a free one
	Service  string            // -s: the dialled or answering extension
	Calls    int               // -m: calls to run before exiting; 0 means 1
	Rows     [][]string        // injection rows (-inf), fields [field0]...
	Keys     map[string]string // -key NAME VALUE
	Sets     map[string]string // -set NAME VALUE (global scenario variables)
	PauseMS  int               // -d: length of <pause/> in milliseconds
	Rate     int               // -r: new calls per second; 0 keeps SIPp's default
	// For a flood: no per-message traces (they would cost more than the
	// flood), a short receive timeout, and a cap on calls open at once.
	Quiet         bool
	RecvTimeoutMS int // 0: sippRecvTimeout
	Limit         int // -l; 0: SIPp's default
}

// sippProc is a running SIPp process.
type sippProc struct {
	spec   sippSpec
	dir    string // working directory holding SIPp's trace files
	cmd    *exec.Cmd
	cancel context.CancelFunc
	stderr bytes.Buffer
	done   chan struct{}
	err    error
	// stopped is set when the test had to interrupt SIPp; its exit status
	// then says nothing about the calls.
	stopped bool
}

// sippResult is what a finished SIPp run left behind.
type sippResult struct {
	Name       string
	Args       []string
	ExitCode   int
	Stopped    bool  // the test interrupted SIPp before it finished
	Err        error // non-nil if SIPp could not run or was killed
	Successful int   // SuccessfulCall(C) from the statistics file
	Failed     int   // FailedCall(C) from the statistics file
	Stats      map[string]string
	Stderr     string
	Errors     string // -trace_err: unexpected messages and aborted calls
	Messages   string // -trace_msg: every message sent and received
	Logs       string // -trace_logs: <log> actions
	Screen     string // -trace_screen: the final statistics screen
}

// startSIPp starts SIPp as described by s and returns at once. A UAS (no
// Target) is waited for until it has bound its port.
func startSIPp(t *testing.T, s sippSpec) *sippProc {
	t.Helper()
	sippPath := requireTool(t, "sipp")
	if s.IP == "" {
		s.IP = "127.0.0.1"
	}
	if s.Port == 0 {
		s.Port = freePort(t, s.IP)
	}
	if s.Calls == 0 {
		s.Calls = 1
	}
	scenario, err := filepath.Abs(filepath.Join(sippScenarioDir, s.Scenario))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(t.TempDir(), "sipp-"+s.Name+"-")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	if s.Target != "" {
		args = append(args, s.Target)
	}
	args = append(args,
		"-sf", scenario,
		"-i", s.IP, "-p", strconv.Itoa(s.Port),
		"-mp", strconv.Itoa(freePorts(t, s.IP, 4)),
		"-m", strconv.Itoa(s.Calls),
		"-nostdin",
		"-buff_size", "4194304",
		"-timeout", fmt.Sprintf("%ds", int(sippGlobalTimeout.Seconds())),
		"-timeout_error",
		"-trace_screen", "-screen_file", filepath.Join(dir, "screen.log"),
		"-trace_stat", "-stf", filepath.Join(dir, "stats.csv"),
	)
	recv := sippRecvTimeout.Milliseconds()
	if s.RecvTimeoutMS > 0 {
		recv = int64(s.RecvTimeoutMS)
	}
	args = append(args, "-recv_timeout", strconv.FormatInt(recv, 10))
	if !s.Quiet {
		args = append(args,
			"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
			"-trace_msg", "-message_file", filepath.Join(dir, "messages.log"),
			"-trace_logs", "-log_file", filepath.Join(dir, "actions.log"))
	}
	if s.Limit > 0 {
		args = append(args, "-l", strconv.Itoa(s.Limit))
	}
	if s.Service != "" {
		args = append(args, "-s", s.Service)
	}
	if s.PauseMS > 0 {
		args = append(args, "-d", strconv.Itoa(s.PauseMS))
	}
	if s.Rate > 0 {
		args = append(args, "-r", strconv.Itoa(s.Rate))
	}
	if len(s.Rows) > 0 {
		args = append(args, "-inf", writeInjection(t, dir, s.Rows))
	}
	for _, k := range sortedKeys(s.Keys) {
		args = append(args, "-key", k, s.Keys[k])
	}
	for _, k := range sortedKeys(s.Sets) {
		args = append(args, "-set", k, s.Sets[k])
	}

	ctx, cancel := context.WithTimeout(context.Background(), sippKillAfter)
	p := &sippProc{spec: s, dir: dir, cancel: cancel, done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, sippPath, args...)
	p.cmd.Dir = dir
	// Stdout only repeats the statistics screen, which -trace_screen keeps.
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start sipp %s: %v", s.Name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	if s.Target == "" {
		p.waitBound(t)
	}
	return p
}

// waitBound waits until the SIPp UAS owns its UDP port, so that nothing is
// sent to it before it listens.
func (p *sippProc) waitBound(t *testing.T) {
	t.Helper()
	addr := net.JoinHostPort(p.spec.IP, strconv.Itoa(p.spec.Port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return // taken: SIPp is listening
		}
		c.Close()
		select {
		case <-p.done:
			t.Fatalf("sipp %s exited before listening on %s\n%s", p.spec.Name, addr, p.result().report())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sipp %s never listened on %s", p.spec.Name, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Wait waits for SIPp to exit and collects what it left behind.
func (p *sippProc) Wait() *sippResult {
	<-p.done
	p.cancel()
	return p.result()
}

// WaitAtMost is Wait for a process that may be stuck waiting for a message
// that will never come: after d it is interrupted, then killed.
func (p *sippProc) WaitAtMost(d time.Duration) *sippResult {
	select {
	case <-p.done:
	case <-time.After(d):
		p.stopped = true
		p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			p.cancel()
		}
	}
	return p.Wait()
}

// result reads the trace files; call it only once the process has exited.
func (p *sippProc) result() *sippResult {
	r := &sippResult{
		Name:     p.spec.Name,
		Args:     p.cmd.Args,
		ExitCode: -1,
		Stopped:  p.stopped,
		Stderr:   p.stderr.String(),
		Errors:   readOptional(filepath.Join(p.dir, "errors.log")),
		Messages: readOptional(filepath.Join(p.dir, "messages.log")),
		Logs:     readOptional(filepath.Join(p.dir, "actions.log")),
		Screen:   readOptional(filepath.Join(p.dir, "screen.log")),
	}
	var exitErr *exec.ExitError
	switch {
	case p.err == nil:
		r.ExitCode = 0
	case errors.As(p.err, &exitErr) && exitErr.Exited():
		r.ExitCode = exitErr.ExitCode()
	default:
		r.Err = p.err
	}
	r.Stats = lastStats(filepath.Join(p.dir, "stats.csv"))
	r.Successful, _ = strconv.Atoi(r.Stats["SuccessfulCall(C)"])
	r.Failed, _ = strconv.Atoi(r.Stats["FailedCall(C)"])
	return r
}

// runSIPp runs SIPp to completion.
func runSIPp(t *testing.T, s sippSpec) *sippResult {
	t.Helper()
	return startSIPp(t, s).Wait()
}

// requireSuccess fails the test unless SIPp exited 0 after completing
// exactly calls successful calls.
func (r *sippResult) requireSuccess(t *testing.T, calls int) {
	t.Helper()
	if !r.ok(calls) {
		t.Fatalf("want %d successful calls and exit 0; got %s\n%s", calls, r.summary(), r.report())
	}
}

// ok reports whether SIPp finished on its own, exited 0 and completed
// exactly calls successful calls.
func (r *sippResult) ok(calls int) bool {
	return r.Err == nil && !r.Stopped && r.ExitCode == 0 && r.Successful == calls && r.Failed == 0
}

// summary is one line: exit status and call counts.
func (r *sippResult) summary() string {
	s := fmt.Sprintf("sipp %s: exit %d (%s), %d successful, %d failed calls",
		r.Name, r.ExitCode, sippExitMeaning(r.ExitCode), r.Successful, r.Failed)
	if r.Stopped {
		s += ", interrupted by the test because it did not finish"
	}
	if r.Err != nil {
		s += fmt.Sprintf(", %v", r.Err)
	}
	return s
}

// report is everything useful for a failure message.
func (r *sippResult) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s\n", r.summary())
	fmt.Fprintf(&b, "command: %s\n", strings.Join(r.Args, " "))
	var counters []string
	for _, k := range sortedKeys(r.Stats) {
		if strings.HasPrefix(k, "Failed") && strings.HasSuffix(k, "(C)") && r.Stats[k] != "0" {
			counters = append(counters, k+"="+r.Stats[k])
		}
	}
	if len(counters) > 0 {
		fmt.Fprintf(&b, "failure counters: %s\n", strings.Join(counters, " "))
	}
	section := func(name, text string, limit int) {
		text = strings.TrimSpace(text)
		if text == "" {
			return
		}
		if len(text) > limit {
			text = "[...]\n" + text[len(text)-limit:]
		}
		fmt.Fprintf(&b, "--- %s:\n%s\n", name, text)
	}
	section("stderr", r.Stderr, 4000)
	section("errors", r.Errors, 6000)
	section("log actions", r.Logs, 2000)
	section("message flow", r.flow(), 4000)
	section("messages", r.Messages, 12000)
	return b.String()
}

// sippExitMeaning explains SIPp's exit status.
func sippExitMeaning(code int) string {
	switch code {
	case 0:
		return "all calls succeeded"
	case 1:
		return "at least one call failed"
	case 97:
		return "exit on internal command"
	case 99:
		return "normal exit without calls processed"
	case 254:
		return "fatal error binding a socket"
	case 255:
		return "fatal error"
	case -1:
		return "did not exit normally"
	}
	return "unknown"
}

// sippMessage is one message from SIPp's -trace_msg file.
type sippMessage struct {
	Received bool
	First    string // request or status line
	Text     string
}

// messages parses the -trace_msg file.
func (r *sippResult) messages() []sippMessage {
	var out []sippMessage
	for _, block := range strings.Split(r.Messages, "\n----------------------------------------------- ") {
		lines := strings.Split(strings.TrimLeft(block, "-"), "\n")
		if len(lines) < 2 {
			continue
		}
		// lines[0] is the timestamp, lines[1] says sent or received.
		dir := lines[1]
		if !strings.Contains(dir, "message received") && !strings.Contains(dir, "message sent") {
			continue
		}
		m := sippMessage{Received: strings.Contains(dir, "received")}
		var body []string
		for _, l := range lines[2:] {
			l = strings.TrimRight(l, "\r")
			if m.First == "" {
				if l == "" {
					continue
				}
				m.First = l
			}
			body = append(body, l)
		}
		m.Text = strings.Join(body, "\n")
		out = append(out, m)
	}
	return out
}

// flow is the message sequence, one line each: "<- INVITE sip:..." for a
// received message, "-> SIP/2.0 200 OK" for a sent one.
func (r *sippResult) flow() string {
	var b strings.Builder
	for _, m := range r.messages() {
		arrow := "->"
		if m.Received {
			arrow = "<-"
		}
		fmt.Fprintf(&b, "%s %s\n", arrow, m.First)
	}
	return b.String()
}

// received returns the received messages whose first line starts with prefix
// ("SIP/2.0 200", "CANCEL ").
func (r *sippResult) received(prefix string) []sippMessage {
	var out []sippMessage
	for _, m := range r.messages() {
		if m.Received && strings.HasPrefix(m.First, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// header returns the value of the first header called name in a message.
func (m sippMessage) header(name string) string {
	for _, l := range strings.Split(m.Text, "\n")[1:] {
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// writeInjection writes a SEQUENTIAL SIPp injection file and returns its path.
func writeInjection(t *testing.T, dir string, rows [][]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("SEQUENTIAL\n")
	for _, row := range rows {
		b.WriteString(strings.Join(row, ";") + ";\n")
	}
	path := filepath.Join(dir, "inject.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// lastStats returns the last row of a -trace_stat file keyed by column.
func lastStats(path string) map[string]string {
	var rows [][]string
	for _, l := range strings.Split(readOptional(path), "\n") {
		if strings.TrimSpace(l) != "" {
			rows = append(rows, strings.Split(l, ";"))
		}
	}
	stats := map[string]string{}
	if len(rows) < 2 {
		return stats
	}
	for i, k := range rows[0] {
		if i < len(rows[len(rows)-1]) {
			stats[k] = rows[len(rows)-1][i]
		}
	}
	return stats
}

// readOptional returns a file's contents, or "" if SIPp did not write it.
func readOptional(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// sortedKeys returns m's keys in order, so that command lines are stable.
func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

// registerSIPp registers ext with password pw so that calls to it reach
// contactIP:contactPort, sending the REGISTER from another port of contactIP.
// expires 0 removes the binding instead.
func registerSIPp(t *testing.T, p *PBX, ext, pw, contactIP string, contactPort, expires int) *sippResult {
	t.Helper()
	r := runSIPp(t, sippSpec{
		Name:     "register-" + ext,
		Scenario: "register.xml",
		Target:   p.SIPAddr(),
		IP:       contactIP,
		Rows:     [][]string{{ext, pw}},
		Keys: map[string]string{
			"contact": net.JoinHostPort(contactIP, strconv.Itoa(contactPort)),
			"expires": strconv.Itoa(expires),
		},
	})
	r.requireSuccess(t, 1)
	return r
}

// allCallsDone reports whether the records hold at least n calls, all done.
func allCallsDone(n int) func([]CDR) bool {
	return func(rs []CDR) bool {
		if len(rs) < n {
			return false
		}
		for _, r := range rs {
			if r.State != "done" {
				return false
			}
		}
		return true
	}
}

// cdrWant is what one call record must say; every record must also be done
// and have ended.
type cdrWant struct {
	Caller, Dialled string
	Callee          oneOf
	ResultCode      int
	Answered        bool
	HangupBy        oneOf
	MinDurationMS   int64
}

// oneOf lists the acceptable values of a field where the contract allows
// more than one; nil accepts anything.
type oneOf []string

func (o oneOf) allows(v string) bool {
	return o == nil || slices.Contains(o, v)
}

// checkCDR reports every way r differs from w.
func checkCDR(t *testing.T, r CDR, w cdrWant) {
	t.Helper()
	var errs []string
	diff := func(field, got, want string) {
		if got != want {
			errs = append(errs, fmt.Sprintf("%s = %q, want %q", field, got, want))
		}
	}
	diff("caller", r.Caller, w.Caller)
	diff("dialled", r.Dialled, w.Dialled)
	diff("state", r.State, "done")
	if r.ResultCode != w.ResultCode {
		errs = append(errs, fmt.Sprintf("result_code = %d, want %d", r.ResultCode, w.ResultCode))
	}
	if w.Answered && r.Answered == "" {
		errs = append(errs, "answered is empty for an answered call")
	}
	if !w.Answered && r.Answered != "" {
		errs = append(errs, fmt.Sprintf("answered = %q for a call that was never answered", r.Answered))
	}
	if r.Ended == "" {
		errs = append(errs, "ended is empty")
	}
	if !w.Callee.allows(r.Callee) {
		errs = append(errs, fmt.Sprintf("callee = %q, want one of %q", r.Callee, w.Callee))
	}
	if !w.HangupBy.allows(r.HangupBy) {
		errs = append(errs, fmt.Sprintf("hangup_by = %q, want one of %q", r.HangupBy, w.HangupBy))
	}
	if r.DurationMS < w.MinDurationMS {
		errs = append(errs, fmt.Sprintf("duration_ms = %d, want at least %d", r.DurationMS, w.MinDurationMS))
	}
	if len(errs) > 0 {
		t.Errorf("call record %+v:\n  %s", r, strings.Join(errs, "\n  "))
	}
}
