package pbx

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/guard"
	"github.com/sekisho/sekisho/internal/response"
	"github.com/sekisho/sekisho/internal/retrans"
)

// ScannersFile is the editable scanner list in the data directory.
const ScannersFile = "scanners.txt"

// loadScanners reads DATA/scanners.txt, writing the bundled list there
// first if it is missing.
func loadScanners(dir string) (string, error) {
	path := filepath.Join(dir, ScannersFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(path, []byte(guard.DefaultScanners()), 0o600); err != nil {
			return "", err
		}
		return guard.DefaultScanners(), nil
	}
	return string(b), err
}

// guardedConn drops datagrams from banned or over-rate sources before
// sipgo parses a byte of them: the cheapest point there is. Then it
// answers retransmitted REGISTERs whose transaction has ended from the
// response cache (see package retrans), and tells that cache of every
// datagram sent.
type guardedConn struct {
	net.PacketConn
	g       *guard.Guard
	answers *retrans.Cache
}

func (c guardedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			return n, addr, err
		}
		if ua, ok := addr.(*net.UDPAddr); ok {
			ap := ua.AddrPort()
			if !c.g.Admit(ap.Addr()) {
				continue
			}
			if resp, ok := c.answers.Lookup(ap, b[:n]); ok {
				// The guard admitted this source above, so a spoofed
				// retransmission costs it the same rate as a new request,
				// and the copy only ever goes to the address the
				// original answer went to.
				c.PacketConn.WriteTo(resp, addr)
				continue
			}
		}
		return n, addr, nil
	}
}

func (c guardedConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(b, addr)
	if err == nil {
		if ua, ok := addr.(*net.UDPAddr); ok {
			c.answers.Sent(ua.AddrPort(), b)
		}
	}
	return n, err
}

// guardedListener closes connections from banned or over-rate sources
// as soon as they are accepted, and bounds how long a connection may sit
// without sending anything (a half-open or dribbling peer costs one
// socket for at most that long).
type guardedListener struct {
	net.Listener
	g    *guard.Guard
	idle time.Duration
}

func (l guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return c, err
		}
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			if ip, ok := netip.AddrFromSlice(ta.IP); ok && !l.g.Admit(ip) {
				c.Close()
				continue
			}
		}
		c.SetReadDeadline(time.Now().Add(firstRead))
		return &idleConn{Conn: c, idle: l.idle}, nil
	}
}

// idleConn bounds a stream connection in time. The first read (a TLS
// handshake, or the first request) has firstRead, so a half-open handshake
// ties a socket up for seconds; after that the connection may be silent
// for idle between messages; and a message must be whole within
// slowMessage of its first byte, so a peer dribbling one byte at a time
// (slowloris) cannot hold a connection and a parser buffer for ever.
// Message size is bounded by sipgo's parser (64 KiB).
type idleConn struct {
	net.Conn
	idle     time.Duration
	seen     bool
	msgStart time.Time // first byte of a message whose headers have not ended
	tail     []byte    // last bytes read, to find a header end split across reads
}

// errSlowMessage ends a connection whose message takes too long to arrive.
var errSlowMessage = errors.New("pbx: message not complete in time; connection closed")

func (c *idleConn) Read(b []byte) (int, error) {
	now := time.Now()
	if c.seen {
		deadline := now.Add(c.idle)
		if !c.msgStart.IsZero() {
			deadline = c.msgStart.Add(slowMessage)
		}
		c.Conn.SetReadDeadline(deadline)
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.seen = true
		c.track(b[:n], now)
		if !c.msgStart.IsZero() && time.Since(c.msgStart) > slowMessage {
			c.Conn.Close()
			return 0, errSlowMessage
		}
	}
	return n, err
}

// track notes whether data ends the headers of the message in progress
// (or is only keep-alive CRLFs); otherwise it starts or continues one.
func (c *idleConn) track(data []byte, now time.Time) {
	joined := append(c.tail, data...)
	switch {
	case bytes.Contains(joined, []byte("\r\n\r\n")):
		c.msgStart = time.Time{}
	case len(bytes.Trim(data, "\r\n")) == 0:
		// Keep-alive (RFC 5626 double CRLF): not a message.
	case c.msgStart.IsZero():
		c.msgStart = now
	}
	if len(joined) > 3 {
		joined = joined[len(joined)-3:]
	}
	c.tail = append(c.tail[:0], joined...)
}

// slowMessage is how long the headers of one message may take to arrive.
const slowMessage = 20 * time.Second

// firstRead is how long a new connection may take to say anything.
const firstRead = 10 * time.Second

// tcpIdle is how long a SIP connection may be silent. Phones on TCP send
// keep-alives (CRLF) every 30 s or so, or re-register well within this.
const tcpIdle = 5 * time.Minute

func sourceOf(req *sip.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// door wraps a request handler with the checks every request passes
// before anything else: a source banned since its connection opened gets
// silence, and a scanner's User-Agent bans its source on first sight
// (svmap, svwar and svcrack announce themselves; answering them at all
// tells them a PBX is here).
func (s *Server) door(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		src := sourceOf(req)
		if s.guard.Banned(src) {
			return
		}
		if f := s.guard.Scanner(headerValue(req, "User-Agent")); f != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.guard.Ban(ctx, src, "scanner fingerprint "+f+" in User-Agent", 0, "pbx")
			cancel()
			return
		}
		if req.Method == sip.REGISTER {
			// Shed load instead of queueing it: past maxRegistering
			// registrations in progress the CPU is already behind, every
			// further one waits longer than the phone's retransmission
			// timer (500 ms) and the retransmissions double the load
			// until nothing completes. An immediate 503 with Retry-After
			// costs a fraction of a registration and tells the phone to
			// come back later (RFC 3261 21.5.4), so the ones in progress
			// finish in time.
			if n := s.registering.Add(1); n > maxRegistering {
				s.registering.Add(-1)
				s.shed.Add(1)
				res := response.New(req, 503)
				res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(shedRetryAfter)))
				tx.Respond(res)
				s.endRegister(req, tx)
				return
			}
			defer s.registering.Add(-1)
		}
		h(req, tx)
		s.endRegister(req, tx)
	}
}

// maxRegistering is how many REGISTERs may be handled at once before new
// ones are answered 503. Healthy, at 10,000 a second on two cores, a few
// dozen are; a queue of this many is under 100 ms of work, well before
// the phones' 500 ms retransmissions start, and high enough that a brief
// stall (another process taking the CPU) delays registrations rather
// than failing them (256 did, on a shared machine).
const maxRegistering = 1024

// shedRetryAfter is the Retry-After of a shed REGISTER, in seconds.
const shedRetryAfter = 5

// endRegister ends a REGISTER transaction over UDP as soon as its final
// response is in the response cache, instead of keeping it for Timer J
// (32 s): the cache answers any retransmission from then on, for a tenth
// of the memory. If the response is not cached (sent to a Via address
// other than the source, or the cache is full), sipgo keeps the
// transaction as usual.
func (s *Server) endRegister(req *sip.Request, tx sip.ServerTransaction) {
	if req.Method != sip.REGISTER || req.Transport() != "UDP" || s.answers == nil {
		return
	}
	stx, ok := tx.(*sip.ServerTx)
	if !ok {
		return
	}
	via := req.Via()
	if via == nil {
		return
	}
	branch, _ := via.Params.Get("branch")
	src, err := netip.ParseAddrPort(req.Source())
	if err != nil || !s.answers.Has(src, branch) {
		return
	}
	stx.Terminate()
}

// inPhoneNetworks reports whether a is in the configured phone networks.
func (s *Server) inPhoneNetworks(a netip.Addr) bool {
	for _, n := range s.phoneNets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}
