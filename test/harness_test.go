// Package test holds sekisho's end-to-end tests: the real binary, started
// on loopback, driven by real SIP peers (SIPp, baresip). A missing tool
// skips a test on a developer's machine and fails it under CI=true.
package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binPath is the sekisho binary built once for the whole package.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sekisho-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "sekisho")
	args := []string{"build", "-o", binPath}
	env := append(os.Environ(), "CGO_ENABLED=0")
	if raceEnabled {
		// The race detector needs cgo; the shipped binary does not.
		args = append(args, "-race")
		env = append(os.Environ(), "CGO_ENABLED=1")
	}
	build := exec.Command("go", append(args, "../cmd/sekisho")...)
	build.Env = env
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build sekisho:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireTool skips the test if a peer is missing, unless CI=true, where a
// missing peer is a broken CI set-up and must fail loudly.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	// Daemons (rsyslogd) live in /usr/sbin, outside a user's PATH.
	if p, err := exec.LookPath("/usr/sbin/" + name); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed: CI must install it (.ci/run)", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// freePort returns a port that is free for both UDP and TCP on ip. It is
// chosen between the PBX's media ports (10000-20000 by default) and the
// kernel's ephemeral range, so that neither a relayed call nor an outgoing
// connection (a peer's, a benchmark's) can take it between this check and
// the server's bind.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	return freePorts(t, ip, 1)
}

// handedOut holds every port freePorts has returned in this test binary:
// a port is free when checked and taken only later (by the process the
// test starts), so without this two tests running side by side could be
// handed the same one in between.
var handedOut sync.Map // int -> struct{}

// freePorts returns the first of n consecutive ports, each free for TCP
// and UDP on ip and never handed out before, clear of the kernel's
// ephemeral range and of the PBX's RTP range (10000-20000). SIPp's -mp
// takes four (RTP and RTCP, audio and video).
func freePorts(t *testing.T, ip string, n int) int {
	t.Helper()
	lo, hi := 20001, ephemeralLow()-n
	for range 500 {
		port := 0 // the kernel's choice, when no range is below the ephemeral one
		if hi-lo > 1000 {
			port = lo + rand.IntN(hi-lo)
		}
		ok := true
		var held []io.Closer
		for i := 0; i < n && ok; i++ {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port+i)))
			if err != nil {
				ok = false
				break
			}
			if port == 0 {
				port = l.Addr().(*net.TCPAddr).Port
			}
			held = append(held, l)
			u, err := net.ListenPacket("udp", net.JoinHostPort(ip, fmt.Sprint(port+i)))
			if err != nil {
				ok = false
				break
			}
			held = append(held, u)
			if _, taken := handedOut.LoadOrStore(port+i, struct{}{}); taken {
				ok = false
			}
		}
		for _, c := range held {
			c.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	var lo int
	if err != nil {
		return 32768
	}
	if _, err := fmt.Sscan(string(b), &lo); err != nil || lo <= 0 {
		return 32768
	}
	return lo
}

// PBX is a running sekisho under test.
type PBX struct {
	Data    string // data directory
	IP      string
	Port    int // SIP port, UDP and TCP
	TLSPort int // SIP over TLS port
	// ConsoleIP:ConsolePort is the console, on a loopback address of its
	// own so that a test can show it is not on the SIP address.
	ConsoleIP   string
	ConsolePort int
	cmd         *exec.Cmd
	logMu       sync.Mutex
	log         bytes.Buffer
	done        chan struct{}
	waitErr     error

	// VPNPort is the console VPN's UDP port on IP (0: no VPN; see withVPN).
	VPNPort int

	secretsMu sync.Mutex
	secrets   []string // every password the CLI printed; must never appear in the log
}

// SIPAddr is host:port of the PBX's SIP listener.
func (p *PBX) SIPAddr() string { return net.JoinHostPort(p.IP, fmt.Sprint(p.Port)) }

// ConsoleAddr is host:port of the console.
func (p *PBX) ConsoleAddr() string { return net.JoinHostPort(p.ConsoleIP, fmt.Sprint(p.ConsolePort)) }

// Log returns what the server has written to stderr so far.
func (p *PBX) Log() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// withVPN, among startPBX's extra flags, turns the console's VPN on, on a
// free UDP port of the PBX's loopback IP (PBX.VPNPort). Without it the
// VPN is off (--vpn-listen ""), so that tests open no UDP 51820.
const withVPN = "--vpn-listen=<free port>"

// startPBX starts sekisho on 127.0.0.1 with a fresh data directory and extra
// serve flags; it is stopped (SIGTERM) when the test ends.
func startPBX(t *testing.T, extra ...string) *PBX {
	t.Helper()
	return startPBXIn(t, t.TempDir(), extra...)
}

// startPBXIn starts sekisho on the data directory dir (one a stopped PBX
// used, to test what survives a restart).
func startPBXIn(t *testing.T, dir string, extra ...string) *PBX {
	t.Helper()
	p := &PBX{Data: dir, IP: "127.0.0.1", done: make(chan struct{})}
	p.Port = freePort(t, p.IP)
	addr := p.SIPAddr()
	p.TLSPort = freePort(t, p.IP)
	p.ConsoleIP = "127.0.0.9"
	p.ConsolePort = freePort(t, p.ConsoleIP)
	extra = append([]string(nil), extra...)
	for i, a := range extra {
		if a == withVPN {
			p.VPNPort = freePort(t, p.IP)
			extra[i] = "--vpn-listen=" + net.JoinHostPort(p.IP, fmt.Sprint(p.VPNPort))
		}
	}
	args := append([]string{"serve", "--data", p.Data, "--sip-udp", addr, "--sip-tcp", addr,
		"--sip-tls", net.JoinHostPort(p.IP, fmt.Sprint(p.TLSPort)),
		"--console", p.ConsoleAddr(), "--vpn-listen", "",
		"--grace", "2s", "--log-level", "debug"}, extra...)
	p.cmd = exec.Command(binPath, args...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start sekisho: %v", err)
	}
	pw.Close()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			p.logMu.Lock()
			p.log.WriteString(line + "\n")
			p.logMu.Unlock()
			if strings.Contains(line, "sekisho ready") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	select {
	case <-ready:
	case <-p.done:
		t.Fatalf("sekisho exited before ready: %v\n%s", p.waitErr, p.Log())
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("sekisho not ready in 20s\n%s", p.Log())
	}
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// Stop sends SIGTERM and waits for a clean exit.
func (p *PBX) Stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
		if p.waitErr != nil {
			t.Errorf("sekisho exit: %v\n%s", p.waitErr, p.Log())
		}
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		t.Errorf("sekisho did not stop in 15s\n%s", p.Log())
	}
	// Secrets never reach the log, at any level (the tests run at debug).
	log := p.Log()
	p.secretsMu.Lock()
	for _, s := range p.secrets {
		if strings.Contains(log, s) {
			t.Errorf("a SIP password appears in the server log")
		}
	}
	p.secretsMu.Unlock()
	if t.Failed() {
		t.Logf("sekisho log:\n%s", p.Log())
	}
}

// run runs the sekisho CLI against this PBX's data directory.
func (p *PBX) run(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append(args, "--data", p.Data)
	out, err := exec.CommandContext(ctx, binPath, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sekisho %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// AddExt creates an extension and returns its generated password.
func (p *PBX) AddExt(t *testing.T, number string, extra ...string) string {
	t.Helper()
	out := p.run(t, append([]string{"ext", "add", number, "--json"}, extra...)...)
	var r struct {
		Number   string `json:"number"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal(out, &r); err != nil || r.Password == "" {
		t.Fatalf("ext add %s: bad output %q: %v", number, out, err)
	}
	p.secretsMu.Lock()
	p.secrets = append(p.secrets, r.Password)
	p.secretsMu.Unlock()
	return r.Password
}

// CDR mirrors one row of `sekisho cdr list --json`.
type CDR struct {
	ID             int64  `json:"id"`
	CallID         string `json:"call_id"`
	State          string `json:"state"`
	Started        string `json:"started"`
	Answered       string `json:"answered"`
	Ended          string `json:"ended"`
	DurationMS     int64  `json:"duration_ms"`
	Caller         string `json:"caller"`
	Source         string `json:"source"`
	Dialled        string `json:"dialled"`
	Callee         string `json:"callee"`
	ResultCode     int    `json:"result_code"`
	ResultReason   string `json:"result_reason"`
	HangupBy       string `json:"hangup_by"`
	Direction      string `json:"direction"`
	Trunk          string `json:"trunk"`
	SentNumber     string `json:"sent_number"`
	PacketsAtoB    uint64 `json:"packets_a_to_b"`
	PacketsBtoA    uint64 `json:"packets_b_to_a"`
	PacketsForeign uint64 `json:"packets_foreign"`
	DestKind       string `json:"dest_kind"`
	Country        string `json:"country"`
	Cost           int64  `json:"cost"`
}

// CDRs returns all call records, newest first.
func (p *PBX) CDRs(t *testing.T) []CDR {
	t.Helper()
	out := p.run(t, "cdr", "list", "--json", "--limit", "1000")
	var rs []CDR
	if err := json.Unmarshal(out, &rs); err != nil {
		t.Fatalf("cdr list: bad output %q: %v", out, err)
	}
	return rs
}

// waitCDRs polls until cond holds for the records or the deadline passes.
func (p *PBX) waitCDRs(t *testing.T, what string, cond func([]CDR) bool) []CDR {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		rs := p.CDRs(t)
		if cond(rs) {
			return rs
		}
		if time.Now().After(deadline) {
			t.Fatalf("call records never showed %s; have %+v", what, rs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
