package media

import (
	"testing"

	"github.com/pion/rtp"
)

// rtpPacket returns a marshalled RTP packet: PCMU, the given sequence
// number and payload.
func rtpPacket(t testing.TB, seq uint16, payload []byte) []byte {
	t.Helper()
	p := rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0x5e41540},
		Payload: payload,
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rtcpRR returns an empty RTCP receiver report (RFC 3550 section 6.4.2).
func rtcpRR(ssrc byte) []byte {
	return []byte{0x80, 201, 0, 1, 0, 0, 0, ssrc}
}

func TestValidRTP(t *testing.T) {
	ok := rtpPacket(t, 1, make([]byte, 160))
	withExt := func(profile uint16, words []byte) []byte {
		b := []byte{0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, byte(profile >> 8), byte(profile), 0, byte(len(words) / 4)}
		return append(b, words...)
	}
	tests := []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"PCMU 20 ms", ok, true},
		{"header only", ok[:12], true},
		{"11 bytes", ok[:11], false},
		{"version 1", append([]byte{0x40}, ok[1:]...), false},
		{"version 0 (STUN)", append([]byte{0x00}, ok[1:]...), false},
		{"8-byte RTCP receiver report", rtcpRR(1), false},
		{"CSRC count beyond packet", append([]byte{0x8f}, ok[1:20]...), false},
		{"two CSRCs", append([]byte{0x82}, ok[1:20]...), true},
		{"one-byte extension", withExt(0xBEDE, []byte{0x10, 0xAA, 0, 0}), true},
		{"one-byte extension overruns", withExt(0xBEDE, []byte{0x1F, 0xAA, 0, 0}), false},
		{"two-byte extension", withExt(0x1000, []byte{1, 2, 0xAA, 0xBB}), true},
		{"two-byte extension overruns", withExt(0x1000, []byte{1, 9, 0xAA, 0xBB}), false},
		{"extension length beyond packet", withExt(0xBEDE, []byte{0x10, 0xAA, 0, 0})[:18], false},
		{"padding", append(append([]byte{0xa0}, ok[1:]...), 0, 0, 3), true},
		{"padding count zero", append(append([]byte{0xa0}, ok[1:12]...), 0), false},
		{"padding longer than payload", append(append([]byte{0xa0}, ok[1:12]...), 200), false},
	}
	for _, tc := range tests {
		if got := validRTP(tc.pkt); got != tc.want {
			t.Errorf("%s: validRTP = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestValidRTCP(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"receiver report", rtcpRR(1), true},
		{"sender report type", []byte{0x80, 200, 0, 1, 0, 0, 0, 1}, true},
		{"7 bytes", rtcpRR(1)[:7], false},
		{"version 1", []byte{0x40, 201, 0, 1, 0, 0, 0, 1}, false},
		{"RTP payload type 0", rtpPacket(t, 1, nil), false},
		{"length beyond packet", []byte{0x80, 201, 0, 9, 0, 0, 0, 1}, false},
	}
	for _, tc := range tests {
		if got := validRTCP(tc.pkt); got != tc.want {
			t.Errorf("%s: validRTCP = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// FuzzValidRTP checks that validRTP, which the relay runs on every packet,
// accepts exactly what pion/rtp parses as a version 2 packet.
func FuzzValidRTP(f *testing.F) {
	f.Add(rtpPacket(f, 7, make([]byte, 160)))
	f.Add([]byte{0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0})
	f.Add([]byte{0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x10, 0x00, 0, 1, 1, 2, 0xAA, 0xBB})
	f.Add([]byte{0xa1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 9, 9, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p rtp.Packet
		want := p.Unmarshal(b) == nil && p.Version == 2
		if got := validRTP(b); got != want {
			t.Fatalf("validRTP(%x) = %v, pion says %v", b, got, want)
		}
	})
}
