package media

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"time"
)

// Music is audio the PBX plays into a call itself: music on hold. It is
// 8 kHz 16-bit mono, played in a loop as G.711 (PCMU or PCMA) at 20 ms a
// packet.
type Music struct {
	samples []int16
}

const (
	musicRate  = 8000
	frameSize  = 160 // samples in 20 ms at 8 kHz
	rtpHdrSize = 12
	// PayloadPCMU and PayloadPCMA are the static RTP payload types of
	// G.711 (RFC 3551 section 6), the formats Music can be played in.
	PayloadPCMU = 0
	PayloadPCMA = 8
)

// HoldTone returns the built-in music on hold: a slow, quiet arpeggio
// (C5, E5, G5, E5; 400 ms each with soft edges and short rests) generated
// here, so it belongs to nobody and needs no file.
func HoldTone() *Music {
	notes := []float64{523.25, 659.25, 783.99, 659.25}
	const (
		note = 400 * musicRate / 1000 // samples a note sounds
		rest = 100 * musicRate / 1000
		fade = 5 * musicRate / 1000
		amp  = 6000.0
	)
	var s []int16
	for _, f := range notes {
		for i := range note {
			env := 1.0
			if i < fade {
				env = float64(i) / fade
			} else if i > note-fade {
				env = float64(note-i) / fade
			}
			s = append(s, int16(amp*env*math.Sin(2*math.Pi*f*float64(i)/musicRate)))
		}
		s = append(s, make([]int16, rest)...)
	}
	return &Music{samples: s}
}

// LoadWAV reads music on hold from a WAV file: uncompressed PCM, 8000 Hz,
// mono, 16 bits (convert other files first, for example with
// `sox in.mp3 -r 8000 -c 1 -b 16 out.wav`). At most 10 minutes.
func LoadWAV(path string) (*Music, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hold music: %w", err)
	}
	return parseWAV(data, path)
}

// parseWAV reads the WAV file data (named path in errors).
func parseWAV(data []byte, path string) (*Music, error) {
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, fmt.Errorf("hold music: %s is not a WAV file", path)
	}
	var format []byte
	for p := 12; p+8 <= len(data) && p >= 12; {
		id, size := string(data[p:p+4]), int(binary.LittleEndian.Uint32(data[p+4:p+8]))
		body := data[p+8:]
		if size > len(body) {
			size = len(body)
		}
		switch id {
		case "fmt ":
			format = body[:size]
		case "data":
			if len(format) < 16 {
				return nil, fmt.Errorf("hold music: %s: no format chunk before the data", path)
			}
			tag, ch := binary.LittleEndian.Uint16(format[0:]), binary.LittleEndian.Uint16(format[2:])
			rate, bits := binary.LittleEndian.Uint32(format[4:]), binary.LittleEndian.Uint16(format[14:])
			if tag != 1 || ch != 1 || rate != musicRate || bits != 16 {
				return nil, fmt.Errorf("hold music: %s is %d Hz, %d channel(s), %d bits (format %d); want 8000 Hz mono 16-bit PCM", path, rate, ch, bits, tag)
			}
			n := size / 2
			if n < frameSize {
				return nil, fmt.Errorf("hold music: %s holds less than 20 ms of sound", path)
			}
			if n > 10*60*musicRate {
				return nil, fmt.Errorf("hold music: %s is longer than 10 minutes", path)
			}
			m := &Music{samples: make([]int16, n)}
			for i := range n {
				m.samples[i] = int16(binary.LittleEndian.Uint16(body[2*i:]))
			}
			return m, nil
		}
		p += 8 + size + size%2
	}
	return nil, fmt.Errorf("hold music: %s has no data chunk", path)
}

// frame encodes the 160 samples from pos (looping) into out as payload
// type pt, and returns the next position.
func (m *Music) frame(pos int, pt uint8, out []byte) int {
	for i := range frameSize {
		v := m.samples[pos]
		if pt == PayloadPCMA {
			out[i] = alaw(v)
		} else {
			out[i] = ulaw(v)
		}
		if pos++; pos == len(m.samples) {
			pos = 0
		}
	}
	return pos
}

// ulaw encodes one sample as G.711 mu-law.
func ulaw(v int16) byte {
	const bias, clip = 0x84, 32635
	s := int(v)
	sign := 0
	if s < 0 {
		s, sign = -s, 0x80
	}
	if s > clip {
		s = clip
	}
	s += bias
	exp := 7
	for mask := 0x4000; s&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (s >> (exp + 3)) & 0x0f
	return ^byte(sign | exp<<4 | mant)
}

// alaw encodes one sample as G.711 A-law.
func alaw(v int16) byte {
	s := int(v) >> 3 // 13-bit magnitude
	sign := 0x80
	if s < 0 {
		s, sign = -s-1, 0
	}
	if s > 0xfff {
		s = 0xfff
	}
	var out int
	if s < 32 {
		out = s >> 1
	} else {
		exp := 1
		for t := s >> 5; t > 1; t >>= 1 {
			exp++
		}
		out = exp<<4 | (s>>exp)&0x0f
	}
	return byte(out|sign) ^ 0x55
}

// errNoPeer stops music toward a side that has no address to send to.
var errNoPeer = errors.New("media: no address to play to")

// Play sends m to side to, as payload type pt, from the relay's own port
// for that side, until stop is called or the session closes. While it
// plays, what the other side sends is not relayed to that side, so the
// held party hears the music and nothing of the call it was held from.
func (s *Session) Play(to Side, m *Music, pt uint8) (stop func()) {
	stop, _ = s.play(to, m, pt, true)
	return stop
}

// PlayOnce plays m to side to once; finished is closed when it has been
// played to the end or stopped.
func (s *Session) PlayOnce(to Side, m *Music, pt uint8) (stop func(), finished <-chan struct{}) {
	return s.play(to, m, pt, false)
}

func (s *Session) play(to Side, m *Music, pt uint8, loop bool) (func(), <-chan struct{}) {
	finished := make(chan struct{})
	if to != SideA && to != SideB || m == nil || s.closed.Load() {
		close(finished)
		return func() {}, finished
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.playing[to] = true
	s.mu.Unlock()
	var hdr [rtpHdrSize]byte
	rand.Read(hdr[2:12])           // random sequence, timestamp and SSRC (RFC 3550 5.1)
	hdr[0], hdr[1] = 0x80, pt|0x80 // version 2; marker on the first packet
	go func() {
		defer close(finished)
		pkt := make([]byte, rtpHdrSize+frameSize)
		copy(pkt, hdr[:])
		seq, ts := binary.BigEndian.Uint16(pkt[2:]), binary.BigEndian.Uint32(pkt[4:])
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		pos := 0
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if s.closed.Load() {
				return
			}
			next := m.frame(pos, pt, pkt[rtpHdrSize:])
			if !loop && next < pos {
				return // the end: the last frame would wrap around
			}
			pos = next
			binary.BigEndian.PutUint16(pkt[2:], seq)
			binary.BigEndian.PutUint32(pkt[4:], ts)
			s.mu.Lock()
			dst := s.destLocked(to, rtpKind)
			s.mu.Unlock()
			if err := s.send(to, dst, pkt); err != nil && !errors.Is(err, errNoPeer) {
				s.drops.Add(1)
			}
			pkt[1] &^= 0x80
			seq++
			ts += frameSize
		}
	}()
	var once bool
	stop := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if once {
			return
		}
		once = true
		s.playing[to] = false
		close(done)
	}
	if !loop {
		go func() {
			<-finished
			stop()
		}()
	}
	return stop, finished
}

// Listen hands every valid RTP packet that side sends from its latched
// source to fn, as well as relaying it: the PBX's own ear, for recording
// a message or reading DTMF. fn runs on the relay's read goroutine and
// must not keep pkt. nil stops listening.
func (s *Session) Listen(side Side, fn func(pkt []byte)) {
	if side != SideA && side != SideB {
		return
	}
	s.mu.Lock()
	s.tap[side] = fn
	s.mu.Unlock()
}

// DecodeG711 decodes a PCMU or PCMA payload into out (which must hold
// len(payload) samples) and returns the samples written; 0 for another
// payload type.
func DecodeG711(pt uint8, payload []byte, out []int16) int {
	if pt != PayloadPCMU && pt != PayloadPCMA || len(out) < len(payload) {
		return 0
	}
	for i, b := range payload {
		if pt == PayloadPCMU {
			out[i] = ulawDecode(b)
		} else {
			out[i] = alawDecode(b)
		}
	}
	return len(payload)
}

func ulawDecode(b byte) int16 {
	b = ^b
	t := (int(b&0x0f) << 3) + 0x84
	t <<= (b & 0x70) >> 4
	if b&0x80 != 0 {
		return int16(0x84 - t)
	}
	return int16(t - 0x84)
}

func alawDecode(b byte) int16 {
	b ^= 0x55
	t := int(b&0x0f) << 4
	switch seg := (b & 0x70) >> 4; seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if b&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

func (s *Session) send(to Side, dst netip.AddrPort, pkt []byte) error {
	if !dst.IsValid() {
		return errNoPeer
	}
	_, err := s.conns[to][rtpKind].WriteToUDPAddrPort(pkt, dst)
	return err
}

// Samples returns a copy of m's 8 kHz samples.
func (m *Music) Samples() []int16 { return append([]int16(nil), m.samples...) }

// NewMusic returns 8 kHz samples as Music (prompts a PBX feature makes).
func NewMusic(samples []int16) *Music { return &Music{samples: samples} }
