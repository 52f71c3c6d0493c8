package pbx

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/guard"
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
// sipgo parses a byte of them: the cheapest point there is.
type guardedConn struct {
	net.PacketConn
	g *guard.Guard
}

func (c guardedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			return n, addr, err
		}
		if ua, ok := addr.(*net.UDPAddr); ok {
			if ip, ok := netip.AddrFromSlice(ua.IP); ok && !c.g.Admit(ip) {
				continue
			}
		}
		return n, addr, nil
	}
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
		h(req, tx)
	}
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
