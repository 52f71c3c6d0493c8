//go:build !linux

package pbx

import (
	"context"
	"net"
)

// listenUDP opens the SIP UDP socket and asks for a receive buffer of size
// bytes (the kernel may grant less).
func listenUDP(ctx context.Context, addr string, size int) (net.PacketConn, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	if u, ok := pc.(*net.UDPConn); ok {
		u.SetReadBuffer(size)
	}
	return pc, nil
}
