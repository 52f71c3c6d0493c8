package vpn

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"golang.zx2c4.com/wireguard/conn"
)

// udpBind is WireGuard's UDP socket on exactly the --vpn-listen address.
// wireguard-go's own bind always listens on every address of the host;
// this one listens where the administrator said (127.0.0.1 in the tests,
// one interface on a unit) and nowhere else. One packet per read: the
// console needs no throughput.
type udpBind struct {
	addr string

	mu   sync.Mutex
	conn *net.UDPConn
}

func newUDPBind(addr string) *udpBind { return &udpBind{addr: addr} }

// endpoint is a peer's UDP address as last seen.
type endpoint struct{ ap netip.AddrPort }

func (e endpoint) ClearSrc()           {}
func (e endpoint) SrcToString() string { return "" }
func (e endpoint) DstToString() string { return e.ap.String() }
func (e endpoint) DstToBytes() []byte {
	b, _ := e.ap.MarshalBinary()
	return b
}
func (e endpoint) DstIP() netip.Addr { return e.ap.Addr() }
func (e endpoint) SrcIP() netip.Addr { return netip.Addr{} }

// Open implements conn.Bind. port is what the device last bound; it is
// used only when --vpn-listen asked for any port (0), so that the port
// stays the same if the device goes down and up again.
func (b *udpBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	ua, err := net.ResolveUDPAddr("udp", b.addr)
	if err != nil {
		return nil, 0, fmt.Errorf("vpn: listen %s: %w", b.addr, err)
	}
	if ua.Port == 0 && port != 0 {
		ua.Port = int(port)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, 0, fmt.Errorf("vpn: listen %s: %w", net.JoinHostPort(ua.IP.String(), strconv.Itoa(ua.Port)), err)
	}
	b.conn = c
	recv := func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, ap, err := c.ReadFromUDPAddrPort(packets[0])
		if err != nil {
			return 0, err // net.ErrClosed after Close
		}
		sizes[0], eps[0] = n, endpoint{ap}
		return 1, nil
	}
	return []conn.ReceiveFunc{recv}, uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
}

// Close implements conn.Bind.
func (b *udpBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return nil
	}
	err := b.conn.Close()
	b.conn = nil
	return err
}

// SetMark implements conn.Bind; marks are not used.
func (b *udpBind) SetMark(uint32) error { return nil }

// Send implements conn.Bind.
func (b *udpBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(endpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	b.mu.Lock()
	c := b.conn
	b.mu.Unlock()
	if c == nil {
		return net.ErrClosed
	}
	for _, buf := range bufs {
		if _, err := c.WriteToUDPAddrPort(buf, e.ap); err != nil {
			return err
		}
	}
	return nil
}

// ParseEndpoint implements conn.Bind.
func (b *udpBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	return endpoint{ap}, nil
}

// BatchSize implements conn.Bind.
func (b *udpBind) BatchSize() int { return 1 }

// localAddr is the bound address, nil while closed.
func (b *udpBind) localAddr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return nil
	}
	return b.conn.LocalAddr()
}
