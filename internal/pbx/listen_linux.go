package pbx

import (
	"context"
	"net"
	"syscall"
)

// listenUDP opens the SIP UDP socket with a receive buffer of size bytes.
// SO_RCVBUFFORCE (root or CAP_NET_ADMIN) goes past net.core.rmem_max;
// otherwise SO_RCVBUF is set as far as the kernel allows. A small buffer
// drops REGISTERs under load (about 1,000/s with the default), and a
// dropped packet under flood is a phone that cannot register.
func listenUDP(ctx context.Context, addr string, size int) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if e := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, size); e != nil {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.ListenPacket(ctx, "udp", addr)
}
