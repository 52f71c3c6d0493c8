package media

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Side names one leg of a session.
type Side int

const (
	// SideA faces the caller.
	SideA Side = iota
	// SideB faces the callee.
	SideB
)

func (s Side) String() string {
	switch s {
	case SideA:
		return "A"
	case SideB:
		return "B"
	}
	return "invalid"
}

// kind tells the RTP socket of a side from its RTCP socket.
type kind int

const (
	rtpKind kind = iota
	rtcpKind
)

// readBufSize is the read buffer of each socket. Audio packets are a few
// hundred bytes; a datagram that fills the buffer may have been cut short
// and is dropped.
const readBufSize = 2048

// Stats counts a session's packets, RTP and RTCP together.
type Stats struct {
	// AtoB and BtoA count packets relayed from the caller's side to the
	// callee's and back.
	AtoB, BtoA uint64
	// Dropped counts packets received and not relayed: not RTP or RTCP,
	// from a source other than the latched one, with nowhere to go yet,
	// or failing to send.
	Dropped uint64
	// Foreign counts the part of Dropped that came from a source other
	// than the one the side had latched to: injection or hijack attempts,
	// or a phone whose address changed without a re-INVITE.
	Foreign uint64
	// SourceA and SourceB are the RTP sources the sides latched to; zero
	// until a side has latched.
	SourceA, SourceB netip.AddrPort
}

// Session relays one call's media. Its methods are safe for concurrent
// use. After Close, SetPeer and SetHold do nothing, Stats returns the final
// counts, and Port returns the ports the session had, which may already
// belong to another session.
type Session struct {
	r      *Relay
	log    *slog.Logger
	onIdle func()
	ports  [2]int             // RTP port of each side; RTCP is +1
	conns  [2][2]*net.UDPConn // [side][kind]; set before the readers start
	wg     sync.WaitGroup     // the four reader goroutines
	fwd    [2]atomic.Uint64   // packets relayed from each side
	drops  atomic.Uint64      // Stats.Dropped
	alien  atomic.Uint64      // Stats.Foreign
	heard  atomic.Uint64      // packets from the sides' own sources, for the idle check
	closed atomic.Bool        // set first thing in Close
	once   sync.Once          // runs Close's work once

	// mu guards the peers, latches and flags below.
	mu sync.Mutex
	// peer is the RTP address each side's SDP announced (SetPeer); zero if
	// none or not usable.
	peer [2]netip.AddrPort
	// peerSet records that SetPeer was called for the side.
	peerSet [2]bool
	// latch is the source each side's RTP and RTCP latched to.
	latch [2][2]netip.AddrPort
	// warned limits the foreign-source warning to one per latch.
	warned [2]bool
	// hold suspends the idle check.
	hold bool
	// restart tells the idle check that SetPeer or SetHold ran: its clock
	// starts again, and onIdle may run again.
	restart bool
	// strictUntil is when a side's new SDP address stops being the only
	// source its RTP may latch to (strictWindow after SetPeer).
	strictUntil [2]time.Time
	// playing marks a side that hears music from the PBX (Play): RTP
	// from the other side is not relayed to it meanwhile.
	playing [2]bool
	// tap receives each side's RTP as well (Listen).
	tap [2]func([]byte)

	// Owned by the relay's idle goroutine.
	idleHeard uint64
	idleSince time.Time
	idleFired bool
}

// Port returns the local RTP port of side; its RTCP port is Port+1.
func (s *Session) Port(side Side) int {
	if side != SideA && side != SideB {
		return 0
	}
	return s.ports[side]
}

// SetPeer sets the RTP address side's session description announced.
// Packets toward that side go there until the side latches. A call with an
// address different from the one set before (a re-INVITE that moves the
// media) re-opens latching for the side: its next valid packet, from
// wherever, becomes its source. An address that is not usable (zero, port
// 0, the unspecified address of an RFC 2543 hold, or one refused below)
// leaves the side without an announced address until it latches.
func (s *Session) SetPeer(side Side, rtp netip.AddrPort) {
	if side != SideA && side != SideB || s.closed.Load() {
		return
	}
	rtp = netip.AddrPortFrom(rtp.Addr().Unmap(), rtp.Port())
	if !s.usablePeer(side, rtp) {
		rtp = netip.AddrPort{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peer[side] != rtp || !s.peerSet[side] {
		// A new address, or the first one: latch again. Packets that came
		// before the side's SDP was known were from somebody the PBX had
		// not heard of yet: a forked callee that lost the race to answer,
		// which keeps sending until its BYE arrives, or a port scanner.
		if s.latch[side][rtpKind].IsValid() {
			s.log.Info("media: peer set, latching again", "side", side, "peer", rtp, "was", s.latch[side][rtpKind])
		}
		s.latch[side] = [2]netip.AddrPort{}
		s.warned[side] = false
		s.strictUntil[side] = time.Now().Add(strictWindow)
	}
	s.peer[side] = rtp
	s.peerSet[side] = true
	s.restart = true
}

// usablePeer reports whether the relay may send to an address taken from
// SDP, which the phone (or whoever forged its SDP) chose freely.
func (s *Session) usablePeer(side Side, ap netip.AddrPort) bool {
	a := ap.Addr()
	if !ap.IsValid() || ap.Port() == 0 || a.IsUnspecified() {
		return false
	}
	var why string
	switch {
	case a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		// Stops the relay from spraying the other party's audio over a
		// whole network segment.
		why = "multicast or broadcast"
	case a.IsLoopback() && !s.r.loopbackOK:
		// Stops server-side request forgery: SDP naming 127.0.0.1 would
		// make the relay send the other party's packets to services on the
		// PBX host itself, from a trusted local address.
		why = "loopback"
	case ap.Port() < 1024:
		// Stops reflection onto well-known services (DNS, NTP, SNMP...)
		// of hosts the attacker names; no phone puts RTP there.
		why = "well-known port"
	case s.r.ownPort(ap):
		// Stops media loops: a side pointed at the relay's own ports
		// would bounce packets between the relay's sockets forever.
		why = "the relay's own port"
	default:
		return true
	}
	s.log.Warn("media: SDP address refused", "side", side, "addr", ap, "reason", why)
	return false
}

// SetHold suspends the idle check while on is true: a held stream may
// carry no RTP at all (RFC 3264 section 8.4, inactive), and some phones
// send no RTCP either. The clock restarts when the hold ends.
func (s *Session) SetHold(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = on
	s.restart = true
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	st := Stats{
		AtoB:    s.fwd[SideA].Load(),
		BtoA:    s.fwd[SideB].Load(),
		Dropped: s.drops.Load(),
		Foreign: s.alien.Load(),
	}
	s.mu.Lock()
	st.SourceA, st.SourceB = s.latch[SideA][rtpKind], s.latch[SideB][rtpKind]
	s.mu.Unlock()
	return st
}

// Close stops relaying, waits for the session's goroutines to end and
// returns its ports to the relay. It is idempotent.
func (s *Session) Close() {
	s.once.Do(func() {
		s.closed.Store(true)
		for _, pair := range s.conns {
			for _, c := range pair {
				c.Close()
			}
		}
		s.wg.Wait()
		s.r.release(s)
		st := s.Stats()
		s.log.Debug("media: session closed", "a_to_b", st.AtoB, "b_to_a", st.BtoA,
			"dropped", st.Dropped, "foreign", st.Foreign)
	})
}

// unbindLocked closes whatever sockets the session bound and returns their
// ports to the queue. The caller holds r.mu and no reader runs.
func (s *Session) unbindLocked() {
	for side := range s.conns {
		if s.conns[side][rtpKind] == nil {
			continue
		}
		s.conns[side][rtpKind].Close()
		s.conns[side][rtcpKind].Close()
		s.conns[side] = [2]*net.UDPConn{}
		s.r.free.push(s.ports[side])
	}
}

// read is the goroutine of one socket. It ends when the socket is closed.
func (s *Session) read(side Side, k kind, buf []byte) {
	defer s.wg.Done()
	c := s.conns[side][k]
	for {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.closed.Load() {
				return
			}
			// A transient error (an ICMP error reported on some systems):
			// keep reading, without spinning if it repeats.
			time.Sleep(time.Millisecond)
			continue
		}
		s.forward(side, k, buf[:n], src)
	}
}

// forward relays one packet that arrived on side's socket of kind k from
// src. It must not allocate: it runs for every packet.
func (s *Session) forward(side Side, k kind, pkt []byte, src netip.AddrPort) {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	// Only RTP and RTCP are relayed: anything else (a datagram cut short,
	// a probe, junk) would otherwise let the relay carry arbitrary traffic
	// from behind the PBX's address.
	if len(pkt) >= readBufSize || (k == rtpKind && !validRTP(pkt)) || (k == rtcpKind && !validRTCP(pkt)) ||
		s.r.ownPort(src) { // a packet from our own ports is a loop (see usablePeer)
		s.drops.Add(1)
		return
	}
	other := 1 - side

	s.mu.Lock()
	l := &s.latch[side][k]
	latched := false
	if !l.IsValid() {
		if !s.latchableLocked(side, k, src) {
			s.mu.Unlock()
			s.drops.Add(1)
			s.alien.Add(1)
			return
		}
		// Latch to the first valid packet's source, not to the address in
		// the SDP: a phone behind NAT announces its private address but
		// sends from the NAT's public one (symmetric RTP, RFC 4961).
		*l = src
		latched = true
	} else if *l != src && src == s.announcedLocked(side, k) {
		// The address the side's SDP announced takes its stream back from
		// an earlier latch: that one came from somebody else sending to
		// the port first (a forked callee that lost the race to answer).
		*l = src
		latched = true
	} else if *l != src {
		// Never follow any other later source: re-latching to whoever
		// sent last would let any third party that learns the port take
		// over the audio (hijack, or inject speech into the call). A phone
		// whose address really changes says so with a re-INVITE (SetPeer).
		first := !s.warned[side]
		s.warned[side] = true
		latchedTo := *l
		s.mu.Unlock()
		s.drops.Add(1)
		s.alien.Add(1)
		if first {
			s.log.Warn("media: dropped packet from a source other than the latched one",
				"side", side, "rtcp", k == rtcpKind, "src", src, "latched", latchedTo)
		}
		return
	}
	dst := s.destLocked(other, k)
	muted := k == rtpKind && s.playing[other]
	var tap func([]byte)
	if k == rtpKind {
		tap = s.tap[side]
	}
	s.mu.Unlock()
	if tap != nil {
		tap(pkt)
	}

	if latched {
		s.log.Debug("media: latched", "side", side, "rtcp", k == rtcpKind, "src", src)
	}
	s.heard.Add(1)
	if muted {
		return
	}
	if !dst.IsValid() {
		s.drops.Add(1)
		return
	}
	if _, err := s.conns[other][k].WriteToUDPAddrPort(pkt, dst); err != nil {
		s.drops.Add(1)
		return
	}
	s.fwd[side].Add(1)
}

// strictWindow is how long after SetPeer a side's RTP latches only to
// the address its SDP announced.
const strictWindow = 200 * time.Millisecond

// announcedLocked is the address side's SDP announced for kind k (RTCP
// on the next port, RFC 3550 section 11); zero if none.
func (s *Session) announcedLocked(side Side, k kind) netip.AddrPort {
	p := s.peer[side]
	if !p.IsValid() || k == rtpKind {
		return p
	}
	if p.Port() == 65535 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(p.Addr(), p.Port()+1)
}

// latchableLocked reports whether side's k socket may latch to src. RTP may
// latch to any source. RTCP may latch only to the address RTP latched to,
// or before that to the address the SDP announced, with any port. RTCP
// comes every few seconds (RFC 3550 section 6.2), not every 20 ms, so
// without this a third party would have seconds, not milliseconds, to
// claim the RTCP path of a new call and read its reports.
func (s *Session) latchableLocked(side Side, k kind, src netip.AddrPort) bool {
	if k == rtpKind {
		// Right after a side's SDP is known, only the address it
		// announced may latch: a forked callee that lost the race to
		// answer sends to the same port until its BYE arrives, and its
		// stream must not reach the caller even for a moment (a phone
		// that hears one SSRC, then another, may stay silent). A phone
		// behind NAT, sending from elsewhere, latches once the window
		// has passed.
		p := s.peer[side]
		return !p.IsValid() || src == p || !time.Now().Before(s.strictUntil[side])
	}
	ref := s.latch[side][rtpKind]
	if !ref.IsValid() {
		ref = s.peer[side]
	}
	return !ref.IsValid() || ref.Addr() == src.Addr()
}

// destLocked returns where a packet of kind k toward side goes: the source
// it latched to, else the address its SDP announced. For RTCP that has not
// latched, the RTP address with port+1 (RFC 3550 section 11).
func (s *Session) destLocked(side Side, k kind) netip.AddrPort {
	if d := s.latch[side][k]; d.IsValid() {
		return d
	}
	d := s.latch[side][rtpKind]
	if !d.IsValid() {
		d = s.peer[side]
	}
	if k == rtpKind || !d.IsValid() {
		return d
	}
	if d.Port() == 65535 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(d.Addr(), d.Port()+1)
}

// idleDue reports that the session has heard nothing for timeout while
// both sides have a peer and the call is not on hold: once, until SetPeer
// or SetHold restarts the clock. Only the relay's idle goroutine calls it.
func (s *Session) idleDue(now time.Time, timeout time.Duration) bool {
	heard := s.heard.Load()
	s.mu.Lock()
	armed := s.peerSet[SideA] && s.peerSet[SideB] && !s.hold
	restart := s.restart
	s.restart = false
	s.mu.Unlock()
	if restart {
		s.idleFired = false
	}
	if !armed || restart || heard != s.idleHeard || s.idleSince.IsZero() {
		s.idleHeard, s.idleSince = heard, now
		return false
	}
	if s.idleFired || s.onIdle == nil || s.closed.Load() || now.Sub(s.idleSince) < timeout {
		return false
	}
	s.idleFired = true
	s.log.Info("media: no media, session idle", "for", now.Sub(s.idleSince))
	return true
}
