// Package media anchors the audio of calls on the PBX: it rewrites the
// session descriptions of both legs to point at the PBX's own RTP ports,
// and relays RTP and RTCP between the two phones without transcoding, so
// PCMU, PCMA, G.722, opus and telephone-event pass through as they are.
//
// A Relay owns a range of UDP ports. Each call opens a Session, which binds
// an RTP and an RTCP socket (an even port and the next odd one, RFC 3550
// section 11) for each side: SideA toward the caller, SideB toward the
// callee. A packet that arrives on one side is sent out of the other side's
// socket to that side's phone. Each side latches to the source of the first
// valid RTP packet it receives and drops packets from any other source
// afterwards. When neither side sends anything for Config.IdleTimeout the
// session reports it, so the call can be ended and recorded.
//
// The package knows nothing of SIP. The B2BUA calls ParseSDP and
// RewriteSDP on each leg's description, SetPeer with what ParseSDP found,
// and maps ErrBadSDP to 488 and ErrExhausted to 503.
//
// The forwarding path does not allocate: each socket has one reader
// goroutine with a buffer of its own, addresses are netip.AddrPort values
// and counters are atomic.
package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// ErrExhausted is returned by Open when no free RTP/RTCP port pairs are
// left in the range. The B2BUA answers it with 503 Service Unavailable.
var ErrExhausted = errors.New("media: no free ports")

// ErrClosed is returned by Open after Close.
var ErrClosed = errors.New("media: relay closed")

// Config configures a Relay.
type Config struct {
	// BindIP is the address the RTP sockets bind to, such as 0.0.0.0 or
	// 127.0.0.1.
	BindIP net.IP
	// Advertise is the address written into rewritten SDP. It must be a
	// unicast address the phones can reach.
	Advertise net.IP
	// PortMin and PortMax are the inclusive port range. PortMin is even;
	// each session uses 4 ports (RTP and RTCP for each side), so the range
	// holds (PortMax-PortMin+1)/4 sessions.
	PortMin, PortMax int
	// IdleTimeout is how long a session may go without RTP or RTCP from
	// either side before its onIdle runs; 0 disables the check. The clock
	// runs only while both sides have a peer (SetPeer) and the session is
	// not on hold (SetHold), and every SetPeer or SetHold call starts it
	// again (a new offer or answer gives the media a fresh chance).
	IdleTimeout time.Duration
	// Log receives latching and dropping events; nil discards them.
	Log *slog.Logger
}

// Relay allocates ports and relays media for sessions. Its methods are safe
// for concurrent use.
type Relay struct {
	bind      netip.Addr
	advertise netip.Addr
	portMin   int
	portMax   int
	idle      time.Duration
	log       *slog.Logger
	// loopbackOK allows SDP to name loopback addresses: only when the
	// relay itself sits on loopback (tests, benchmarks, one-host setups).
	loopbackOK bool

	// mu guards the free port pairs, the open sessions and closed.
	mu       sync.Mutex
	free     portQueue
	sessions map[*Session]struct{}
	closed   bool

	stop chan struct{}  // closed by Close; ends the idle goroutine
	bg   sync.WaitGroup // the idle goroutine and running onIdle callbacks
}

// New checks cfg and returns a Relay. It binds nothing until Open.
func New(cfg Config) (*Relay, error) {
	bind, ok := netip.AddrFromSlice(cfg.BindIP)
	if !ok {
		return nil, fmt.Errorf("media: config: BindIP %v is not an IP address", cfg.BindIP)
	}
	adv, ok := netip.AddrFromSlice(cfg.Advertise)
	if !ok {
		return nil, fmt.Errorf("media: config: Advertise %v is not an IP address", cfg.Advertise)
	}
	bind, adv = bind.Unmap(), adv.Unmap()
	if bind.IsMulticast() {
		return nil, fmt.Errorf("media: config: BindIP %v is multicast", bind)
	}
	if adv.IsUnspecified() || adv.IsMulticast() {
		return nil, fmt.Errorf("media: config: Advertise %v must be a unicast address the phones can reach", adv)
	}
	switch {
	case cfg.PortMin < 1 || cfg.PortMax > 65535 || cfg.PortMin > cfg.PortMax:
		return nil, fmt.Errorf("media: config: port range %d-%d is not within 1-65535", cfg.PortMin, cfg.PortMax)
	case cfg.PortMin%2 != 0:
		return nil, fmt.Errorf("media: config: PortMin %d must be even (RTP takes even ports, RFC 3550 section 11)", cfg.PortMin)
	case cfg.PortMax-cfg.PortMin+1 < 4:
		return nil, fmt.Errorf("media: config: port range %d-%d holds less than one session (4 ports)", cfg.PortMin, cfg.PortMax)
	case cfg.IdleTimeout < 0:
		return nil, fmt.Errorf("media: config: IdleTimeout %v is negative", cfg.IdleTimeout)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Relay{
		bind:       bind,
		advertise:  adv,
		portMin:    cfg.PortMin,
		portMax:    cfg.PortMax,
		idle:       cfg.IdleTimeout,
		log:        log,
		loopbackOK: bind.IsLoopback() || adv.IsLoopback(),
		sessions:   make(map[*Session]struct{}),
		stop:       make(chan struct{}),
	}
	r.free.q = make([]int, 0, (cfg.PortMax-cfg.PortMin+1)/2)
	for p := cfg.PortMin; p+1 <= cfg.PortMax; p += 2 {
		r.free.q = append(r.free.q, p)
	}
	r.free.n = len(r.free.q)
	if r.idle > 0 {
		r.bg.Add(1)
		go r.idleLoop()
	}
	return r, nil
}

// Open allocates two RTP/RTCP port pairs, binds them and starts relaying.
// onIdle, if not nil, runs in a goroutine of its own when the session has
// seen no media for Config.IdleTimeout; it runs once per quiet spell: again
// only if a later SetPeer or SetHold restarted the clock (so a callback
// that ignores an idle spell while the call still rings is called again
// after the answer's SetPeer). It may call Session.Close but must not call
// Relay.Close. Open returns ErrExhausted
// when the range has no two free pairs that bind, and ErrClosed after
// Close.
func (r *Relay) Open(onIdle func()) (*Session, error) {
	s := &Session{r: r, onIdle: onIdle}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	var busy []int // pairs another process holds; back in the queue at the end
	defer func() {
		for _, p := range busy {
			r.free.push(p)
		}
	}()
	for side := SideA; side <= SideB; side++ {
		for {
			port, ok := r.free.pop()
			if !ok {
				s.unbindLocked()
				return nil, ErrExhausted
			}
			rtp, rtcp, err := r.bindPair(port)
			if err == nil {
				s.ports[side] = port
				s.conns[side] = [2]*net.UDPConn{rtp, rtcp}
				break
			}
			if errors.Is(err, syscall.EADDRINUSE) {
				// Another program holds the port: skip it for now, try it
				// again when it comes round the queue.
				r.log.Debug("media: port in use, skipped", "port", port, "err", err)
				busy = append(busy, port)
				continue
			}
			r.free.push(port)
			s.unbindLocked()
			return nil, fmt.Errorf("media: binding port %d: %w", port, err)
		}
	}
	s.log = r.log.With("port_a", s.ports[SideA], "port_b", s.ports[SideB])
	r.sessions[s] = struct{}{}
	for side := SideA; side <= SideB; side++ {
		for k := rtpKind; k <= rtcpKind; k++ {
			s.wg.Add(1)
			go s.read(side, k, make([]byte, readBufSize))
		}
	}
	return s, nil
}

// bindPair binds the RTP port and the RTCP port after it.
func (r *Relay) bindPair(port int) (rtp, rtcp *net.UDPConn, err error) {
	network := "udp4"
	if r.bind.Is6() {
		network = "udp6"
	}
	rtp, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.bind, uint16(port))))
	if err != nil {
		return nil, nil, err
	}
	rtcp, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.bind, uint16(port+1))))
	if err != nil {
		rtp.Close()
		return nil, nil, err
	}
	return rtp, rtcp, nil
}

// release returns a closed session's ports to the back of the queue.
func (r *Relay) release(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sessions, s)
	s.unbindLocked()
}

// Active returns the number of open sessions.
func (r *Relay) Active() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

// Close closes every session, stops the idle check and waits for every
// goroutine of the relay to end, including running onIdle callbacks. Open
// fails with ErrClosed afterwards. Close is idempotent.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.bg.Wait()
		return nil
	}
	r.closed = true
	open := make([]*Session, 0, len(r.sessions))
	for s := range r.sessions {
		open = append(open, s)
	}
	r.mu.Unlock()
	close(r.stop)
	for _, s := range open {
		s.Close()
	}
	r.bg.Wait()
	return nil
}

// idleLoop checks every session's packet count on a ticker: one timer for
// the relay instead of one per session or per packet.
func (r *Relay) idleLoop() {
	defer r.bg.Done()
	tick := min(max(r.idle/10, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	var open []*Session // reused between ticks
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			r.mu.Lock()
			open = open[:0]
			for s := range r.sessions {
				open = append(open, s)
			}
			r.mu.Unlock()
			for _, s := range open {
				if s.idleDue(now, r.idle) {
					r.bg.Add(1)
					go func() {
						defer r.bg.Done()
						s.onIdle()
					}()
				}
			}
			clear(open) // let closed sessions go
		}
	}
}

// ownAddr reports whether a is an address of this relay's sockets.
func (r *Relay) ownAddr(a netip.Addr) bool {
	return a == r.advertise || a == r.bind || (r.bind.IsUnspecified() && a.IsLoopback())
}

// ownPort reports whether ap is, or could be, one of the relay's own
// sockets.
func (r *Relay) ownPort(ap netip.AddrPort) bool {
	p := int(ap.Port())
	return p >= r.portMin && p <= r.portMax && r.ownAddr(ap.Addr())
}

// portQueue is a FIFO of free even ports. FIFO, not LIFO: a port freed by
// a call that just ended is reused as late as possible, so stray packets
// still in flight from the old call's phones are unlikely to reach, and
// latch, the next call's session.
type portQueue struct {
	q    []int
	head int
	n    int
}

func (p *portQueue) pop() (int, bool) {
	if p.n == 0 {
		return 0, false
	}
	port := p.q[p.head]
	p.head = (p.head + 1) % len(p.q)
	p.n--
	return port, true
}

func (p *portQueue) push(port int) {
	p.q[(p.head+p.n)%len(p.q)] = port
	p.n++
}
