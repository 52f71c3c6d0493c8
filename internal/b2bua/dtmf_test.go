package b2bua

import (
	"encoding/binary"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestKeypad: ## number # fires once with the number; keys that are not
// the code, a *, or a pause reset it; an event's repeated packets are one
// key; other payload types are not keys.
func TestKeypad(t *testing.T) {
	var mu sync.Mutex
	var fired []string
	k := &keypad{event: func() int { return 101 }, fire: func(n string) {
		mu.Lock()
		fired = append(fired, n)
		mu.Unlock()
	}}
	ts := uint32(0)
	press := func(keys string, pt byte) {
		for _, c := range keys {
			ev := byte(c - '0')
			switch c {
			case '*':
				ev = 10
			case '#':
				ev = 11
			}
			ts += 800
			for range 3 { // a key's packets share its timestamp
				pkt := make([]byte, 16)
				pkt[0], pkt[1] = 0x80, pt
				binary.BigEndian.PutUint32(pkt[4:], ts)
				pkt[12] = ev
				k.packet(pkt)
			}
		}
	}
	press("##203#", 101)
	press("1##5#", 101)
	press("#2#03#", 101)
	press("##*7#", 101)
	press("##99#", 0) // audio, not keys
	press("###", 101)
	press("##", 101)
	k.mu.Lock()
	k.at = time.Now().Add(-10 * time.Second) // a long pause
	k.mu.Unlock()
	press("42#", 101)
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(fired) // each fires on its own goroutine
	if len(fired) != 2 || fired[0] != "203" || fired[1] != "5" {
		t.Fatalf("fired %q, want [203 5]", fired)
	}
}

// FuzzKeypad: any packets are keys or nothing, without a panic, and a
// fired transfer names digits only.
func FuzzKeypad(f *testing.F) {
	f.Add([]byte{0x80, 101, 0, 1, 0, 0, 3, 32, 0, 0, 0, 1, 11, 0x80, 0, 160})
	f.Add([]byte{0x90, 101, 0, 1, 0, 0, 3, 32, 0, 0, 0, 1, 5, 0, 0, 160})
	f.Fuzz(func(t *testing.T, stream []byte) {
		k := &keypad{event: func() int { return 101 }}
		// fire runs on its own goroutine: a wrong number panics there,
		// which fails the fuzz run.
		k.fire = func(n string) {
			for _, c := range n {
				if c < '0' || c > '9' {
					panic("fired " + n)
				}
			}
		}
		for len(stream) >= 16 {
			k.packet(stream[:16])
			stream = stream[16:]
		}
		k.packet(stream)
	})
}

// FuzzSignalling: the Replaces value, an offer's codecs and a park slot,
// from whatever a phone sends: no panic, and only sane values out.
func FuzzSignalling(f *testing.F) {
	f.Add("abc@host;to-tag=1;from-tag=2", "v=0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n", "*851")
	f.Add(";;=;to-tag", "m=audio 0 RTP/AVP 8\nm=audio 5 RTP/AVP 8 96\na=rtpmap:96 TELEPHONE-EVENT/8000", "*8600")
	f.Fuzz(func(t *testing.T, replaces, sdp, dialled string) {
		if c, to, from, ok := parseReplaces(replaces); ok && (c == "" || to == "" || from == "") {
			t.Fatalf("Replaces %q accepted with an empty part", replaces)
		}
		g, ev := offerCodecs([]byte(sdp))
		if g != -1 && g != 0 && g != 8 || ev != -1 && (ev < 96 || ev > 127) {
			t.Fatalf("offer %q: codec %d, events %d", sdp, g, ev)
		}
		if n, ok := ParkSlot(dialled, ParkPrefix); ok && (n < 1 || n > maxParkSlot) {
			t.Fatalf("slot %d from %q", n, dialled)
		}
	})
}
