package media

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Loopback addresses the tests play parts with (Linux routes all of
// 127.0.0.0/8 to lo).
var (
	relayIP    = netip.MustParseAddr("127.0.0.1")
	phoneAIP   = netip.MustParseAddr("127.0.0.2")
	phoneBIP   = netip.MustParseAddr("127.0.0.3")
	phoneA2IP  = netip.MustParseAddr("127.0.0.4")
	attackerIP = netip.MustParseAddr("127.0.0.9")
)

// checkGoroutines fails the test if it leaves goroutines behind. Call it
// first, so its cleanup runs after the relay's.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

// freePorts returns the first of n consecutive free UDP ports, n even,
// starting at an even port picked at random between 30000 and 32766 (below
// Linux's ephemeral range), so that tests do not trip over each other, over
// a running sekisho or over bench/mediaload.
func freePorts(t testing.TB, n int) int {
	t.Helper()
try:
	for range 100 {
		base := 30000 + 2*rand.IntN((32766-30000-n)/2)
		for p := base; p < base+n; p++ {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: p})
			if err != nil {
				continue try
			}
			c.Close()
		}
		return base
	}
	t.Fatalf("no %d free consecutive ports", n)
	return 0
}

// newRelay returns a relay on 127.0.0.1 with n free ports, closed when the
// test ends.
func newRelay(t testing.TB, n int, idle time.Duration) *Relay {
	t.Helper()
	base := freePorts(t, n)
	r, err := New(Config{
		BindIP:      net.IP(relayIP.AsSlice()),
		Advertise:   net.IP(relayIP.AsSlice()),
		PortMin:     base,
		PortMax:     base + n - 1,
		IdleTimeout: idle,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// phone is a fake phone: an RTP socket on an even port and its RTCP
// socket on the next one.
type phone struct {
	rtp, rtcp *net.UDPConn
}

func newPhone(t testing.TB, ip netip.Addr) *phone {
	t.Helper()
	for range 50 {
		rtp, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
		if err != nil {
			t.Fatal(err)
		}
		port := rtp.LocalAddr().(*net.UDPAddr).Port
		if port%2 == 0 && port < 65535 {
			rtcp, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port+1))))
			if err == nil {
				p := &phone{rtp, rtcp}
				t.Cleanup(func() { rtp.Close(); rtcp.Close() })
				return p
			}
		}
		rtp.Close()
	}
	t.Fatal("no even/odd port pair for a fake phone")
	return nil
}

func (p *phone) addr() netip.AddrPort { return p.rtp.LocalAddr().(*net.UDPAddr).AddrPort() }

// send sends pkt from the phone's RTP (or RTCP) socket to the relay's port.
func (p *phone) send(t testing.TB, rtcp bool, port int, pkt []byte) {
	t.Helper()
	c := p.rtp
	if rtcp {
		c, port = p.rtcp, port+1
	}
	if _, err := c.WriteToUDPAddrPort(pkt, netip.AddrPortFrom(relayIP, uint16(port))); err != nil {
		t.Fatal(err)
	}
}

// recv reads one packet within a second and returns it and its source.
func (p *phone) recv(t testing.TB, rtcp bool) ([]byte, netip.AddrPort) {
	t.Helper()
	b, src, err := p.tryRecv(rtcp, time.Second)
	if err != nil {
		t.Fatalf("phone %v: no packet: %v", p.addr(), err)
	}
	return b, src
}

func (p *phone) tryRecv(rtcp bool, wait time.Duration) ([]byte, netip.AddrPort, error) {
	c := p.rtp
	if rtcp {
		c = p.rtcp
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, src, err := c.ReadFromUDPAddrPort(buf)
	return buf[:n], src, err
}

// expectNothing fails if the phone receives anything within 200 ms.
func (p *phone) expectNothing(t testing.TB, rtcp bool) {
	t.Helper()
	if b, src, err := p.tryRecv(rtcp, 200*time.Millisecond); err == nil {
		t.Fatalf("phone %v received %q from %v; want nothing", p.addr(), b, src)
	}
}

// waitStats polls the session's counters until ok holds.
func waitStats(t testing.TB, s *Session, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		st := s.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never settled: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// call opens a session with two phones whose SDP addresses are set, as the
// B2BUA does after the offer and the answer.
func call(t *testing.T, r *Relay) (*Session, *phone, *phone) {
	t.Helper()
	s, err := r.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newPhone(t, phoneAIP), newPhone(t, phoneBIP)
	s.SetPeer(SideA, a.addr())
	s.SetPeer(SideB, b.addr())
	return s, a, b
}

func TestRelayBothWays(t *testing.T) {
	checkGoroutines(t)
	r := newRelay(t, 100, 0)
	s, a, b := call(t, r)
	relayA := netip.AddrPortFrom(relayIP, uint16(s.Port(SideA)))
	relayB := netip.AddrPortFrom(relayIP, uint16(s.Port(SideB)))

	for i, tc := range []struct {
		from, to *phone
		port     int
		rtcp     bool
		pkt      []byte
		wantSrc  netip.AddrPort // the relay's socket facing the receiver
	}{
		{a, b, s.Port(SideA), false, rtpPacket(t, 1, []byte("hello from A")), relayB},
		{b, a, s.Port(SideB), false, rtpPacket(t, 1, []byte("hello from B")), relayA},
		{a, b, s.Port(SideA), true, rtcpRR(0xA), netip.AddrPortFrom(relayIP, uint16(s.Port(SideB)+1))},
		{b, a, s.Port(SideB), true, rtcpRR(0xB), netip.AddrPortFrom(relayIP, uint16(s.Port(SideA)+1))},
	} {
		tc.from.send(t, tc.rtcp, tc.port, tc.pkt)
		got, src := tc.to.recv(t, tc.rtcp)
		if !bytes.Equal(got, tc.pkt) || src != tc.wantSrc {
			t.Fatalf("step %d: received %x from %v; want %x from %v", i, got, src, tc.pkt, tc.wantSrc)
		}
	}
	st := waitStats(t, s, func(st Stats) bool { return st.AtoB == 2 && st.BtoA == 2 })
	if st.Dropped != 0 || st.SourceA != a.addr() || st.SourceB != b.addr() {
		t.Fatalf("stats %+v", st)
	}
	if r.Active() != 1 {
		t.Fatalf("Active = %d, want 1", r.Active())
	}
}

// TestNATLatch: a phone behind NAT announces one address in its SDP and
// sends from another; the relay answers where the packets come from.
func TestNATLatch(t *testing.T) {
	checkGoroutines(t)
	r := newRelay(t, 100, 0)
	s, err := r.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newPhone(t, phoneAIP), newPhone(t, phoneBIP)
	s.SetPeer(SideA, netip.MustParseAddrPort("10.0.0.5:4000")) // private address from the SDP
	s.SetPeer(SideB, b.addr())
	// A source other than the announced one latches once the strict
	// window after SetPeer has passed.
	time.Sleep(strictWindow + 50*time.Millisecond)
	a.send(t, false, s.Port(SideA), rtpPacket(t, 1, []byte("a")))
	b.recv(t, false)
	b.send(t, false, s.Port(SideB), rtpPacket(t, 1, []byte("b")))
	if got, _ := a.recv(t, false); !bytes.Contains(got, []byte("b")) {
		t.Fatalf("A received %q", got)
	}
}

func TestInjectedPacketsAreDropped(t *testing.T) {
	checkGoroutines(t)
	r := newRelay(t, 100, 0)
	s, a, b := call(t, r)
	attacker := newPhone(t, attackerIP)

	a.send(t, false, s.Port(SideA), rtpPacket(t, 1, []byte("legit 1")))
	b.recv(t, false) // A has latched

	// The attacker sends first, then A; B must hear only A.
	attacker.send(t, false, s.Port(SideA), rtpPacket(t, 2, []byte("INJECTED")))
	attacker.send(t, true, s.Port(SideA), rtcpRR(0x99))
	a.send(t, false, s.Port(SideA), rtpPacket(t, 2, []byte("legit 2")))
	if got, _ := b.recv(t, false); !bytes.Contains(got, []byte("legit 2")) {
		t.Fatalf("B received %q; want the legit packet", got)
	}
	b.expectNothing(t, false)
	b.expectNothing(t, true)
	st := waitStats(t, s, func(st Stats) bool { return st.Dropped == 2 })
	if st.Foreign != 2 || st.AtoB != 2 || st.SourceA != a.addr() {
		t.Fatalf("stats %+v", st)
	}

	// Not RTP at all, even from the latched source: dropped, not foreign.
	a.send(t, false, s.Port(SideA), []byte("GET / HTTP/1.0\r\n\r\n"))
	b.expectNothing(t, false)
	st = waitStats(t, s, func(st Stats) bool { return st.Dropped == 3 })
	if st.Foreign != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSetPeerChangeRelatches(t *testing.T) {
	checkGoroutines(t)
	r := newRelay(t, 100, 0)
	s, a, b := call(t, r)
	a2 := newPhone(t, phoneA2IP) // the caller's phone after it moved

	a.send(t, false, s.Port(SideA), rtpPacket(t, 1, []byte("old")))
	b.recv(t, false)
	a2.send(t, false, s.Port(SideA), rtpPacket(t, 2, []byte("moved, no re-INVITE yet")))
	b.expectNothing(t, false)

	// The same address again (a session refresh) keeps the latch.
	s.SetPeer(SideA, a.addr())
	a2.send(t, false, s.Port(SideA), rtpPacket(t, 3, []byte("still not")))
	b.expectNothing(t, false)

	// The re-INVITE moves side A: its next packet latches.
	s.SetPeer(SideA, a2.addr())
	a2.send(t, false, s.Port(SideA), rtpPacket(t, 4, []byte("new")))
	if got, _ := b.recv(t, false); !bytes.Contains(got, []byte("new")) {
		t.Fatalf("B received %q", got)
	}
	b.send(t, false, s.Port(SideB), rtpPacket(t, 1, []byte("to new")))
	if got, _ := a2.recv(t, false); !bytes.Contains(got, []byte("to new")) {
		t.Fatalf("moved phone received %q", got)
	}
	a.send(t, false, s.Port(SideA), rtpPacket(t, 5, []byte("old again")))
	b.expectNothing(t, false)
	if st := waitStats(t, s, func(st Stats) bool { return st.Foreign == 3 }); st.SourceA != a2.addr() {
		t.Fatalf("stats %+v", st)
	}
}

func TestSetPeerRefusesDangerousAddresses(t *testing.T) {
	checkGoroutines(t)
	base := freePorts(t, 100)
	r, err := New(Config{BindIP: net.IPv4zero, Advertise: net.ParseIP("192.0.2.1"), PortMin: base, PortMax: base + 99})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := r.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ap := range []string{
		"192.0.2.1:" + strconv.Itoa(base+2), // the relay's own port: a loop
		"127.0.0.1:5060",                    // a service on the PBX host itself
		"224.0.0.1:40000",                   // multicast
		"192.0.2.50:53",                     // reflection onto DNS
		"0.0.0.0:40000",                     // RFC 2543 hold
		"192.0.2.50:0",                      // rejected stream
		"[::ffff:127.0.0.1]:40000",
	} {
		s.SetPeer(SideB, netip.MustParseAddrPort(ap))
		s.mu.Lock()
		got := s.destLocked(SideB, rtpKind)
		s.mu.Unlock()
		if got.IsValid() {
			t.Errorf("SetPeer(%s): relay would send to %v", ap, got)
		}
	}
	s.SetPeer(SideB, netip.MustParseAddrPort("192.0.2.50:40000"))
	s.mu.Lock()
	rtp, rtcp := s.destLocked(SideB, rtpKind), s.destLocked(SideB, rtcpKind)
	s.mu.Unlock()
	if rtp.String() != "192.0.2.50:40000" || rtcp.String() != "192.0.2.50:40001" {
		t.Fatalf("destinations %v %v", rtp, rtcp)
	}
}

func TestCloseFreesPorts(t *testing.T) {
	checkGoroutines(t)
	r := newRelay(t, 4, 0) // room for exactly one session
	s1, err := r.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open(nil); !errors.Is(err, ErrExhausted) {
		t.Fatalf("second Open: %v, want ErrExhausted", err)
	}
	s1.Close()
	s1.Close() // idempotent
	if r.Active() != 0 {
		t.Fatalf("Active = %d after Close", r.Active())
	}
	s2, err := r.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Port(SideA)+s2.Port(SideB) != s1.Port(SideA)+s1.Port(SideB) {
		t.Fatalf("ports %d/%d, then %d/%d", s1.Port(SideA), s1.Port(SideB), s2.Port(SideA), s2.Port(SideB))
	}
	// After Close the session is inert.
	s1.SetPeer(SideA, netip.MustParseAddrPort("127.0.0.2:40000"))
	_ = s1.Stats()
}

func TestExhausted(t *testing.T) {
	checkGoroutines(t)
	r := newRelay(t, 8, 0) // two sessions
	base := r.portMin
	seen := map[int]bool{}
	for range 2 {
		s, err := r.Open(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, side := range []Side{SideA, SideB} {
			p := s.Port(side)
			if p%2 != 0 || p < base || p > base+6 || seen[p] {
				t.Fatalf("port %d odd, out of range or reused", p)
			}
			seen[p] = true
		}
	}
	for range 3 {
		if s, err := r.Open(nil); !errors.Is(err, ErrExhausted) || s != nil {
			t.Fatalf("Open on a full range: %v, %v", s, err)
		}
	}
	if r.Active() != 2 {
		t.Fatalf("Active = %d", r.Active())
	}
}

func TestBusyPortSkipped(t *testing.T) {
	checkGoroutines(t)
	base := freePorts(t, 8)
	blocker, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IP(relayIP.AsSlice()), Port: base + 1})
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	r, err := New(Config{BindIP: net.IP(relayIP.AsSlice()), Advertise: net.IP(relayIP.AsSlice()), PortMin: base, PortMax: base + 7})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Pair base is half taken by another program.
	s, err := r.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Port(SideA) != base+2 || s.Port(SideB) != base+4 {
		t.Fatalf("ports %d, %d; want %d, %d", s.Port(SideA), s.Port(SideB), base+2, base+4)
	}
	if _, err := r.Open(nil); !errors.Is(err, ErrExhausted) {
		t.Fatalf("Open: %v, want ErrExhausted (base+6 free, base busy)", err)
	}
	// Once the other program lets go, the pair comes round again.
	blocker.Close()
	s2, err := r.Open(nil)
	if err != nil || s2.Port(SideA)+s2.Port(SideB) != 2*base+6 {
		t.Fatalf("Open after the port came free: %v, %v", s2, err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	ip := net.ParseIP("127.0.0.1")
	for _, cfg := range []Config{
		{BindIP: nil, Advertise: ip, PortMin: 20000, PortMax: 20099},
		{BindIP: ip, Advertise: net.IPv4zero, PortMin: 20000, PortMax: 20099},
		{BindIP: ip, Advertise: ip, PortMin: 20001, PortMax: 20099},
		{BindIP: ip, Advertise: ip, PortMin: 20000, PortMax: 20002},
		{BindIP: ip, Advertise: ip, PortMin: 20000, PortMax: 70000},
		{BindIP: ip, Advertise: ip, PortMin: 20000, PortMax: 20099, IdleTimeout: -time.Second},
	} {
		if r, err := New(cfg); err == nil || !strings.HasPrefix(err.Error(), "media: config: ") {
			t.Errorf("New(%+v) = %v, %v", cfg, r, err)
			if r != nil {
				r.Close()
			}
		}
	}
}

func TestIdle(t *testing.T) {
	checkGoroutines(t)
	const idle = 150 * time.Millisecond
	r := newRelay(t, 100, idle)
	var fired atomic.Int32
	done := make(chan struct{}, 4)
	s, err := r.Open(func() { fired.Add(1); done <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	a, b := newPhone(t, phoneAIP), newPhone(t, phoneBIP)

	// Ringing: only the caller's side is known, the clock does not run.
	s.SetPeer(SideA, a.addr())
	time.Sleep(3 * idle)
	if fired.Load() != 0 {
		t.Fatal("onIdle ran before both sides had a peer")
	}

	// Answered, media flowing: no idle.
	s.SetPeer(SideB, b.addr())
	for i := range 20 {
		a.send(t, false, s.Port(SideA), rtpPacket(t, uint16(i), []byte("x")))
		time.Sleep(20 * time.Millisecond)
	}
	if fired.Load() != 0 {
		t.Fatal("onIdle ran while media flowed")
	}

	// On hold with no media: no idle.
	s.SetHold(true)
	time.Sleep(3 * idle)
	if fired.Load() != 0 {
		t.Fatal("onIdle ran on hold")
	}

	// Off hold, silence: onIdle once.
	s.SetHold(false)
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("onIdle never ran")
	}
	time.Sleep(3 * idle)
	if n := fired.Load(); n != 1 {
		t.Fatalf("onIdle ran %d times", n)
	}

	// A new offer or answer (SetPeer, here with the same address) starts
	// the clock again: onIdle runs once more after another quiet spell.
	s.SetPeer(SideB, b.addr())
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("onIdle did not run again after SetPeer")
	}
	time.Sleep(3 * idle)
	if n := fired.Load(); n != 2 {
		t.Fatalf("onIdle ran %d times", n)
	}
}

// TestIdleCallbackMayClose: the B2BUA ends the call from onIdle.
func TestIdleCallbackMayClose(t *testing.T) {
	checkGoroutines(t)
	r := newRelay(t, 100, 50*time.Millisecond)
	closed := make(chan struct{})
	var s *Session
	ready := make(chan struct{})
	s, err := r.Open(func() { <-ready; s.Close(); close(closed) })
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	s.SetPeer(SideA, netip.MustParseAddrPort("127.0.0.2:40000"))
	s.SetPeer(SideB, netip.MustParseAddrPort("127.0.0.3:40000"))
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("onIdle never ran")
	}
	if r.Active() != 0 {
		t.Fatalf("Active = %d", r.Active())
	}
}

func TestRelayClose(t *testing.T) {
	checkGoroutines(t)
	r := newRelay(t, 100, time.Second)
	for range 3 {
		if _, err := r.Open(nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if r.Active() != 0 {
		t.Fatalf("Active = %d after Close", r.Active())
	}
	if _, err := r.Open(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// latched returns a session whose two sides have latched to phones a and
// b, with b's socket drained in the background until the test ends.
func latched(t testing.TB, r *Relay) (*Session, *phone, *phone) {
	t.Helper()
	s, err := r.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newPhone(t, phoneAIP), newPhone(t, phoneBIP)
	s.SetPeer(SideA, a.addr())
	s.SetPeer(SideB, b.addr())
	a.send(t, false, s.Port(SideA), rtpPacket(t, 1, nil))
	b.recv(t, false)
	b.send(t, false, s.Port(SideB), rtpPacket(t, 1, nil))
	a.recv(t, false)
	return s, a, b
}

func TestForwardDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	checkGoroutines(t)
	r := newRelay(t, 100, time.Second)
	s, a, b := latched(t, r)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		buf := make([]byte, 2048)
		for {
			if _, _, err := b.rtp.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	defer func() { b.rtp.Close(); <-drained }()
	b.rtp.SetReadDeadline(time.Time{})

	pkt := rtpPacket(t, 2, make([]byte, 160))
	attacker := netip.AddrPortFrom(attackerIP, 40000)
	for _, tc := range []struct {
		name string
		k    kind
		src  netip.AddrPort
		pkt  []byte
	}{
		{"relayed", rtpKind, a.addr(), pkt},
		{"RTCP relayed", rtcpKind, a.rtcp.LocalAddr().(*net.UDPAddr).AddrPort(), rtcpRR(1)},
		{"foreign source", rtpKind, attacker, pkt},
		{"not RTP", rtpKind, a.addr(), []byte("junk")},
	} {
		if n := testing.AllocsPerRun(2000, func() { s.forward(SideA, tc.k, tc.pkt, tc.src) }); n != 0 {
			t.Errorf("%s: %v allocations per packet, want 0", tc.name, n)
		}
	}
	// The relayed cases really went out (1 latching packet, 2 x 2001 runs),
	// and the others were really dropped.
	if st := s.Stats(); st.AtoB != 1+2*2001 || st.Foreign != 2001 || st.Dropped != 2*2001 {
		t.Fatalf("stats %+v", st)
	}
}

// BenchmarkForward sends G.711-sized RTP from phone A through a session to
// phone B over loopback, a few packets in flight at a time. The allocs/op
// figure counts every allocation in the process: the phones, the relay's
// reader goroutines and its forwarding.
func BenchmarkForward(b *testing.B) { benchForward(b, false) }

// BenchmarkForwardListened is BenchmarkForward with a listener on side A
// as the B2BUA's in-call keypads set on every call: one call per packet
// that looks at the payload type only.
func BenchmarkForwardListened(b *testing.B) { benchForward(b, true) }

func benchForward(b *testing.B, listened bool) {
	r := newRelay(b, 100, time.Second)
	s, err := r.Open(nil)
	if err != nil {
		b.Fatal(err)
	}
	if listened {
		var events atomic.Uint64
		s.Listen(SideA, func(pkt []byte) {
			if pkt[1]&0x7f == 101 {
				events.Add(1)
			}
		})
	}
	pa, pb := newPhone(b, phoneAIP), newPhone(b, phoneBIP)
	s.SetPeer(SideA, pa.addr())
	s.SetPeer(SideB, pb.addr())
	pkt := rtpPacket(b, 1, make([]byte, 160))
	dst := netip.AddrPortFrom(relayIP, uint16(s.Port(SideA)))
	buf := make([]byte, 2048)
	pb.rtp.SetReadDeadline(time.Now().Add(time.Minute))
	const window = 8
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += window {
		n := min(window, b.N-i)
		for range n {
			if _, err := pa.rtp.WriteToUDPAddrPort(pkt, dst); err != nil {
				b.Fatal(err)
			}
		}
		for range n {
			if _, _, err := pb.rtp.ReadFromUDPAddrPort(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "packets/s")
	b.StopTimer()
	// The relay counts a packet just after sending it, so phone B may see
	// the last one before the count does.
	waitStats(b, s, func(st Stats) bool { return st.AtoB == uint64(b.N) })
}
