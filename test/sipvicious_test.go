package test

// SIPVicious 0.3.3 (svmap, svwar, svcrack) against sekisho: the tools every
// toll-fraud gang starts with. Each tool runs through testdata/svbind.py,
// which binds it to a source address of our choosing (svwar and svcrack
// ignore -b) and records every datagram it sends and receives, because the
// tools always exit 0 and their output alone cannot tell "the PBX gave
// nothing away" from "nothing was ever sent".

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// svTimeout bounds one run of a SIPVicious tool. svcrack alone needs ~20 s
// to give up once the PBX falls silent (10 s without answers, then a 10 s
// socket timeout).
const svTimeout = 60 * time.Second

// Source addresses of the attackers; nothing else in the suite uses them.
const (
	svmapIP   = "127.0.0.50"
	svcrackIP = "127.0.0.55"
)

// svDictionary is svcrack's password list: 30 wrong passwords, then 201's
// real one on line svRealLine.
const (
	svDictionary = "testdata/sipvicious/passwords.txt"
	svRealLine   = 31
)

// svPacket is one datagram from the svbind.py trace.
type svPacket struct {
	T     float64 `json:"t"`
	Dir   string  `json:"dir"` // "send" or "recv"
	Local string  `json:"local"`
	Peer  string  `json:"peer"`
	Data  string  `json:"data"`
}

// firstLine is the request or status line.
func (p svPacket) firstLine() string {
	l, _, _ := strings.Cut(p.Data, "\n")
	return strings.TrimRight(l, "\r")
}

// isResponse reports whether the datagram is a SIP response.
func (p svPacket) isResponse() bool { return strings.HasPrefix(p.Data, "SIP/2.0 ") }

// status is a response's code, 0 for anything else.
func (p svPacket) status() int {
	if !p.isResponse() {
		return 0
	}
	f := strings.Fields(p.firstLine())
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// method is a request's method, or the method in a response's CSeq.
func (p svPacket) method() string {
	if p.isResponse() {
		f := strings.Fields(p.header("CSeq"))
		if len(f) == 2 {
			return f[1]
		}
		return ""
	}
	m, _, _ := strings.Cut(p.firstLine(), " ")
	return m
}

// svCompact maps header names to their compact forms (RFC 3261 7.3.3).
var svCompact = map[string]string{
	"call-id": "i", "from": "f", "to": "t", "via": "v", "contact": "m",
	"content-length": "l", "content-type": "c",
}

// headers returns the header lines in order, as name and value.
func (p svPacket) headers() [][2]string {
	var out [][2]string
	lines := strings.Split(p.Data, "\n")
	for _, l := range lines[1:] {
		l = strings.TrimRight(l, "\r")
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		if ok {
			out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
		}
	}
	return out
}

// header returns the first value of the header called name (either form).
func (p svPacket) header(name string) string {
	short := svCompact[strings.ToLower(name)]
	for _, h := range p.headers() {
		if strings.EqualFold(h[0], name) || (short != "" && strings.EqualFold(h[0], short)) {
			return h[1]
		}
	}
	return ""
}

var (
	svURIUser = regexp.MustCompile(`sips?:([^@;>]+)@`)
	svTag     = regexp.MustCompile(`;\s*tag=([^;>\s]+)`)
)

// toUser is the user part of the To URI: the extension svwar asks about.
func (p svPacket) toUser() string {
	if m := svURIUser.FindStringSubmatch(p.header("To")); m != nil {
		return m[1]
	}
	return ""
}

// svcrackPassword recovers the password an svcrack attempt carried: svcrack
// puts hex("user:password" 0x01 random) in its From tag, and a response
// echoes the tag.
func (p svPacket) svcrackPassword() (string, bool) {
	m := svTag.FindStringSubmatch(p.header("From"))
	if m == nil {
		return "", false
	}
	b, err := hex.DecodeString(m[1])
	if err != nil {
		return "", false
	}
	s, _, ok := strings.Cut(string(b), "\x01")
	if !ok {
		return "", false
	}
	_, pw, ok := strings.Cut(s, ":")
	return pw, ok
}

// svResult is one finished run of a SIPVicious tool.
type svResult struct {
	Tool     string
	Source   string // the address the tool was bound to
	Args     []string
	Stdout   string
	Stderr   string
	Err      error
	TimedOut bool
	Took     time.Duration
	Trace    []svPacket
}

// sent and received filter the trace by direction.
func (r *svResult) sent() []svPacket     { return r.filter("send") }
func (r *svResult) received() []svPacket { return r.filter("recv") }

func (r *svResult) filter(dir string) []svPacket {
	var out []svPacket
	for _, p := range r.Trace {
		if p.Dir == dir {
			out = append(out, p)
		}
	}
	return out
}

// table returns the rows of the result table the tool prints on stdout
// (+---+ borders, "| a | b |" rows), without the header row.
func (r *svResult) table() [][]string {
	var rows [][]string
	for _, l := range strings.Split(r.Stdout, "\n") {
		l = strings.TrimSpace(l)
		if len(l) < 2 || !strings.HasPrefix(l, "|") || !strings.HasSuffix(l, "|") {
			continue
		}
		var cells []string
		for _, c := range strings.Split(l[1:len(l)-1], "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows = append(rows, cells)
	}
	if len(rows) > 0 {
		rows = rows[1:] // the header: "SIP Device | User Agent", "Extension | ..."
	}
	return rows
}

// output is everything the tool printed.
func (r *svResult) output() string { return r.Stdout + "\n" + r.Stderr }

// report is everything useful for a failure message.
func (r *svResult) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s from %s, %s: %s\n", r.Tool, r.Source, r.Took.Round(time.Millisecond), strings.Join(r.Args, " "))
	if r.Err != nil {
		fmt.Fprintf(&b, "exit: %v\n", r.Err)
	}
	if r.TimedOut {
		fmt.Fprintf(&b, "killed after %s\n", svTimeout)
	}
	tail := func(name, s string, limit int) {
		s = strings.TrimSpace(s)
		if s == "" {
			return
		}
		if len(s) > limit {
			s = "[...]\n" + s[len(s)-limit:]
		}
		fmt.Fprintf(&b, "--- %s:\n%s\n", name, s)
	}
	tail("stdout", r.Stdout, 4000)
	tail("stderr", r.Stderr, 4000)
	fmt.Fprintf(&b, "--- wire: %d datagrams sent, %d received\n", len(r.sent()), len(r.received()))
	for i, p := range r.Trace {
		if i == 80 {
			fmt.Fprintf(&b, "[... %d more]\n", len(r.Trace)-i)
			break
		}
		arrow := "->"
		if p.Dir == "recv" {
			arrow = "<-"
		}
		fmt.Fprintf(&b, "%s %s  (To %s, Call-ID %s)\n", arrow, p.firstLine(), p.header("To"), p.header("Call-ID"))
	}
	return b.String()
}

// svInterpreter is the Python the tool itself runs under (its #! line), so
// that the wrapper imports the same sipvicious modules.
func svInterpreter(t *testing.T, toolPath string) string {
	t.Helper()
	if f, err := os.Open(toolPath); err == nil {
		defer f.Close()
		line, _ := bufio.NewReader(f).ReadString('\n')
		if rest, ok := strings.CutPrefix(line, "#!"); ok {
			if fields := strings.Fields(rest); len(fields) > 0 && !strings.HasSuffix(fields[0], "/env") {
				if _, err := os.Stat(fields[0]); err == nil {
					return fields[0]
				}
			}
		}
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("no python3 to run %s: %v", toolPath, err)
	}
	return py
}

// runSV runs a SIPVicious tool bound to the source address src, with args
// as given on its command line, and waits for it (at most svTimeout).
func runSV(t *testing.T, tool, src string, args ...string) *svResult {
	t.Helper()
	toolPath := requireTool(t, tool)
	py := svInterpreter(t, toolPath)
	script, err := filepath.Abs("testdata/svbind.py")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(t.TempDir(), tool+"-")
	if err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(dir, "trace.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), svTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{script, src, tool}, args...)...)
	cmd.Dir = dir // svmap --randomize and friends write into the working directory
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "SVBIND_TRACE="+trace)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	r := &svResult{
		Tool: tool, Source: src, Args: cmd.Args, Err: err,
		TimedOut: errors.Is(ctx.Err(), context.DeadlineExceeded),
		Took:     time.Since(start),
		Stdout:   stdout.String(), Stderr: stderr.String(),
	}
	if b, err := os.ReadFile(trace); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(l) == "" {
				continue
			}
			var p svPacket
			if err := json.Unmarshal([]byte(l), &p); err != nil {
				t.Fatalf("svbind trace line %q: %v", l, err)
			}
			r.Trace = append(r.Trace, p)
		}
	}
	// Harness checks: the tool ran to its end, from the address we chose,
	// and sent something. The tools exit 0 even when they give up.
	if r.Err != nil || r.TimedOut {
		t.Fatalf("%s did not run to completion\n%s", tool, r.report())
	}
	if !strings.Contains(r.Stderr, "svbind: "+tool+" bound to "+src+":") {
		t.Fatalf("%s did not bind to %s\n%s", tool, src, r.report())
	}
	if len(r.sent()) == 0 {
		t.Fatalf("%s sent nothing\n%s", tool, r.report())
	}
	for _, p := range r.Trace {
		if !strings.HasPrefix(p.Local, src+":") {
			t.Fatalf("%s used local address %s, not %s\n%s", tool, p.Local, src, r.report())
		}
	}
	return r
}

// svBan mirrors one row of `sekisho ban list --json`.
type svBan struct {
	Address  string `json:"address"`
	Until    string `json:"until"`
	Reason   string `json:"reason"`
	Offences int    `json:"offences"`
}

// svBanList runs `sekisho ban list --json`; unlike p.run it does not stop
// the test, so that the checks after it still run.
func svBanList(p *PBX) ([]svBan, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binPath, "ban", "list", "--json", "--data", p.Data).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("sekisho ban list --json: %v\n%s", err, out)
	}
	var bans []svBan
	if err := json.Unmarshal(out, &bans); err != nil {
		return nil, fmt.Errorf("sekisho ban list --json: bad output %q: %v", out, err)
	}
	return bans, nil
}

// svWaitBan waits (a few seconds: bans are written by the server) until
// the ban list holds addr and returns its row; it fails the test without
// stopping it if addr is never listed.
func svWaitBan(t *testing.T, p *PBX, addr string) (svBan, bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		bans, err := svBanList(p)
		if err == nil {
			for _, b := range bans {
				if b.Address == addr {
					return b, true
				}
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Errorf("%s is not banned: %v", addr, err)
			} else {
				t.Errorf("%s is not banned; ban list --json: %+v", addr, bans)
			}
			return svBan{}, false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// svCheckBan checks a ban row: in force for about want (the first
// offence's --ban-time), for a reason that matches reason, and logged as
// msg="guard: banned" with source=ADDR.
func svCheckBan(t *testing.T, p *PBX, b svBan, want time.Duration, reason *regexp.Regexp) {
	t.Helper()
	until, err := time.Parse(time.RFC3339, b.Until)
	if err != nil {
		t.Errorf("ban of %s: until %q is not RFC 3339: %v", b.Address, b.Until, err)
	} else if left := time.Until(until); left < want-time.Minute || left > want+time.Minute {
		t.Errorf("ban of %s: until %s, %s from now; want about %s (a first offence)", b.Address, b.Until, left.Round(time.Second), want)
	}
	if b.Offences < 1 {
		t.Errorf("ban of %s: offences = %d, want at least 1", b.Address, b.Offences)
	}
	if !reason.MatchString(b.Reason) {
		t.Errorf("ban of %s: reason %q does not match %s", b.Address, b.Reason, reason)
	}
	source := regexp.MustCompile(`(^|\s)source=` + regexp.QuoteMeta(b.Address) + `(\s|$)`)
	for _, l := range strings.Split(p.Log(), "\n") {
		if strings.Contains(l, `msg="guard: banned"`) && source.MatchString(l) {
			return
		}
	}
	t.Errorf(`the server log has no msg="guard: banned" line with source=%s`, b.Address)
}

// TestSVMapBanned: svmap, the network sweep that finds PBXs to attack,
// finds nothing. Its first OPTIONS carries User-Agent friendly-scanner,
// which bans the source at once and gets no answer at all; the ban is
// listed by `sekisho ban list` with a reason that names the scanner, and a
// second sweep from the same address is met with silence too.
func TestSVMapBanned(t *testing.T) {
	requireTool(t, "svmap")
	p := startPBX(t)
	for _, round := range []string{"first", "second"} {
		r := runSV(t, "svmap", svmapIP,
			"-b", svmapIP, "-x", svmapIP, "-P", strconv.Itoa(freePort(t, svmapIP)),
			"-p", strconv.Itoa(p.Port), p.IP)
		sentOptions := false
		for _, s := range r.sent() {
			if s.method() == "OPTIONS" && s.Peer == p.SIPAddr() && strings.Contains(s.header("User-Agent"), "friendly-scanner") {
				sentOptions = true
			}
		}
		if !sentOptions {
			t.Fatalf("%s svmap: no OPTIONS with User-Agent friendly-scanner went to %s\n%s", round, p.SIPAddr(), r.report())
		}
		for _, row := range r.table() {
			if len(row) > 0 && strings.Contains(row[0], p.SIPAddr()) {
				t.Errorf("%s svmap found the PBX: %q", round, row)
			}
		}
		if got := r.received(); len(got) > 0 {
			t.Errorf("%s svmap: the PBX answered a scanner %d time(s), first with %q", round, len(got), got[0].firstLine())
		}
		if !strings.Contains(r.Stderr, "found nothing") {
			t.Errorf(`%s svmap did not say "found nothing"`, round)
		}
		if round == "first" {
			if b, ok := svWaitBan(t, p, svmapIP); ok {
				svCheckBan(t, p, b, 15*time.Minute, regexp.MustCompile(`(?i)scanner|user-agent|fingerprint`))
			}
		}
		if t.Failed() {
			t.Logf("%s svmap run:\n%s", round, r.report())
		}
	}
	// The second sweep found the source still banned.
	svWaitBan(t, p, svmapIP)
}

// TestSVWarFindsNothing: svwar, the extension enumerator, cannot tell the
// existing extensions 201 and 202 from the numbers around them. With the
// fingerprint ban off (so that the answers themselves are on trial) it
// scans 100-300 with REGISTER and with INVITE, each with and without
// --force, every run from its own address; none may list 201 or 202 (nor
// any other number). The PBX must really have answered: svwar's first
// probe (a random, unknown number) must get a final answer, a 401 or 407.
//
// svwar stops at the first number whose answer equals the probe's when
// that answer is a challenge, so against a PBX that challenges everyone
// alike a --force scan of 100-300 only ever asks about 100. So that 201
// and 202 themselves are asked, --force runs with -e 201 and -e 202 follow
// (from 127.0.0.56-59): each must get a final answer whose status line,
// header names and challenge (nonce and opaque aside) match the unknown
// probe's, and svwar must not list it.
func TestSVWarFindsNothing(t *testing.T) {
	requireTool(t, "svwar")
	p := startPBX(t, "--scanner-ban=false")
	p.AddExt(t, "201")
	p.AddExt(t, "202")
	runs := []struct {
		src, method, exts string
		force             bool
		mustAsk           []string // numbers that must get a final answer
	}{
		{"127.0.0.51", "REGISTER", "100-300", false, nil},
		{"127.0.0.52", "REGISTER", "100-300", true, nil},
		{"127.0.0.53", "INVITE", "100-300", false, nil},
		{"127.0.0.54", "INVITE", "100-300", true, nil},
		{"127.0.0.56", "REGISTER", "201", true, []string{"201"}},
		{"127.0.0.57", "REGISTER", "202", true, []string{"202"}},
		{"127.0.0.58", "INVITE", "201", true, []string{"201"}},
		{"127.0.0.59", "INVITE", "202", true, []string{"202"}},
	}
	for _, run := range runs {
		name := run.method + "-" + run.exts
		if run.force {
			name += "-force"
		}
		t.Run(name, func(t *testing.T) {
			args := []string{
				"-x", run.src, "-P", strconv.Itoa(freePort(t, run.src)),
				"-p", strconv.Itoa(p.Port),
				"-e", run.exts, "-m", run.method,
				// At most 25 numbers a second: under the per-source rate
				// limit, so that a missing answer means something.
				"-t", "0.04",
				"-v",
			}
			if run.force {
				args = append(args, "--force")
			}
			r := runSV(t, "svwar", run.src, append(args, p.IP)...)
			defer func() {
				if t.Failed() {
					t.Logf("svwar run:\n%s", r.report())
				}
			}()
			checkSVWar(t, r, run.method, run.force, run.mustAsk)
		})
	}
}

// checkSVWar checks one svwar run: nothing listed; the probe for an unknown
// number answered with a challenge; every number asked about answered like
// the probe; the numbers in mustAsk asked about and answered.
func checkSVWar(t *testing.T, r *svResult, method string, force bool, mustAsk []string) {
	t.Helper()
	for _, row := range r.table() {
		if len(row) == 0 {
			continue
		}
		switch row[0] {
		case "201", "202":
			t.Errorf("svwar found extension %s: %q", row[0], row)
		default:
			t.Errorf("svwar lists %s, which does not exist: the PBX answered two unknown numbers differently: %q", row[0], row)
		}
	}

	// Which number each Call-ID asked about, in the order sent.
	callUser := map[string]string{}
	var asked []string
	for _, s := range r.sent() {
		if s.method() != method {
			continue
		}
		u := s.toUser()
		callUser[s.header("Call-ID")] = u
		asked = append(asked, u)
	}
	if len(asked) == 0 {
		t.Fatalf("svwar sent no %s", method)
	}
	probe := asked[0]
	// The first final answer for each number.
	final := map[string]svPacket{}
	for _, a := range r.received() {
		if a.status() < 200 || a.method() != method {
			continue
		}
		u, ok := callUser[a.header("Call-ID")]
		if !ok {
			continue
		}
		if _, seen := final[u]; !seen {
			final[u] = a
		}
	}
	pa, ok := final[probe]
	if !ok {
		t.Fatalf("the PBX never answered svwar's first %s (for unknown number %s): svwar learned nothing, but neither does this test", method, probe)
	}
	stopped := strings.Contains(r.Stderr, "replied with an authentication request for an unknown extension")
	switch code := pa.status(); {
	case code != 401 && code != 407:
		t.Errorf("unknown number %s: %s answered %q, want 401 or 407 (an unknown user must be challenged like a known one)", probe, method, pa.firstLine())
	case !force && !stopped:
		t.Errorf("svwar went on scanning after a %d for an unknown number (harness: its message changed?)", code)
	case force && stopped:
		t.Errorf("svwar stopped at the first challenge despite --force (harness: --force not passed?)")
	}
	if stopped && len(asked) != 1 {
		t.Errorf("svwar said it stopped at the first challenge, yet asked about %d numbers", len(asked))
	}
	for _, u := range asked[1:] {
		if a, ok := final[u]; ok {
			if d := svDiff(a, pa); d != "" {
				t.Errorf("%s for %s is answered unlike %s for unknown %s: %s", method, u, method, probe, d)
			}
		}
	}
	for _, ext := range mustAsk {
		if _, ok := final[ext]; !ok {
			t.Errorf("the PBX never gave a final answer for %s (svwar asked about %q): silence here proves nothing", ext, asked)
		}
	}
	t.Logf("svwar asked about %d number(s) (%s first), %d got a final answer", len(asked), probe, len(final))
}

// svVolatile masks the parts of a challenge that differ on every answer.
var svVolatile = regexp.MustCompile(`(?i)\b(nonce|opaque)="[^"]*"`)

// svDiff describes how answer a differs from answer b (the one for an
// unknown number) in what could reveal whether a user exists: status line,
// header names in order, and the challenge with its nonce and opaque
// masked. "" means no difference; otherwise "a's vs b's".
func svDiff(a, b svPacket) string {
	if a.firstLine() != b.firstLine() {
		return fmt.Sprintf("status %q vs %q", a.firstLine(), b.firstLine())
	}
	names := func(p svPacket) string {
		var n []string
		for _, h := range p.headers() {
			n = append(n, strings.ToLower(h[0]))
		}
		return strings.Join(n, ",")
	}
	if na, nb := names(a), names(b); na != nb {
		return fmt.Sprintf("headers [%s] vs [%s]", na, nb)
	}
	for _, h := range []string{"WWW-Authenticate", "Proxy-Authenticate"} {
		var ca, cb []string
		for _, x := range a.headers() {
			if strings.EqualFold(x[0], h) {
				ca = append(ca, svVolatile.ReplaceAllString(x[1], `$1="*"`))
			}
		}
		for _, x := range b.headers() {
			if strings.EqualFold(x[0], h) {
				cb = append(cb, svVolatile.ReplaceAllString(x[1], `$1="*"`))
			}
		}
		if strings.Join(ca, "\n") != strings.Join(cb, "\n") {
			return fmt.Sprintf("%s %q vs %q", h, ca, cb)
		}
	}
	return ""
}

// TestSVCrackBanned: svcrack, the online password guesser, is stopped by
// the failure count, not by its fingerprint (that ban is off here). It
// tries 201 with testdata/sipvicious/passwords.txt, whose line 31 is 201's
// real password; with --ban-after 10 the source is banned after ten wrong
// passwords and meets silence, so svcrack never learns the password. The
// ban is listed with a reason about failed authentications, and 201 is
// not locked out: its phone, from another address, still registers.
func TestSVCrackBanned(t *testing.T) {
	requireTool(t, "svcrack")
	const banAfter = 10
	p := startPBX(t, "--scanner-ban=false", "--ban-after", strconv.Itoa(banAfter))
	p.AddExt(t, "201")

	dict, err := filepath.Abs(svDictionary)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dict)
	if err != nil {
		t.Fatal(err)
	}
	words := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(words) < svRealLine {
		t.Fatalf("%s has %d lines, want the real password on line %d", svDictionary, len(words), svRealLine)
	}
	realPW := strings.TrimSpace(words[svRealLine-1])
	for i, w := range words[:svRealLine-1] {
		if strings.TrimSpace(w) == realPW {
			t.Fatalf("%s: line %d already holds the real password", svDictionary, i+1)
		}
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(realPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.run(t, "ext", "passwd", "201", "--password-file", pwFile)
	p.secretsMu.Lock()
	p.secrets = append(p.secrets, realPW) // it must not reach the server log either
	p.secretsMu.Unlock()

	r := runSV(t, "svcrack", svcrackIP,
		"-x", svcrackIP, "-P", strconv.Itoa(freePort(t, svcrackIP)),
		"-p", strconv.Itoa(p.Port), "-u", "201", "-d", dict, "-v", p.IP)
	defer func() {
		if t.Failed() {
			t.Logf("svcrack run:\n%s", r.report())
		}
	}()

	// Harness: svcrack met a live PBX that challenged it.
	challenged := false
	for _, a := range r.received() {
		if s := a.status(); s == 401 || s == 407 {
			challenged = true
		}
	}
	if !challenged {
		t.Fatalf("the PBX never challenged svcrack")
	}

	// svcrack did not learn the password.
	if strings.Contains(r.output(), realPW) || strings.Contains(r.output(), "The password for") {
		t.Errorf("svcrack cracked 201's password")
	}
	for _, row := range r.table() {
		t.Errorf("svcrack reports %q", row)
	}
	for _, a := range r.received() {
		if s := a.status(); s >= 200 && s < 300 {
			pw, _ := a.svcrackPassword()
			t.Errorf("the PBX accepted svcrack: %q (for password %q)", a.firstLine(), pw)
		}
	}

	// It was stopped by the count: about --ban-after wrong passwords got an
	// answer, then nothing did.
	answered := map[string]bool{}
	for _, a := range r.received() {
		if pw, ok := a.svcrackPassword(); ok && a.status() >= 200 {
			answered[pw] = true
		}
	}
	tried := map[string]bool{}
	for _, s := range r.sent() {
		if s.header("Authorization") == "" && s.header("Proxy-Authorization") == "" {
			continue
		}
		if pw, ok := s.svcrackPassword(); ok {
			tried[pw] = true
		}
	}
	t.Logf("svcrack sent %d password(s), the PBX answered %d; real password sent: %v", len(tried), len(answered), tried[realPW])
	if len(answered) == 0 {
		t.Errorf("the PBX answered none of svcrack's passwords: the ban cannot have come from failed authentications")
	}
	// A little slack: attempts already in flight when the ban lands.
	if len(answered) > banAfter+2 {
		t.Errorf("the PBX answered %d passwords from one source; --ban-after %d should have silenced it after %d", len(answered), banAfter, banAfter)
	}
	if answered[realPW] {
		t.Errorf("the PBX answered svcrack's attempt with the real password")
	}

	if ban, ok := svWaitBan(t, p, svcrackIP); ok {
		svCheckBan(t, p, ban, 15*time.Minute, regexp.MustCompile(`(?i)auth|password|credential`))
		if regexp.MustCompile(`(?i)scanner|user-agent|fingerprint`).MatchString(ban.Reason) {
			t.Errorf("ban of %s: reason %q is the fingerprint, which --scanner-ban=false turned off", svcrackIP, ban.Reason)
		}
	}

	// 201 is not locked: its own phone registers from another address.
	registerSIPp(t, p, "201", realPW, callerIP, freePort(t, callerIP), 60)
}
