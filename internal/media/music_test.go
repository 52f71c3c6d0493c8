package media

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// G.711 reference points (ITU-T G.711 tables): silence, the largest
// magnitudes, and the sign bit.
func TestG711(t *testing.T) {
	for _, c := range []struct {
		v     int16
		mu, a byte
	}{
		{0, 0xff, 0xd5},
		{-1, 0x7f, 0x55},
		{32767, 0x80, 0xaa},
		{-32768, 0x00, 0x2a},
	} {
		if got := ulaw(c.v); got != c.mu {
			t.Errorf("ulaw(%d) = %#x, want %#x", c.v, got, c.mu)
		}
		if got := alaw(c.v); got != c.a {
			t.Errorf("alaw(%d) = %#x, want %#x", c.v, got, c.a)
		}
	}
}

func wav(rate uint32, channels, bits uint16, samples int) []byte {
	var b bytes.Buffer
	data := make([]byte, 2*samples)
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(36+len(data)))
	b.WriteString("WAVEfmt ")
	binary.Write(&b, binary.LittleEndian, uint32(16))
	binary.Write(&b, binary.LittleEndian, uint16(1))
	binary.Write(&b, binary.LittleEndian, channels)
	binary.Write(&b, binary.LittleEndian, rate)
	binary.Write(&b, binary.LittleEndian, rate*uint32(channels)*uint32(bits/8))
	binary.Write(&b, binary.LittleEndian, channels*bits/8)
	binary.Write(&b, binary.LittleEndian, bits)
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

// TestLoadWAV: only 8 kHz mono 16-bit PCM is taken, and a refusal says
// what the file is and what is wanted.
func TestLoadWAV(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		data []byte
		err  string
	}{
		{"ok.wav", wav(8000, 1, 16, 8000), ""},
		{"stereo.wav", wav(8000, 2, 16, 8000), "want 8000 Hz mono 16-bit PCM"},
		{"cd.wav", wav(44100, 1, 16, 8000), "44100 Hz"},
		{"short.wav", wav(8000, 1, 16, 100), "less than 20 ms"},
		{"text.wav", []byte("hello, this is no wav file"), "not a WAV file"},
	} {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, c.data, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := LoadWAV(p)
		switch {
		case c.err == "" && (err != nil || len(m.samples) != 8000):
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.err)
		}
	}
}

// TestPlay: the held side gets a stream of 20 ms G.711 packets from the
// relay's port for it, numbered in sequence with one SSRC, while what the
// other side sends is not relayed to it; after stop the call flows again.
func TestPlay(t *testing.T) {
	checkGoroutines(t)
	r := newRelay(t, 100, 0)
	s, a, b := call(t, r)
	stop := s.Play(SideA, HoldTone(), PayloadPCMA)

	var seq uint16
	var ssrc uint32
	for i := range 5 {
		pkt, src := a.recv(t, false)
		if len(pkt) != rtpHdrSize+frameSize || pkt[0] != 0x80 || pkt[1]&0x7f != PayloadPCMA {
			t.Fatalf("packet %d: %x", i, pkt[:2])
		}
		if src.Port() != uint16(s.Port(SideA)) {
			t.Fatalf("music came from %v, not the relay's port for side A", src)
		}
		if i > 0 && (binary.BigEndian.Uint16(pkt[2:]) != seq+1 || binary.BigEndian.Uint32(pkt[8:]) != ssrc) {
			t.Fatalf("packet %d: sequence or SSRC broken", i)
		}
		seq, ssrc = binary.BigEndian.Uint16(pkt[2:]), binary.BigEndian.Uint32(pkt[8:])
	}
	// B speaks while A is held: A must not hear it.
	b.send(t, false, s.Port(SideB), rtpPacket(t, 1, []byte("not for A")))
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		pkt, _, err := a.tryRecv(false, 50*time.Millisecond)
		if err == nil && bytes.Contains(pkt, []byte("not for A")) {
			t.Fatal("the held side heard the other side during music")
		}
	}
	stop()
	stop() // twice is harmless
	time.Sleep(60 * time.Millisecond)
	for { // drain music still in flight
		if _, _, err := a.tryRecv(false, 30*time.Millisecond); err != nil {
			break
		}
	}
	want := rtpPacket(t, 2, []byte("for A again"))
	b.send(t, false, s.Port(SideB), want)
	if got, _ := a.recv(t, false); !bytes.Equal(got, want) {
		t.Fatalf("after the music A got %x, want B's packet", got)
	}
}

// TestG711RoundTrip: decoding what was encoded gives the sample back
// within G.711's step size for its magnitude.
func TestG711RoundTrip(t *testing.T) {
	for v := -32768; v <= 32767; v += 7 {
		for _, pt := range []uint8{PayloadPCMU, PayloadPCMA} {
			enc := ulaw(int16(v))
			if pt == PayloadPCMA {
				enc = alaw(int16(v))
			}
			out := make([]int16, 1)
			DecodeG711(pt, []byte{enc}, out)
			diff := int(out[0]) - v
			if diff < 0 {
				diff = -diff
			}
			if limit := max(abs(v)/16, 40); diff > limit {
				t.Fatalf("pt %d: %d came back as %d", pt, v, out[0])
			}
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// TestAnnouncedPeerTakesOver: two forks of a call both answer and send to
// the relay's B port; the loser's packets come first and latch. The
// winner's SDP (SetPeer) latches afresh, its address alone for a moment,
// and the loser's later packets are dropped: the caller hears the callee
// it was bridged to, not whoever sent first.
func TestAnnouncedPeerTakesOver(t *testing.T) {
	checkGoroutines(t)
	r := newRelay(t, 100, 0)
	s, err := r.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	a, winner, loser := newPhone(t, phoneAIP), newPhone(t, phoneBIP), newPhone(t, phoneBIP)
	s.SetPeer(SideA, a.addr())
	loser.send(t, false, s.Port(SideB), rtpPacket(t, 1, []byte("loser")))
	if got, _ := a.recv(t, false); !bytes.Contains(got, []byte("loser")) {
		t.Fatalf("before any answer: %x", got)
	}
	s.SetPeer(SideB, winner.addr())
	loser.send(t, false, s.Port(SideB), rtpPacket(t, 2, []byte("loser again")))
	a.expectNothing(t, false) // right after the answer only the winner latches
	winner.send(t, false, s.Port(SideB), rtpPacket(t, 3, []byte("winner")))
	if got, _ := a.recv(t, false); !bytes.Contains(got, []byte("winner")) {
		t.Fatalf("the announced address did not take over: %x", got)
	}
	loser.send(t, false, s.Port(SideB), rtpPacket(t, 4, []byte("loser late")))
	a.expectNothing(t, false)
	if st := s.Stats(); st.SourceB != winner.addr() {
		t.Fatalf("side B latched to %v, want the winner %v", st.SourceB, winner.addr())
	}
	a.send(t, false, s.Port(SideA), rtpPacket(t, 5, []byte("to the winner")))
	if got, _ := winner.recv(t, false); !bytes.Contains(got, []byte("to the winner")) {
		t.Fatalf("the winner did not get the caller's audio: %x", got)
	}
}

// FuzzParseWAV: any file is read or refused without a panic, and what is
// read holds at least one packet of sound.
func FuzzParseWAV(f *testing.F) {
	f.Add(wav(8000, 1, 16, 200))
	f.Add(wav(8000, 2, 16, 200))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEfmt \xff\xff\xff\x7f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseWAV(data, "fuzz.wav")
		if err == nil && len(m.samples) < frameSize {
			t.Fatalf("accepted %d samples", len(m.samples))
		}
	})
}
