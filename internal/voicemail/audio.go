package voicemail

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/sekisho/sekisho/internal/media"
)

// The prompts are tones made here (no recorded voice, nothing to
// license): the greeting is a falling three-note chime, then the beep.
func tone(freqs []float64, seconds float64) []int16 {
	n := int(seconds * 8000)
	out := make([]int16, 0, n*len(freqs))
	for _, f := range freqs {
		for i := range n {
			env := math.Min(1, math.Min(float64(i), float64(n-i))/40)
			out = append(out, int16(7000*env*math.Sin(2*math.Pi*f*float64(i)/8000)))
		}
	}
	return out
}

func silence(seconds float64) []int16 { return make([]int16, int(seconds*8000)) }

// greeting is the built-in greeting; the beep follows it.
func greeting() *media.Music {
	s := tone([]float64{784, 659, 523}, 0.25)
	return media.NewMusic(append(s, silence(0.3)...))
}

func beep(seconds float64) *media.Music {
	return media.NewMusic(append(tone([]float64{1000}, seconds), silence(0.1)...))
}

func beeps(n int) *media.Music {
	var s []int16
	for range n {
		s = append(s, tone([]float64{1000}, 0.12)...)
		s = append(s, silence(0.12)...)
	}
	return media.NewMusic(s)
}

// recorder keeps the caller's audio, decoded to 16-bit samples, up to a
// limit. Its packet method runs on the relay's goroutine.
type recorder struct {
	pt  uint8
	max int

	mu  sync.Mutex
	buf []int16 // guarded by mu
	tmp [1500]int16
}

func newRecorder(pt uint8, limit time.Duration) *recorder {
	return &recorder{pt: pt, max: int(limit.Seconds() * 8000)}
}

func (r *recorder) packet(pkt []byte) {
	pt, _, payload, ok := rtpPayload(pkt)
	if !ok || pt != r.pt || len(payload) > len(r.tmp) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := media.DecodeG711(pt, payload, r.tmp[:])
	if len(r.buf)+n > r.max {
		n = r.max - len(r.buf)
	}
	r.buf = append(r.buf, r.tmp[:n]...)
}

func (r *recorder) samples() []int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int16(nil), r.buf...)
}

// writeWAV writes 8 kHz mono 16-bit PCM, readable by media.LoadWAV and
// any player, with owner-only permissions (a message is private).
func writeWAV(path string, s []int16) error {
	data := make([]byte, 44+2*len(s))
	copy(data, "RIFF")
	binary.LittleEndian.PutUint32(data[4:], uint32(36+2*len(s)))
	copy(data[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(data[16:], 16)
	binary.LittleEndian.PutUint16(data[20:], 1)
	binary.LittleEndian.PutUint16(data[22:], 1)
	binary.LittleEndian.PutUint32(data[24:], 8000)
	binary.LittleEndian.PutUint32(data[28:], 16000)
	binary.LittleEndian.PutUint16(data[32:], 2)
	binary.LittleEndian.PutUint16(data[34:], 16)
	copy(data[36:], "data")
	binary.LittleEndian.PutUint32(data[40:], uint32(2*len(s)))
	for i, v := range s {
		binary.LittleEndian.PutUint16(data[44+2*i:], uint16(v))
	}
	tmp := path + ".part"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("voicemail: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("voicemail: write %s: %w", path, err)
	}
	return nil
}
