package test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// sipRequest builds a request from 127.0.0.7 with the given start line and
// extra header lines; headers named in drop are left out.
func sipRequest(start, branch string, extra []string, drop ...string) string {
	hdrs := []string{
		"Via: SIP/2.0/UDP 127.0.0.7:5099;rport;branch=z9hG4bK" + branch,
		"From: <sip:tester@127.0.0.7>;tag=t" + branch,
		"To: <sip:201@127.0.0.1>",
		"Call-ID: " + branch + "@127.0.0.7",
		"CSeq: 1 " + strings.Fields(start)[0],
		"Max-Forwards: 70",
	}
	var b strings.Builder
	b.WriteString(start + "\r\n")
	for i, h := range append(hdrs, extra...) {
		skip := false
		if i >= len(hdrs) {
			drop = nil // extra headers are always sent
		}
		for _, d := range drop {
			if strings.HasPrefix(h, d+":") {
				skip = true
			}
		}
		if !skip {
			b.WriteString(h + "\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// exchange sends msg and returns the status line of the first final answer
// to it (matched by Call-ID, so stray answers to earlier requests are
// skipped), or "" if none came within wait.
func exchange(t *testing.T, c *net.UDPConn, to *net.UDPAddr, msg string, wait time.Duration) string {
	t.Helper()
	if _, err := c.WriteToUDP([]byte(msg), to); err != nil {
		t.Fatal(err)
	}
	callID := ""
	for _, l := range strings.Split(msg, "\r\n") {
		if v, ok := strings.CutPrefix(l, "Call-ID: "); ok {
			callID = v
		}
	}
	buf := make([]byte, 65535)
	deadline := time.Now().Add(wait)
	for {
		c.SetReadDeadline(deadline)
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			return ""
		}
		res := string(buf[:n])
		if callID != "" && !strings.Contains(res, "Call-ID: "+callID+"\r\n") {
			continue
		}
		line, _, _ := strings.Cut(res, "\r\n")
		if strings.HasPrefix(line, "SIP/2.0 100 ") {
			continue // only final answers matter here
		}
		return line
	}
}

// TestMalformedSIP sends broken and hostile messages and checks each gets
// the right answer or silence, and that the PBX keeps serving afterwards.
func TestMalformedSIP(t *testing.T) {
	p := startPBX(t)
	to, _ := net.ResolveUDPAddr("udp", p.SIPAddr())
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.7"), Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	tests := []struct {
		name string
		msg  string
		want string // status line prefix; "" means no answer expected
	}{
		{"garbage", "\x00\x01\x02 hello there\r\n\r\n", ""},
		{"empty lines", "\r\n\r\n\r\n", ""},
		{"binary blob", strings.Repeat("\xff\xfe", 4000), ""},
		{"options", sipRequest("OPTIONS sip:127.0.0.1 SIP/2.0", "opt1", nil), "SIP/2.0 200"},
		{"no cseq", sipRequest("OPTIONS sip:127.0.0.1 SIP/2.0", "nocseq", nil, "CSeq"), ""},
		{"max-forwards zero", sipRequest("INVITE sip:202@127.0.0.1 SIP/2.0", "mf0", nil, "Max-Forwards") + "", ""},
		{"unknown method", sipRequest("FROB sip:127.0.0.1 SIP/2.0", "frob", nil), "SIP/2.0 405"},
		{"bye outside dialog", sipRequest("BYE sip:201@127.0.0.1 SIP/2.0", "bye1", nil), "SIP/2.0 481"},
		{"unmatched cancel", sipRequest("CANCEL sip:201@127.0.0.1 SIP/2.0", "can1", nil), "SIP/2.0 481"},
		{"register no credentials", sipRequest("REGISTER sip:127.0.0.1 SIP/2.0", "reg1", []string{"Contact: <sip:201@127.0.0.7:5099>"}), "SIP/2.0 401"},
		{"register garbage credentials", sipRequest("REGISTER sip:127.0.0.1 SIP/2.0", "reg2", []string{"Contact: <sip:201@127.0.0.7:5099>", `Authorization: Digest ,,,=,"`}), "SIP/2.0 401"},
		{"invite no credentials", sipRequest("INVITE sip:202@127.0.0.1 SIP/2.0", "inv1", []string{"Contact: <sip:201@127.0.0.7:5099>"}), "SIP/2.0 407"},
	}
	// The max-forwards case needs an explicit zero.
	tests[5].msg = sipRequest("INVITE sip:202@127.0.0.1 SIP/2.0", "mf0", []string{"Max-Forwards: 0", "Contact: <sip:201@127.0.0.7:5099>"}, "Max-Forwards")
	tests[5].want = "SIP/2.0 483"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait := 2 * time.Second
			if tt.want == "" {
				wait = 500 * time.Millisecond
			}
			got := exchange(t, c, to, tt.msg, wait)
			if tt.want == "" && got != "" && !strings.HasPrefix(got, "SIP/2.0 400") {
				t.Fatalf("got %q, want silence or 400", got)
			}
			if tt.want != "" && !strings.HasPrefix(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	// Still alive and answering.
	for i := range 3 {
		if got := exchange(t, c, to, sipRequest("OPTIONS sip:127.0.0.1 SIP/2.0", fmt.Sprintf("after%d", i), nil), 2*time.Second); !strings.HasPrefix(got, "SIP/2.0 200") {
			t.Fatalf("after malformed input, OPTIONS got %q", got)
		}
	}
	if strings.Contains(p.Log(), "panic") {
		t.Fatalf("server log mentions panic:\n%s", p.Log())
	}
}

// TestRegisterOverTCP checks the TCP listener: an unauthenticated REGISTER
// over TCP gets its 401 on the same connection.
func TestRegisterOverTCP(t *testing.T) {
	p := startPBX(t)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.8")}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", p.SIPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := strings.Replace(sipRequest("REGISTER sip:127.0.0.1 SIP/2.0", "tcp1", []string{"Contact: <sip:201@127.0.0.8:5099;transport=tcp>"}), "SIP/2.0/UDP", "SIP/2.0/TCP", 1)
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no answer over TCP: %v", err)
	}
	if !strings.HasPrefix(string(buf[:n]), "SIP/2.0 401") || !strings.Contains(string(buf[:n]), `qop="auth"`) {
		t.Fatalf("TCP answer:\n%s", buf[:n])
	}
}
