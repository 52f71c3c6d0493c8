package media

// validRTP reports whether b is an RTP packet (RFC 3550 section 5.1) the
// relay may latch onto and forward: at least the 12-byte fixed header,
// version 2, the CSRC list and header extension (RFC 3550 section 5.3.1,
// RFC 8285) inside the packet, and padding (RFC 3550 section 5.1, P bit)
// no longer than what follows the header.
//
// It accepts exactly what github.com/pion/rtp's Packet.Unmarshal accepts
// with Version 2 (FuzzValidRTP checks this), without building a Packet: the
// pion parser allocates error values and extension slices, and the relay
// must not allocate per packet, least of all for packets an attacker
// crafts.
func validRTP(b []byte) bool {
	if len(b) < 12 || b[0]>>6 != 2 {
		return false
	}
	n := 12 + 4*int(b[0]&0x0f)
	if len(b) < n {
		return false
	}
	hdrEnd := n
	if b[0]&0x10 != 0 {
		if len(b) < n+4 {
			return false
		}
		profile := uint16(b[n])<<8 | uint16(b[n+1])
		end := n + 4 + 4*(int(b[n+2])<<8|int(b[n+3]))
		n += 4
		if len(b) < end {
			return false
		}
		hdrEnd = end
		switch profile {
		case 0xBEDE: // one-byte elements, RFC 8285 section 4.2
		oneByte:
			for n < end {
				if b[n] == 0 { // padding byte
					n++
					continue
				}
				id, l := b[n]>>4, int(b[n]&0x0f)+1
				n++
				if id == 15 || id == 0 { // reserved: stop reading elements
					break oneByte
				}
				if n+l > end {
					return false
				}
				n += l
			}
		case 0x1000: // two-byte elements, RFC 8285 section 4.3
			for n < end {
				if b[n] == 0 {
					n++
					continue
				}
				n++
				if end <= n {
					return false
				}
				l := int(b[n])
				n++
				if n+l > end {
					return false
				}
				n += l
			}
		}
	}
	if b[0]&0x20 != 0 {
		if len(b) <= hdrEnd {
			return false
		}
		pad := int(b[len(b)-1])
		if pad == 0 || len(b)-pad < hdrEnd {
			return false
		}
	}
	return true
}

// validRTCP reports whether b starts like an RTCP compound packet: at least
// a 4-byte header and SSRC, version 2, a packet type in the RTCP range
// 192-223 (RFC 5761 section 4, which keeps RTCP apart from RTP payload
// types), and a first packet whose length field fits in b (RFC 3550
// section 6.4.1). The stricter compound checks of RFC 3550 appendix A.2 are
// left out because SRTCP and reduced-size RTCP (RFC 5506) break them.
func validRTCP(b []byte) bool {
	if len(b) < 8 || b[0]>>6 != 2 || b[1] < 192 || b[1] > 223 {
		return false
	}
	return 4*(int(b[2])<<8|int(b[3])+1) <= len(b)
}
