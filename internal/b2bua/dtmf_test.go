package b2bua

import (
	"encoding/binary"
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
	if len(fired) != 2 || fired[0] != "203" || fired[1] != "5" {
		t.Fatalf("fired %q, want [203 5]", fired)
	}
}
