package media

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// ErrBadSDP is returned (wrapped) by ParseSDP and RewriteSDP for a session
// description that does not parse or has no audio stream the relay can
// carry. The B2BUA answers it with 488 Not Acceptable Here (RFC 3261
// section 21.4.26).
var ErrBadSDP = errors.New("media: unusable SDP")

// maxSDPSize bounds the body handed to the SDP parser. A real offer is a
// few hundred bytes; the bound stops a peer from making every INVITE cost
// a parse of megabytes.
const maxSDPSize = 64 << 10

// Offer is what the relay needs from one side's session description: where
// that side wants to receive the audio stream, and in which direction it
// flows.
type Offer struct {
	// Addr is the first usable audio stream's RTP address as announced:
	// the media-level c= address, else the session-level one, and the m=
	// port. The address is 0.0.0.0 (or ::) when the side puts the call on
	// hold the RFC 2543 way; SetPeer treats that as "no address".
	Addr netip.AddrPort
	// Direction is the stream's direction attribute (RFC 3264 section
	// 5.1): sendrecv, sendonly, recvonly or inactive; sendrecv when the
	// description has none at media or session level.
	Direction string
	// Format is the stream's first payload type (the sender's preferred
	// codec; in an answer, the one it chose), -1 if it is not a number.
	Format int
}

// ParseSDP reads the first usable audio stream of a session description
// (RFC 4566): an m=audio line with a non-zero port, a single port, an RTP
// transport and at least one format. It returns an error wrapping ErrBadSDP
// if the body does not parse, has no such stream, or gives the stream an
// address that is not a unicast IP literal.
func ParseSDP(body []byte) (Offer, error) {
	sd, err := parseSDP(body)
	if err != nil {
		return Offer{}, err
	}
	_, off, err := audioStream(sd)
	return off, err
}

// RewriteSDP anchors a session description on the relay: every c= line,
// at session and media level, gets addr; the first usable audio stream (the
// one ParseSDP reports) gets rtpPort on its m= line and rtpPort+1 in its
// a=rtcp attribute (RFC 3605) if it has one; every other m= line gets port 0,
// which rejects that stream (RFC 3264 section 6), because only one audio
// stream is relayed. Codecs, directions and all other lines are kept as they
// are, with their line endings. A c= line with the unspecified address
// (RFC 2543 hold) is kept, so the hold reaches the other side.
//
// The body must pass ParseSDP, else the error wraps ErrBadSDP. The result
// always passes ParseSDP and reports addr (or the unspecified address) and
// rtpPort.
func RewriteSDP(body []byte, addr netip.Addr, rtpPort int) ([]byte, error) {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsUnspecified() || addr.IsMulticast() || addr.Zone() != "" {
		return nil, fmt.Errorf("media: rewrite address %v is not a unicast address", addr)
	}
	if rtpPort < 1 || rtpPort > 65534 {
		return nil, fmt.Errorf("media: rewrite port %d out of range (RTCP needs port+1)", rtpPort)
	}
	sd, err := parseSDP(body)
	if err != nil {
		return nil, err
	}
	audio, _, err := audioStream(sd)
	if err != nil {
		return nil, err
	}

	addrType := "IP4"
	if addr.Is6() {
		addrType = "IP6"
	}
	conn := "c=IN " + addrType + " " + addr.String()
	port := strconv.Itoa(rtpPort)
	rtcp := strconv.Itoa(rtpPort + 1)

	out := make([]byte, 0, len(body)+64)
	section := -1 // -1 is the session level, then the index of the m= section
	for rest := body; len(rest) > 0; {
		var line, eol []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, eol, rest = rest[:i], rest[i:i+1], rest[i+1:]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line, eol = line[:n-1], []byte("\r\n")
			}
		} else {
			line, rest = rest, nil
		}
		if len(line) >= 2 && line[1] == '=' {
			switch line[0] {
			case 'm':
				section++
				if section == audio {
					line = replaceMediaPort(line, port)
				} else {
					line = replaceMediaPort(line, "0")
				}
			case 'c':
				if !unspecifiedConn(line) {
					line = []byte(conn)
				}
			case 'o':
				// The origin carries the phone's own (often private)
				// address: hand out the relay's instead.
				line = rewriteOrigin(line, addrType, addr)
			case 'a':
				if isICE(line) {
					// ICE candidates would let the two phones find each
					// other and send media around the relay, where no
					// policy, count or timeout applies: drop them.
					continue
				}
				if section == audio && bytes.HasPrefix(line, []byte("a=rtcp:")) {
					line = rewriteRTCPAttr(line, rtcp, addrType, addr)
				}
			}
		}
		out = append(out, line...)
		out = append(out, eol...)
	}
	if section != len(sd.MediaDescriptions)-1 {
		// The line walk and the parser disagree on the media sections;
		// refuse rather than forward a description only half rewritten.
		return nil, fmt.Errorf("%w: media sections ambiguous", ErrBadSDP)
	}

	// The rewritten body must say what we promised: the peer must find the
	// relay's address and port, not the phone's. Anything else would leak
	// the phone's address or route media around the relay.
	off, err := ParseSDP(out)
	if err != nil {
		return nil, fmt.Errorf("%w: rewritten description does not parse: %w", ErrBadSDP, err)
	}
	if int(off.Addr.Port()) != rtpPort || (off.Addr.Addr() != addr && !off.Addr.Addr().IsUnspecified()) {
		return nil, fmt.Errorf("%w: rewritten description announces %v", ErrBadSDP, off.Addr)
	}
	return out, nil
}

// parseSDP parses body with pion/sdp after the checks the parser does not
// make.
func parseSDP(body []byte) (*sdp.SessionDescription, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrBadSDP)
	}
	if len(body) > maxSDPSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadSDP, len(body), maxSDPSize)
	}
	// RFC 4566 section 5 ends lines with CRLF or LF. The parser also takes a
	// lone CR as a line end, where RewriteSDP would not: a c= line hidden
	// behind a lone CR would then escape the rewrite and leak the phone's
	// address or steer the peer's media around the relay (a parser
	// differential). Refuse lone CRs.
	for i, b := range body {
		if b == '\r' && (i+1 == len(body) || body[i+1] != '\n') {
			return nil, fmt.Errorf("%w: CR without LF at byte %d", ErrBadSDP, i)
		}
	}
	if err := checkLines(body); err != nil {
		return nil, err
	}
	text := string(body)
	if body[len(body)-1] != '\n' {
		// Bodies often lack the last line end; the parser needs it.
		text += "\r\n"
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(text); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	return &sd, nil
}

// fieldLines gives, for the line types the parser reads field by field,
// how many fields it reads (RFC 4566 section 5: v=<version>,
// o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>,
// c=<nettype> <addrtype> <address>, t=<start> <stop>).
var fieldLines = [256]int{'v': 1, 'o': 6, 'c': 3, 't': 2}

// checkLines refuses lines the parser would read differently from
// RewriteSDP. For v=, o=, c= and t= the parser takes whatever follows the
// last field on the same line as the next line: "c=IN IP4 192.0.2.1 t=0 0"
// is a c= line and a t= line to it, but one line to a line-based reader,
// and "c=IN IP4 192.0.2.1 c=IN IP4 192.0.2.99" would smuggle a second
// address past the rewrite (a parser differential). Those lines must hold
// no more fields than the parser reads, starting right after the "=".
func checkLines(body []byte) error {
	for _, line := range bytes.Split(body, []byte("\n")) {
		if len(line) < 2 || line[1] != '=' {
			continue
		}
		limit := fieldLines[line[0]]
		if limit == 0 {
			continue
		}
		rest := bytes.TrimSuffix(line[2:], []byte("\r"))
		if n := len(bytes.Fields(rest)); n > limit || (n > 0 && (rest[0] == ' ' || rest[0] == '\t')) {
			return fmt.Errorf("%w: %c= line with %d fields or leading blank", ErrBadSDP, line[0], n)
		}
	}
	return nil
}

// audioStream finds the first usable audio stream and returns its index
// among the media descriptions and what it announces.
func audioStream(sd *sdp.SessionDescription) (int, Offer, error) {
	for i, md := range sd.MediaDescriptions {
		mn := md.MediaName
		if mn.Media != "audio" || mn.Port.Value == 0 || len(mn.Formats) == 0 || !isRTP(mn.Protos) {
			continue
		}
		if mn.Port.Range != nil && *mn.Port.Range != 1 {
			// m=audio 49170/2: several RTP sessions on consecutive ports
			// (RFC 4566 section 5.14); the relay carries one.
			continue
		}
		ci := md.ConnectionInformation
		if ci == nil {
			ci = sd.ConnectionInformation
		}
		if ci == nil {
			return -1, Offer{}, fmt.Errorf("%w: audio stream %d has no c= line", ErrBadSDP, i)
		}
		addr, err := connAddr(ci)
		if err != nil {
			return -1, Offer{}, err
		}
		dir := direction(md.Attributes)
		if dir == "" {
			dir = direction(sd.Attributes)
		}
		if dir == "" {
			dir = "sendrecv" // RFC 3264 section 5.1
		}
		format, err := strconv.Atoi(mn.Formats[0])
		if err != nil {
			format = -1
		}
		return i, Offer{Addr: netip.AddrPortFrom(addr, uint16(mn.Port.Value)), Direction: dir, Format: format}, nil
	}
	return -1, Offer{}, fmt.Errorf("%w: no usable audio stream", ErrBadSDP)
}

// isRTP reports whether a transport such as RTP/AVP, RTP/SAVPF or
// UDP/TLS/RTP/SAVPF carries RTP, which is all the relay forwards.
func isRTP(protos []string) bool {
	for _, p := range protos {
		if p == "RTP" {
			return true
		}
	}
	return false
}

// connAddr returns the unicast address of a c= line.
func connAddr(ci *sdp.ConnectionInformation) (netip.Addr, error) {
	if ci.Address == nil {
		return netip.Addr{}, fmt.Errorf("%w: c= line without address", ErrBadSDP)
	}
	// Only IP literals: a host name would have the PBX resolve a name the
	// peer chose (and wait on DNS for every INVITE); multicast (with /ttl)
	// and broadcast would have the relay send one caller's audio to a whole
	// network. Zones mean nothing off the phone's own link.
	a, err := netip.ParseAddr(ci.Address.Address)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%w: c= address %q is not an IP address", ErrBadSDP, ci.Address.Address)
	}
	if (ci.AddressType == "IP4") != a.Unmap().Is4() {
		return netip.Addr{}, fmt.Errorf("%w: c= address %v is not %s", ErrBadSDP, a, ci.AddressType)
	}
	a = a.Unmap()
	if a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}, fmt.Errorf("%w: c= address %v is not unicast", ErrBadSDP, a)
	}
	return a, nil
}

// direction returns the first direction attribute (RFC 3264 section 5.1)
// among attrs, or "".
func direction(attrs []sdp.Attribute) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return ""
}

// replaceMediaPort returns the m= line with its <port>[/<count>] field
// (RFC 4566 section 5.14) replaced by port, keeping the rest of the line.
func replaceMediaPort(line []byte, port string) []byte {
	s := string(line[2:])
	media, rest, ok := cutField(s)
	if !ok {
		return line
	}
	sep := rest[:len(rest)-len(strings.TrimLeft(rest, " \t"))]
	_, tail, _ := cutField(rest[len(sep):])
	return []byte("m=" + media + sep + port + tail)
}

// cutField splits s at its first space or tab: the field before it and
// everything from the separator on.
func cutField(s string) (field, rest string, ok bool) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i:], true
}

// unspecifiedConn reports whether a c= line names 0.0.0.0 or ::.
func unspecifiedConn(line []byte) bool {
	f := strings.Fields(string(line[2:]))
	if len(f) < 3 {
		return false
	}
	a, err := netip.ParseAddr(f[2])
	return err == nil && a.IsUnspecified()
}

// rewriteRTCPAttr rewrites a=rtcp:<port> [<nettype> <addrtype> <addr>]
// (RFC 3605 section 2.1) to the relay's RTCP port and address.
func rewriteRTCPAttr(line []byte, port, addrType string, addr netip.Addr) []byte {
	f := strings.Fields(string(line[len("a=rtcp:"):]))
	if len(f) >= 4 {
		return []byte("a=rtcp:" + port + " IN " + addrType + " " + addr.String())
	}
	return []byte("a=rtcp:" + port)
}

// iceAttrs are the ICE attributes of RFC 8839 section 5.
var iceAttrs = [][]byte{
	[]byte("a=candidate:"), []byte("a=remote-candidates:"), []byte("a=ice-ufrag:"),
	[]byte("a=ice-pwd:"), []byte("a=ice-options:"), []byte("a=ice-lite"), []byte("a=end-of-candidates"),
	[]byte("a=ice-mismatch"), []byte("a=ice-pacing:"),
}

func isICE(line []byte) bool {
	for _, p := range iceAttrs {
		if bytes.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

// rewriteOrigin replaces the address type and address of an o= line
// (RFC 4566 section 5.2), keeping user name, session ID and version.
func rewriteOrigin(line []byte, addrType string, addr netip.Addr) []byte {
	f := bytes.Fields(line)
	if len(f) != 6 {
		return line // checkLines refused other shapes already
	}
	f[4], f[5] = []byte(addrType), []byte(addr.String())
	return bytes.Join(f, []byte(" "))
}
