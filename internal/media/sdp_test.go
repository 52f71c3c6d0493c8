package media

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// crlf joins SDP lines the way RFC 4566 section 5 writes them.
func crlf(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n" }

var (
	sdpPCMU = crlf(
		"v=0",
		"o=201 2890844526 2890844526 IN IP4 192.0.2.10",
		"s=-",
		"c=IN IP4 192.0.2.10",
		"t=0 0",
		"m=audio 49170 RTP/AVP 0 8 101",
		"a=rtpmap:0 PCMU/8000",
		"a=rtpmap:8 PCMA/8000",
		"a=rtpmap:101 telephone-event/8000",
		"a=fmtp:101 0-16",
		"a=ptime:20",
	)
	sdpG722MediaConn = crlf(
		"v=0",
		"o=202 1 1 IN IP4 192.0.2.20",
		"s=call",
		"c=IN IP4 198.51.100.1",
		"t=0 0",
		"m=audio 5004 RTP/AVP 9 101",
		"c=IN IP4 192.0.2.20",
		"a=rtpmap:9 G722/8000",
		"a=rtpmap:101 telephone-event/8000",
		"a=sendrecv",
	)
	sdpOpusRTCP = crlf(
		"v=0",
		"o=- 4611731400430051336 2 IN IP4 192.0.2.30",
		"s=-",
		"t=0 0",
		"m=audio 16384 RTP/AVP 111 0 101",
		"c=IN IP4 192.0.2.30",
		"a=rtpmap:111 opus/48000/2",
		"a=fmtp:111 minptime=10;useinbandfec=1",
		"a=rtpmap:0 PCMU/8000",
		"a=rtpmap:101 telephone-event/48000",
		"a=rtcp:16385 IN IP4 192.0.2.30",
		"a=sendonly",
	)
	sdpInactiveSession = crlf(
		"v=0",
		"o=201 3 4 IN IP4 192.0.2.10",
		"s=-",
		"c=IN IP4 192.0.2.10",
		"t=0 0",
		"a=inactive",
		"m=audio 49170 RTP/AVP 8",
		"a=rtpmap:8 PCMA/8000",
	)
	sdpHoldZero = crlf(
		"v=0",
		"o=201 3 5 IN IP4 192.0.2.10",
		"s=-",
		"c=IN IP4 0.0.0.0",
		"t=0 0",
		"m=audio 49170 RTP/AVP 0",
		"a=sendonly",
	)
	sdpVideoFirst = crlf(
		"v=0",
		"o=203 7 7 IN IP4 192.0.2.40",
		"s=-",
		"c=IN IP4 192.0.2.40",
		"t=0 0",
		"m=video 51372 RTP/AVP 96",
		"a=rtpmap:96 H264/90000",
		"m=audio 0 RTP/AVP 0",
		"m=audio 49172 RTP/AVP 0 101",
		"a=rtpmap:101 telephone-event/8000",
		"a=recvonly",
	)
	sdpIPv6 = crlf(
		"v=0",
		"o=204 1 1 IN IP6 2001:db8::4",
		"s=-",
		"c=IN IP6 2001:db8::4",
		"t=0 0",
		"m=audio 6000 RTP/SAVP 0",
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
	)
	sdpVideoOnly = crlf(
		"v=0",
		"o=205 1 1 IN IP4 192.0.2.50",
		"s=-",
		"c=IN IP4 192.0.2.50",
		"t=0 0",
		"m=video 51372 RTP/AVP 96",
	)
)

func TestParseSDP(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name string
		body string
		want Offer // zero: an error wrapping ErrBadSDP
	}{
		{"PCMU PCMA telephone-event, session c=", sdpPCMU, Offer{ap("192.0.2.10:49170"), "sendrecv", 0}},
		{"G.722, media c= over session c=", sdpG722MediaConn, Offer{ap("192.0.2.20:5004"), "sendrecv", 9}},
		{"opus with a=rtcp, sendonly", sdpOpusRTCP, Offer{ap("192.0.2.30:16384"), "sendonly", 111}},
		{"hold: inactive at session level", sdpInactiveSession, Offer{ap("192.0.2.10:49170"), "inactive", 8}},
		{"hold: RFC 2543 c=0.0.0.0", sdpHoldZero, Offer{ap("0.0.0.0:49170"), "sendonly", 0}},
		{"video first, rejected audio, then audio", sdpVideoFirst, Offer{ap("192.0.2.40:49172"), "recvonly", 0}},
		{"IPv6, SRTP", sdpIPv6, Offer{ap("[2001:db8::4]:6000"), "sendrecv", 0}},
		{"LF line ends", strings.ReplaceAll(sdpPCMU, "\r\n", "\n"), Offer{ap("192.0.2.10:49170"), "sendrecv", 0}},
		{"no final line end", strings.TrimSuffix(sdpHoldZero, "\r\n"), Offer{ap("0.0.0.0:49170"), "sendonly", 0}},

		{"no audio stream", sdpVideoOnly, Offer{}},
		{"only a rejected audio stream", strings.Replace(sdpPCMU, "m=audio 49170", "m=audio 0", 1), Offer{}},
		{"audio on several ports", strings.Replace(sdpPCMU, "m=audio 49170", "m=audio 49170/2", 1), Offer{}},
		{"audio not over RTP", strings.Replace(sdpPCMU, "RTP/AVP", "UDP", 1), Offer{}},
		{"no c= line", strings.Replace(sdpPCMU, "c=IN IP4 192.0.2.10\r\n", "", 1), Offer{}},
		{"host name in c=", strings.Replace(sdpPCMU, "c=IN IP4 192.0.2.10", "c=IN IP4 pbx.example.com", 1), Offer{}},
		{"multicast c=", strings.Replace(sdpPCMU, "c=IN IP4 192.0.2.10", "c=IN IP4 224.2.1.1/127", 1), Offer{}},
		{"broadcast c=", strings.Replace(sdpPCMU, "c=IN IP4 192.0.2.10", "c=IN IP4 255.255.255.255", 1), Offer{}},
		{"IP4 type with IPv6 address", strings.Replace(sdpPCMU, "c=IN IP4 192.0.2.10", "c=IN IP4 2001:db8::1", 1), Offer{}},
		{"lone CR hides a line", strings.Replace(sdpPCMU, "a=ptime:20", "a=ptime:20\rc=IN IP4 192.0.2.99", 1), Offer{}},
		{"port out of range", strings.Replace(sdpPCMU, "m=audio 49170", "m=audio 70000", 1), Offer{}},
		{"garbage", "hello, world", Offer{}},
		{"SIP message instead of SDP", "INVITE sip:202@pbx SIP/2.0\r\n\r\n", Offer{}},
		{"empty", "", Offer{}},
		{"too large", sdpPCMU + strings.Repeat("a=x-pad:0123456789abcdef\r\n", 4000), Offer{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSDP([]byte(tc.body))
			if tc.want == (Offer{}) {
				if !errors.Is(err, ErrBadSDP) {
					t.Fatalf("ParseSDP = %+v, %v; want ErrBadSDP", got, err)
				}
				if !strings.HasPrefix(err.Error(), "media: ") {
					t.Errorf("error %q lacks the media: prefix", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseSDP = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestRewriteSDP(t *testing.T) {
	relay4 := netip.MustParseAddr("203.0.113.5")
	relay6 := netip.MustParseAddr("2001:db8::5")
	tests := []struct {
		name string
		body string
		addr netip.Addr
		port int
		want string // "" means an error wrapping ErrBadSDP
	}{
		{"session c=, codecs and DTMF kept", sdpPCMU, relay4, 40000, crlf(
			"v=0",
			"o=201 2890844526 2890844526 IN IP4 203.0.113.5",
			"s=-",
			"c=IN IP4 203.0.113.5",
			"t=0 0",
			"m=audio 40000 RTP/AVP 0 8 101",
			"a=rtpmap:0 PCMU/8000",
			"a=rtpmap:8 PCMA/8000",
			"a=rtpmap:101 telephone-event/8000",
			"a=fmtp:101 0-16",
			"a=ptime:20",
		)},
		{"session and media c= both rewritten", sdpG722MediaConn, relay4, 40002, crlf(
			"v=0",
			"o=202 1 1 IN IP4 203.0.113.5",
			"s=call",
			"c=IN IP4 203.0.113.5",
			"t=0 0",
			"m=audio 40002 RTP/AVP 9 101",
			"c=IN IP4 203.0.113.5",
			"a=rtpmap:9 G722/8000",
			"a=rtpmap:101 telephone-event/8000",
			"a=sendrecv",
		)},
		{"a=rtcp with address, direction kept", sdpOpusRTCP, relay4, 40004, crlf(
			"v=0",
			"o=- 4611731400430051336 2 IN IP4 203.0.113.5",
			"s=-",
			"t=0 0",
			"m=audio 40004 RTP/AVP 111 0 101",
			"c=IN IP4 203.0.113.5",
			"a=rtpmap:111 opus/48000/2",
			"a=fmtp:111 minptime=10;useinbandfec=1",
			"a=rtpmap:0 PCMU/8000",
			"a=rtpmap:101 telephone-event/48000",
			"a=rtcp:40005 IN IP4 203.0.113.5",
			"a=sendonly",
		)},
		{"a=rtcp port only", strings.Replace(sdpPCMU, "a=ptime:20", "a=rtcp:53020", 1), relay4, 40000,
			strings.NewReplacer("49170", "40000", "192.0.2.10", "203.0.113.5", "a=ptime:20", "a=rtcp:40001").Replace(sdpPCMU)},
		{"RFC 2543 hold keeps 0.0.0.0", sdpHoldZero, relay4, 40006, crlf(
			"v=0",
			"o=201 3 5 IN IP4 203.0.113.5",
			"s=-",
			"c=IN IP4 0.0.0.0",
			"t=0 0",
			"m=audio 40006 RTP/AVP 0",
			"a=sendonly",
		)},
		{"video and second audio rejected", sdpVideoFirst, relay4, 40008, crlf(
			"v=0",
			"o=203 7 7 IN IP4 203.0.113.5",
			"s=-",
			"c=IN IP4 203.0.113.5",
			"t=0 0",
			"m=video 0 RTP/AVP 96",
			"a=rtpmap:96 H264/90000",
			"m=audio 0 RTP/AVP 0",
			"m=audio 40008 RTP/AVP 0 101",
			"a=rtpmap:101 telephone-event/8000",
			"a=recvonly",
		)},
		{"LF line ends kept", strings.ReplaceAll(sdpHoldZero, "\r\n", "\n"), relay4, 40010,
			"v=0\no=201 3 5 IN IP4 203.0.113.5\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 40010 RTP/AVP 0\na=sendonly\n"},
		{"IPv4 phone, IPv6 relay", sdpPCMU, relay6, 40012,
			strings.NewReplacer("49170", "40012", "IN IP4 192.0.2.10", "IN IP6 2001:db8::5").Replace(sdpPCMU)},
		{"IPv6 phone, IPv4 relay", sdpIPv6, relay4, 40014,
			strings.NewReplacer("m=audio 6000", "m=audio 40014", "IN IP6 2001:db8::4", "IN IP4 203.0.113.5").Replace(sdpIPv6)},
		{"no audio", sdpVideoOnly, relay4, 40000, ""},
		{"garbage", "v=0\r\nthis is not SDP\r\n", relay4, 40000, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RewriteSDP([]byte(tc.body), tc.addr, tc.port)
			if tc.want == "" {
				if !errors.Is(err, ErrBadSDP) {
					t.Fatalf("RewriteSDP = %q, %v; want ErrBadSDP", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("RewriteSDP: %v", err)
			}
			if string(got) != tc.want {
				t.Fatalf("RewriteSDP =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestRewriteSDPRefusesBadTarget(t *testing.T) {
	for _, tc := range []struct {
		addr string
		port int
	}{
		{"0.0.0.0", 40000},
		{"224.0.0.1", 40000},
		{"203.0.113.5", 0},
		{"203.0.113.5", 65535},
	} {
		_, err := RewriteSDP([]byte(sdpPCMU), netip.MustParseAddr(tc.addr), tc.port)
		if err == nil || errors.Is(err, ErrBadSDP) {
			t.Errorf("RewriteSDP(%s, %d) = %v; want a non-SDP error", tc.addr, tc.port, err)
		}
	}
}

// FuzzRewriteSDP checks that no input makes the SDP code panic, that every
// description ParseSDP accepts can be rewritten, and that the rewrite
// re-parses to the relay's address and port and is stable.
func FuzzRewriteSDP(f *testing.F) {
	for _, s := range []string{sdpPCMU, sdpG722MediaConn, sdpOpusRTCP, sdpInactiveSession, sdpHoldZero,
		sdpVideoFirst, sdpIPv6, sdpVideoOnly, strings.ReplaceAll(sdpPCMU, "\r\n", "\n")} {
		f.Add([]byte(s))
	}
	relay := netip.MustParseAddr("203.0.113.5")
	f.Fuzz(func(t *testing.T, body []byte) {
		_, perr := ParseSDP(body)
		out, err := RewriteSDP(body, relay, 40000)
		if (perr == nil) != (err == nil) {
			t.Fatalf("ParseSDP error %v but RewriteSDP error %v", perr, err)
		}
		if err != nil {
			if !errors.Is(err, ErrBadSDP) {
				t.Fatalf("error %v does not wrap ErrBadSDP", err)
			}
			return
		}
		off, err := ParseSDP(out)
		if err != nil {
			t.Fatalf("rewritten SDP does not parse: %v\n%q", err, out)
		}
		if off.Addr.Port() != 40000 || (off.Addr.Addr() != relay && !off.Addr.Addr().IsUnspecified()) {
			t.Fatalf("rewritten SDP announces %v", off.Addr)
		}
		again, err := RewriteSDP(out, relay, 40000)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("second rewrite differs (%v):\n%q\n%q", err, out, again)
		}
	})
}

func TestRewriteSDPDropsICEAndOrigin(t *testing.T) {
	in := "v=0\r\no=phone 42 1 IN IP4 192.168.1.23\r\ns=-\r\nc=IN IP4 192.168.1.23\r\nt=0 0\r\n" +
		"a=ice-ufrag:abcd\r\na=ice-pwd:secretsecretsecretsecret\r\n" +
		"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n" +
		"a=candidate:1 1 UDP 2130706431 192.168.1.23 4000 typ host\r\na=end-of-candidates\r\n"
	out, err := RewriteSDP([]byte(in), netip.MustParseAddr("203.0.113.5"), 20000)
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	if strings.Contains(got, "192.168.1.23") || strings.Contains(got, "candidate") || strings.Contains(got, "ice-") {
		t.Fatalf("phone address or ICE left in rewritten SDP:\n%s", got)
	}
	if !strings.Contains(got, "o=phone 42 1 IN IP4 203.0.113.5\r\n") || !strings.Contains(got, "m=audio 20000 RTP/AVP 0\r\n") {
		t.Fatalf("rewritten SDP:\n%s", got)
	}
}
