package test

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStreamAbuseBounded: connections that abuse TCP and TLS cost the
// server nothing lasting. A connection that never speaks (plain TCP, and
// a TLS handshake left half-open) is closed within seconds; a 100 KiB
// header flood is refused and its connection closed; and meanwhile, and
// afterwards, a phone is still answered.
func TestStreamAbuseBounded(t *testing.T) {
	p := startPBX(t)
	tlsAddr := net.JoinHostPort(p.IP, strconv.Itoa(p.TLSPort))
	var wg sync.WaitGroup
	closedWithin := func(name, addr string, send []byte, within time.Duration) {
		defer wg.Done()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.2.1")}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Errorf("%s: dial: %v", name, err)
			return
		}
		defer c.Close()
		start := time.Now()
		if len(send) > 0 {
			c.Write(send) // may fail half way once the server gives up: that is the point
		}
		c.SetReadDeadline(start.Add(within + 5*time.Second))
		buf := make([]byte, 4096)
		for {
			_, err := c.Read(buf)
			if err == nil {
				continue // a response (or part of one) before the close
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("%s: still open after %v", name, time.Since(start).Round(time.Second))
			} else if took := time.Since(start); took > within {
				t.Errorf("%s: closed after %v, want within %v", name, took.Round(time.Second), within)
			}
			return
		}
	}
	flood := "REGISTER sip:127.0.0.1 SIP/2.0\r\n" + strings.Repeat("X-Flood: "+strings.Repeat("a", 90)+"\r\n", 1100) + "\r\n"
	wg.Add(3)
	go closedWithin("silent TCP", p.SIPAddr(), nil, 12*time.Second)
	go closedWithin("half-open TLS", tlsAddr, nil, 12*time.Second)
	go closedWithin("100 KiB of headers", p.SIPAddr(), []byte(flood), 12*time.Second)

	// The PBX answers a phone while the abusers hold their connections.
	u, err := net.Dial("udp", p.SIPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.Write([]byte(sipRequest("OPTIONS sip:127.0.0.1 SIP/2.0", "opt1", nil)))
	u.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	if n, err := u.Read(buf); err != nil || !bytes.HasPrefix(buf[:n], []byte("SIP/2.0 200")) {
		t.Errorf("OPTIONS during the abuse: %q %v", buf[:n], err)
	}
	wg.Wait()
}
