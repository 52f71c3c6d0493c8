package retrans

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func register(branch string) []byte {
	return []byte("REGISTER sip:127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.70:5060;rport;branch=" + branch + "\r\n" +
		"From: <sip:201@127.0.0.1>;tag=1\r\nTo: <sip:201@127.0.0.1>\r\n" +
		"Call-ID: abc\r\nCSeq: 2 REGISTER\r\nContent-Length: 0\r\n\r\n")
}

func response(status int, branch, method string) []byte {
	return []byte(fmt.Sprintf("SIP/2.0 %d Whatever\r\n"+
		"v: SIP/2.0/UDP 127.0.0.70:5060;received=127.0.0.70;branch=%s;rport=5060\r\n"+
		"From: <sip:201@127.0.0.1>;tag=1\r\nTo: <sip:201@127.0.0.1>;tag=2\r\n"+
		"Call-ID: abc\r\nCSeq:   2  %s\r\nContent-Length: 0\r\n\r\n", status, branch, method))
}

var phone = netip.MustParseAddrPort("127.0.0.70:5060")

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTest(ttl time.Duration, max int) (*Cache, *clock) {
	c := New(ttl, max)
	clk := &clock{t: time.Unix(1000, 0)}
	c.now = clk.now
	return c, clk
}

func TestRetransmissionAnsweredOnlyToItsPeer(t *testing.T) {
	c, _ := newTest(0, 0)
	resp := response(200, "z9hG4bK-1", "REGISTER")
	c.Sent(phone, resp)
	got, ok := c.Lookup(phone, register("z9hG4bK-1"))
	if !ok || string(got) != string(resp) {
		t.Fatalf("retransmission not answered: %v %q", ok, got)
	}
	if !c.Has(phone, "z9hG4bK-1") {
		t.Fatal("Has: want the cached answer")
	}
	// Someone else sending the same branch must not get the answer: it
	// holds another phone's bindings.
	if _, ok := c.Lookup(netip.MustParseAddrPort("127.0.0.99:5060"), register("z9hG4bK-1")); ok {
		t.Fatal("answered another address")
	}
	if _, ok := c.Lookup(netip.MustParseAddrPort("127.0.0.70:5061"), register("z9hG4bK-1")); ok {
		t.Fatal("answered another port")
	}
	if _, ok := c.Lookup(phone, register("z9hG4bK-2")); ok {
		t.Fatal("answered another transaction")
	}
	// An IPv4-mapped address is the same peer.
	if _, ok := c.Lookup(netip.MustParseAddrPort("[::ffff:127.0.0.70]:5060"), register("z9hG4bK-1")); !ok {
		t.Fatal("mapped address not matched")
	}
	if _, _, hits := c.Stats(); hits != 2 {
		t.Fatalf("hits %d, want 2", hits)
	}
}

func TestOnlyFinalRegisterResponsesCached(t *testing.T) {
	c, _ := newTest(0, 0)
	c.Sent(phone, response(100, "z9hG4bK-a", "REGISTER"))
	c.Sent(phone, response(200, "z9hG4bK-b", "INVITE"))
	c.Sent(phone, response(200, "old-style-branch", "REGISTER"))
	c.Sent(phone, register("z9hG4bK-c")) // a request we sent
	if n, _, _ := c.Stats(); n != 0 {
		t.Fatalf("cached %d messages, want none", n)
	}
	c.Sent(phone, response(401, "z9hG4bK-d", "REGISTER"))
	if _, ok := c.Lookup(phone, register("z9hG4bK-d")); !ok {
		t.Fatal("401 not cached")
	}
	// Only a REGISTER is answered, even with a matching branch.
	opts := strings.Replace(string(register("z9hG4bK-d")), "REGISTER sip:", "OPTIONS sip:", 1)
	if _, ok := c.Lookup(phone, []byte(opts)); ok {
		t.Fatal("answered an OPTIONS")
	}
}

func TestExpiresAfterTTL(t *testing.T) {
	c, clk := newTest(32*time.Second, 0)
	c.Sent(phone, response(200, "z9hG4bK-1", "REGISTER"))
	clk.t = clk.t.Add(32 * time.Second)
	if _, ok := c.Lookup(phone, register("z9hG4bK-1")); !ok {
		t.Fatal("gone before its time")
	}
	clk.t = clk.t.Add(time.Second)
	if _, ok := c.Lookup(phone, register("z9hG4bK-1")); ok {
		t.Fatal("answered after its time")
	}
	c.Sent(phone, response(200, "z9hG4bK-2", "REGISTER")) // sweeps the old one
	if n, _, _ := c.Stats(); n != 1 {
		t.Fatalf("%d entries, want 1", n)
	}
}

func TestBoundedInBytes(t *testing.T) {
	one := len(response(200, "z9hG4bK-00000", "REGISTER"))
	c, _ := newTest(0, 100*one)
	for i := range 5000 {
		c.Sent(phone, response(200, fmt.Sprintf("z9hG4bK-%05d", i), "REGISTER"))
	}
	n, size, _ := c.Stats()
	if n != 100 || size > 100*one {
		t.Fatalf("%d entries of %d bytes, want 100 within %d", n, size, 100*one)
	}
	if _, ok := c.Lookup(phone, register("z9hG4bK-00000")); ok {
		t.Fatal("oldest kept past the budget")
	}
	if _, ok := c.Lookup(phone, register("z9hG4bK-04999")); !ok {
		t.Fatal("newest dropped")
	}
	if len(c.index) != 100 {
		t.Fatalf("index holds %d keys, want 100", len(c.index))
	}
}

func TestSameBranchAgainKeepsNewest(t *testing.T) {
	c, clk := newTest(10*time.Second, 0)
	c.Sent(phone, response(401, "z9hG4bK-1", "REGISTER"))
	clk.t = clk.t.Add(6 * time.Second)
	c.Sent(phone, response(200, "z9hG4bK-1", "REGISTER"))
	clk.t = clk.t.Add(6 * time.Second)
	c.Sent(phone, response(200, "z9hG4bK-2", "REGISTER")) // expires the 401
	got, ok := c.Lookup(phone, register("z9hG4bK-1"))
	if !ok || !strings.HasPrefix(string(got), "SIP/2.0 200") {
		t.Fatalf("want the newer 200, got %v %q", ok, got)
	}
}

func TestMultipleViasInOneLine(t *testing.T) {
	head := []byte("Via: SIP/2.0/UDP a;branch=z9hG4bKfirst, SIP/2.0/UDP b;branch=z9hG4bKsecond\r\nVia: SIP/2.0/UDP c;branch=z9hG4bKthird\r\nCSeq: 1 REGISTER\r\n")
	if m, b := scan(head, true); string(b) != "z9hG4bKfirst" || string(m) != "REGISTER" {
		t.Fatalf("got %q %q", m, b)
	}
	if _, b := scan([]byte("Via: SIP/2.0/UDP a;rport, SIP/2.0/UDP b;branch=z9hG4bKsecond\r\n"), false); b != nil {
		t.Fatal("took the second Via's branch")
	}
	if _, b := scan([]byte("Via: SIP/2.0/UDP a;rport\r\nVia: SIP/2.0/UDP b;branch=z9hG4bKsecond\r\n"), false); b != nil {
		t.Fatal("took the second Via header's branch")
	}
	if _, b := scan([]byte("via: SIP/2.0/UDP a ; rport ; BRANCH = z9hG4bKx1 ;received=1.2.3.4\r\n"), false); string(b) != "z9hG4bKx1" {
		t.Fatalf("spaced parameters: %q", b)
	}
}

func BenchmarkSentAndLookup(b *testing.B) {
	c := New(0, 0)
	resp := response(200, "z9hG4bK-1234567890", "REGISTER")
	req := register("z9hG4bK-1234567890")
	b.ReportAllocs()
	for b.Loop() {
		c.Sent(phone, resp)
		c.Lookup(phone, req)
	}
}
