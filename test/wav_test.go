package test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// toneAmplitude is the peak of a generated tone: about 40% of full scale,
// loud enough to survive G.711 companding, far from clipping.
const toneAmplitude = 13000

// writeToneWAV writes a mono 16-bit PCM WAV file holding a sine tone of freq
// Hz lasting d seconds at the given sample rate. baresip's aufile source
// needs 8000 Hz mono s16 for PCMU.
func writeToneWAV(path string, freq, seconds float64, rate int) error {
	n := int(seconds * float64(rate))
	data := make([]byte, 2*n)
	for i := range n {
		v := toneAmplitude * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))
		binary.LittleEndian.PutUint16(data[2*i:], uint16(int16(math.Round(v))))
	}
	const fmtSize = 16
	hdr := make([]byte, 0, 44)
	hdr = append(hdr, "RIFF"...)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(4+8+fmtSize+8+len(data)))
	hdr = append(hdr, "WAVE"...)
	hdr = append(hdr, "fmt "...)
	hdr = binary.LittleEndian.AppendUint32(hdr, fmtSize)
	hdr = binary.LittleEndian.AppendUint16(hdr, 1) // PCM
	hdr = binary.LittleEndian.AppendUint16(hdr, 1) // mono
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(rate))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(2*rate)) // byte rate
	hdr = binary.LittleEndian.AppendUint16(hdr, 2)              // block align
	hdr = binary.LittleEndian.AppendUint16(hdr, 16)             // bits per sample
	hdr = append(hdr, "data"...)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(data)))
	return os.WriteFile(path, append(hdr, data...), 0o644)
}

// pcm is decoded audio: the first channel of a 16-bit PCM WAV file.
type pcm struct {
	Rate    int
	Samples []int16
}

// Seconds is the length of the audio.
func (a pcm) Seconds() float64 { return float64(len(a.Samples)) / float64(a.Rate) }

// readWAV decodes a 16-bit PCM WAV file and keeps its first channel. It
// tolerates a data chunk whose size was never filled in (0 or larger than
// the file), which is what a recorder killed mid-call leaves behind.
func readWAV(path string) (pcm, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return pcm{}, err
	}
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return pcm{}, fmt.Errorf("%s: not a RIFF/WAVE file", path)
	}
	var channels, bits, rate int
	for off := 12; off+8 <= len(b); {
		id := string(b[off : off+4])
		size := int(binary.LittleEndian.Uint32(b[off+4 : off+8]))
		body := b[off+8:]
		switch id {
		case "fmt ":
			if size < 16 || len(body) < 16 {
				return pcm{}, fmt.Errorf("%s: short fmt chunk", path)
			}
			if format := binary.LittleEndian.Uint16(body[0:2]); format != 1 && format != 0xFFFE {
				return pcm{}, fmt.Errorf("%s: format %d is not PCM", path, format)
			}
			channels = int(binary.LittleEndian.Uint16(body[2:4]))
			rate = int(binary.LittleEndian.Uint32(body[4:8]))
			bits = int(binary.LittleEndian.Uint16(body[14:16]))
		case "data":
			if channels == 0 {
				return pcm{}, fmt.Errorf("%s: data chunk before fmt chunk", path)
			}
			if bits != 16 {
				return pcm{}, fmt.Errorf("%s: %d bits per sample, want 16", path, bits)
			}
			if size == 0 || size > len(body) {
				size = len(body)
			}
			frame := 2 * channels
			a := pcm{Rate: rate, Samples: make([]int16, size/frame)}
			for i := range a.Samples {
				a.Samples[i] = int16(binary.LittleEndian.Uint16(body[i*frame:]))
			}
			return a, nil
		}
		off += 8 + size + size%2 // chunks are padded to an even length
	}
	return pcm{}, fmt.Errorf("%s: no data chunk", path)
}

// errSilent says a recording holds no audible signal.
var errSilent = errors.New("recording is silent")

// audible is the peak a 20 ms block must exceed to count as signal rather
// than silence or comfort noise.
const audible = 500

// audibleSpan returns the start and end sample of the audible part: from the
// first to the last 20 ms block whose peak exceeds audible.
func audibleSpan(a pcm) (start, end int) {
	block := a.Rate / 50
	start, end = -1, -1
	for i := 0; i < len(a.Samples); i += block {
		j := min(i+block, len(a.Samples))
		for _, s := range a.Samples[i:j] {
			if s > audible || s < -audible {
				if start < 0 {
					start = i
				}
				end = j
				break
			}
		}
	}
	return start, end
}

// goertzel returns the power of frequency f in x (already windowed), using
// the Goertzel recurrence, which works for any f, not only FFT bins.
func goertzel(x []float64, f float64, rate int) float64 {
	coeff := 2 * math.Cos(2*math.Pi*f/float64(rate))
	var s1, s2 float64
	for _, v := range x {
		s := v + coeff*s1 - s2
		s2, s1 = s1, s
	}
	return s1*s1 + s2*s2 - coeff*s1*s2
}

// dominantFrequency finds the strongest tone in the audible part of a: it
// takes up to one second from the middle of that part, applies a Hann window
// and scans 100 Hz up to just below Nyquist in 1 Hz steps. It also returns
// how many seconds of audio were audible.
func dominantFrequency(a pcm) (freq, audibleSeconds float64, err error) {
	if a.Rate <= 0 {
		return 0, 0, fmt.Errorf("bad sample rate %d", a.Rate)
	}
	start, end := audibleSpan(a)
	if start < 0 {
		return 0, 0, errSilent
	}
	audibleSeconds = float64(end-start) / float64(a.Rate)
	n := min(end-start, a.Rate)
	if n < a.Rate/10 {
		return 0, audibleSeconds, fmt.Errorf("only %.3f s audible: %w", audibleSeconds, errSilent)
	}
	return strongestIn(a, start+(end-start-n)/2, n), audibleSeconds, nil
}

// strongestIn returns the strongest tone in the n samples of a from
// sample from: a Hann window, then 100 Hz up to just below Nyquist in
// 1 Hz steps.
func strongestIn(a pcm, from, n int) float64 {
	x := make([]float64, n)
	for i := range x {
		hann := 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n-1))
		x[i] = hann * float64(a.Samples[from+i])
	}
	best, bestPower := 0.0, -1.0
	for f := 100.0; f < float64(a.Rate)/2-50; f++ {
		if p := goertzel(x, f, a.Rate); p > bestPower {
			best, bestPower = f, p
		}
	}
	return best
}

// TestToneDetect checks the WAV writer, reader and detector against each
// other, so that a failing call test points at the call, not at the tools.
func TestToneDetect(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		freq, seconds float64
	}{
		{440, 2},
		{880, 1},
		{1000, 0.5},
		{3100, 0.3},
	} {
		path := filepath.Join(dir, fmt.Sprintf("tone-%g.wav", tc.freq))
		if err := writeToneWAV(path, tc.freq, tc.seconds, 8000); err != nil {
			t.Fatal(err)
		}
		a, err := readWAV(path)
		if err != nil {
			t.Fatal(err)
		}
		if a.Rate != 8000 || math.Abs(a.Seconds()-tc.seconds) > 0.001 {
			t.Errorf("%g Hz: read back %d Hz, %.3f s; want 8000 Hz, %.3f s", tc.freq, a.Rate, a.Seconds(), tc.seconds)
		}
		got, secs, err := dominantFrequency(a)
		if err != nil {
			t.Fatalf("%g Hz: %v", tc.freq, err)
		}
		if math.Abs(got-tc.freq) > 2 || math.Abs(secs-tc.seconds) > 0.03 {
			t.Errorf("%g Hz: detected %g Hz over %.3f s audible", tc.freq, got, secs)
		}
	}

	silent := filepath.Join(dir, "silent.wav")
	if err := writeToneWAV(silent, 440, 1, 8000); err != nil {
		t.Fatal(err)
	}
	a, err := readWAV(silent)
	if err != nil {
		t.Fatal(err)
	}
	clear(a.Samples)
	if _, _, err := dominantFrequency(a); !errors.Is(err, errSilent) {
		t.Errorf("silence: got %v, want errSilent", err)
	}
}
