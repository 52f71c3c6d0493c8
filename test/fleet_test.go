package test

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// centreProc is a running `sekisho centre serve` on loopback.
type centreProc struct {
	data string
	url  string
	dash string // the fleet dashboard's base URL
	cmd  *exec.Cmd
	log  *syncWriter
}

func startCentre(t *testing.T) *centreProc {
	t.Helper()
	ip := "127.0.0.1"
	port := freePort(t, ip)
	c := &centreProc{data: t.TempDir(), url: fmt.Sprintf("https://%s", net.JoinHostPort(ip, fmt.Sprint(port))), log: &syncWriter{b: &strings.Builder{}}}
	dashAddr := net.JoinHostPort(ip, fmt.Sprint(freePort(t, ip)))
	c.dash = "http://" + dashAddr
	c.cmd = exec.Command(binPath, "centre", "serve", "--data", c.data, "--listen", net.JoinHostPort(ip, fmt.Sprint(port)), "--name", ip,
		"--console-listen", dashAddr)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("centre log:\n%s", c.log.String())
		}
	})
	// Ready when its health answers (a readiness probe only: the units
	// pin the CA through their tokens).
	probe := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := probe.Get(c.url + "/v1/health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("centre not ready: %v\n%s", err, c.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *centreProc) run(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append([]string{"centre"}, append(args, "--data", c.data)...)
	out, err := exec.CommandContext(ctx, binPath, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sekisho %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// join makes a token and has the unit in dir join with it.
func (c *centreProc) join(t *testing.T, dir, name string) string {
	t.Helper()
	var tok struct{ Token string }
	if err := json.Unmarshal(c.run(t, "enrol-token", "--json"), &tok); err != nil || tok.Token == "" {
		t.Fatalf("enrol-token: %v", err)
	}
	out, err := exec.Command(binPath, "fleet", "join", c.url, tok.Token, "--name", name, "--data", dir, "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("fleet join: %v\n%s", err, out)
	}
	var j struct {
		UnitID string `json:"unit_id"`
	}
	json.Unmarshal(out, &j)
	// The token is spent: a second unit cannot join with it.
	if out, err := exec.Command(binPath, "fleet", "join", c.url, tok.Token, "--data", t.TempDir()).CombinedOutput(); err == nil {
		t.Fatalf("a token joined twice:\n%s", out)
	}
	return j.UnitID
}

type coverage struct {
	Seq        uint64 `json:"seq"`
	Applied    int    `json:"applied"`
	Total      int    `json:"total"`
	Stragglers []struct {
		Name string `json:"name"`
	} `json:"stragglers"`
	Refused []struct {
		Name  string `json:"name"`
		Error string `json:"error"`
	} `json:"refused"`
}

func (c *centreProc) waitCoverage(t *testing.T, seq uint64, what string, ok func(coverage) bool) coverage {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var cv coverage
		json.Unmarshal(c.run(t, "coverage", "--seq", fmt.Sprint(seq), "--json"), &cv)
		if ok(cv) {
			return cv
		}
		if time.Now().After(deadline) {
			t.Fatalf("coverage of bundle %d: %s never came: %+v", seq, what, cv)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *centreProc) push(t *testing.T, args ...string) uint64 {
	t.Helper()
	var b struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(c.run(t, append([]string{"push", "--json"}, args...)...), &b); err != nil || b.Seq == 0 {
		t.Fatalf("push: %v", err)
	}
	return b.Seq
}

// TestFleetBlockInternational is the incident's missing emergency stop:
// the vendor closes calls abroad on every unit at once and sees which
// applied it. Unit A (with a carrier) applies the block and refuses a
// call to Sierra Leone it placed a minute earlier, while domestic calls
// go on; unit B, off during the push, applies it on coming back before
// anything else; a bundle signed with another key is refused by both and
// recorded; a revoked unit cannot reconnect.
func TestFleetBlockInternational(t *testing.T) {
	requireTool(t, "sipp")
	c := startCentre(t)

	a, pw201, _, carrierPort := startPBXWithTrunk(t)
	a.run(t, "profile", "add", "abroad", "--class", "international", "--countries", "SL")
	a.run(t, "ext", "set", "201", "--profile", "abroad")
	a.Stop(t)
	c.join(t, a.Data, "unit-a")
	a = startPBXIn(t, a.Data)
	bDir := t.TempDir()
	bID := c.join(t, bDir, "unit-b")
	b := startPBXIn(t, bDir)
	for _, p := range []*PBX{a, b} {
		waitLog(t, p, "fleet: link to the centre up")
	}
	callOut(t, a, pw201, carrierPort, "001023276123456", "uac_call.xml") // abroad is open before the block

	b.Stop(t)
	seq := c.push(t, "--block-international", "--note", "Sierra Leone wave")
	c.waitCoverage(t, seq, "unit-a applied, unit-b straggling", func(cv coverage) bool {
		return cv.Applied == 1 && cv.Total == 2 && len(cv.Stragglers) == 1 && cv.Stragglers[0].Name == "unit-b"
	})
	// A refuses the call abroad, the carrier hears nothing, and the
	// record says why; a domestic call still goes out.
	quiet := startCarrier(t, carrierPort)
	r := runSIPp(t, sippSpec{Name: "blocked", Scenario: "uac_reject.xml", Target: a.SIPAddr(), IP: callerIP,
		Service: "001023276123456", Rows: [][]string{{"201", pw201}}, Sets: map[string]string{"want": "403"}})
	if !r.ok(1) {
		t.Fatalf("call abroad after the block: want 403\n%s\n%s", r.summary(), r.report())
	}
	if n := len(quiet.WaitAtMost(time.Second).received("INVITE ")); n != 0 {
		t.Fatalf("the carrier received %d INVITEs after the block", n)
	}
	a.waitCDRs(t, "the blocked attempt", func(rs []CDR) bool {
		for _, r := range rs {
			if r.ResultCode == 403 && strings.Contains(r.ResultReason, "vendor's centre") && strings.Contains(r.ResultReason, "Sierra Leone wave") {
				return true
			}
		}
		return false
	})
	callOut(t, a, pw201, carrierPort, "00312345678", "uac_call.xml")

	// B comes back and applies the block at once.
	b = startPBXIn(t, bDir)
	c.waitCoverage(t, seq, "both applied", func(cv coverage) bool { return cv.Applied == 2 && cv.Total == 2 })
	var st struct {
		Seq   uint64 `json:"bundle_seq"`
		Block bool   `json:"block_international"`
	}
	json.Unmarshal(b.run(t, "fleet", "status", "--json"), &st)
	if st.Seq != seq || !st.Block {
		t.Fatalf("unit-b fleet status after reconnecting: %+v", st)
	}

	// Someone signs with another key (the centre's key file replaced):
	// both units refuse it, say so, and stay blocked.
	_, other, _ := ed25519.GenerateKey(nil)
	if err := os.WriteFile(filepath.Join(c.data, "bundle.key"), pemKey(t, other), 0o600); err != nil {
		t.Fatal(err)
	}
	forged := c.push(t, "--allow-international")
	cv := c.waitCoverage(t, forged, "both refused", func(cv coverage) bool { return len(cv.Refused) == 2 })
	for _, r := range cv.Refused {
		if !strings.Contains(r.Error, "signature") {
			t.Errorf("refusal %+v does not name the signature", r)
		}
	}
	var recs []struct {
		Type, Target string
	}
	json.Unmarshal(a.run(t, "audit", "list", "--type", "bundle-refused", "--json"), &recs)
	if len(recs) == 0 {
		t.Error("unit-a kept no evidence of the refused bundle")
	}
	if out := string(a.run(t, "check-number", "--from", "201", "001023276123456")); !strings.Contains(out, "vendor's centre") {
		t.Errorf("the forged bundle lifted the block:\n%s", out)
	}

	// Revoked: unit-b's stream is cut and it cannot come back.
	c.run(t, "revoke", bID)
	b.Stop(t)
	b = startPBXIn(t, bDir)
	waitLog(t, b, "the centre refused the stream")
	if strings.Count(b.Log(), "fleet: link to the centre up") != 0 {
		t.Error("a revoked unit connected")
	}
}

// pemKey is an ed25519 key as the centre keeps it (PKCS #8 in PEM).
func pemKey(t *testing.T, key ed25519.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// syncWriter is a strings.Builder safe for a process's two streams.
type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func waitLog(t *testing.T, p *PBX, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.Log(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("never logged %q:\n%s", s, p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFleetCentreGone: a unit whose centre is down works on as a PBX:
// it starts, takes registrations and places outside calls, and keeps
// trying the centre in the background.
func TestFleetCentreGone(t *testing.T) {
	requireTool(t, "sipp")
	c := startCentre(t)
	p, pw201, _, carrierPort := startPBXWithTrunk(t)
	p.Stop(t)
	c.join(t, p.Data, "office-gone")
	c.cmd.Process.Kill() // the centre is gone before the unit starts
	c.cmd.Wait()
	p = startPBXIn(t, p.Data)
	waitLog(t, p, "link to the centre down; the unit works on")
	callOut(t, p, pw201, carrierPort, "00312345678", "uac_call.xml")
	if strings.Contains(p.Log(), "fleet: link to the centre up") {
		t.Fatal("the link came up with the centre gone")
	}
}
