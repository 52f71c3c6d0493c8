package b2bua

import (
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/media"
)

// In-call feature codes. An extension in an answered call types
// TransferCode, a number and # on its keypad (RFC 4733 telephone-events)
// to blind-transfer the other party to that number: the same decision as
// its phone's transfer button (Config.Place on the extension's behalf,
// limits and record included), without a REFER. A carrier's side has no
// feature codes (no extension is responsible), and a refusal plays three
// short beeps to the extension and changes nothing.
const TransferCode = "##"

// keypad collects one side's digits into feature codes. Its packet method
// runs on the relay's goroutine for every RTP packet of the side: the
// first check is one comparison, and nothing blocks.
type keypad struct {
	event func() int // the side's telephone-event payload type, -1 none
	fire  func(number string)

	mu     sync.Mutex
	last   uint32    // timestamp of the last event taken; guarded by mu
	seen   bool      // guarded by mu
	digits []byte    // guarded by mu
	at     time.Time // when the last digit came; guarded by mu
}

func (k *keypad) packet(pkt []byte) {
	if len(pkt) < 16 || int(pkt[1]&0x7f) != k.event() || pkt[0]&0x0f != 0 || pkt[0]&0x10 != 0 {
		return
	}
	ts := binary.BigEndian.Uint32(pkt[4:])
	ev := pkt[12]
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.seen && ts == k.last {
		return // the same key still held, or its end packets
	}
	k.seen, k.last = true, ts
	var d byte
	switch {
	case ev <= 9:
		d = '0' + ev
	case ev == 10:
		d = '*'
	case ev == 11:
		d = '#'
	default:
		return
	}
	now := time.Now()
	if now.Sub(k.at) > 5*time.Second {
		k.digits = k.digits[:0] // a pause ends what was typed
	}
	k.at = now
	k.digits = append(k.digits, d)
	typed := string(k.digits)
	switch {
	case len(typed) <= len(TransferCode):
		if !strings.HasPrefix(TransferCode, typed) {
			// Not the code: start again, from this key if it begins it.
			k.digits = k.digits[:0]
			if d == TransferCode[0] {
				k.digits = append(k.digits, d)
			}
		}
	case d == '#':
		number := typed[len(TransferCode) : len(typed)-1]
		k.digits = k.digits[:0]
		if number != "" {
			go k.fire(number)
		}
	case d == '*' || len(k.digits) > 32:
		k.digits = k.digits[:0]
	}
}

// listenKeypads starts collecting feature codes on both sides of c.
func (b *B2BUA) listenKeypads(c *Call) {
	if c.sess == nil {
		return
	}
	for s := range 2 {
		x := side(s)
		k := &keypad{
			event: func() int { return int(c.events[x].Load()) },
			fire:  func(number string) { b.keypadTransfer(c, x, number) },
		}
		c.sess.Listen(media.Side(x), k.packet)
	}
	c.refreshEvents()
}

// refreshEvents reads each side's telephone-event payload type from its
// party's SDP; a side with no extension gets none (no feature codes).
func (c *Call) refreshEvents() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s, p := range c.p {
		ev := -1
		if p != nil && p.ext != "" {
			_, ev = offerCodecs(p.sdp)
		}
		c.events[s].Store(int32(ev))
	}
}

// keypadTransfer carries out ## number # typed on side x.
func (b *B2BUA) keypadTransfer(c *Call, x side, number string) {
	c.mu.Lock()
	responsible := c.p[x].ext
	busy := c.moved || c.ended
	c.mu.Unlock()
	if responsible == "" || busy || b.cfg.Place == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	a, rec, code := b.cfg.Place(ctx, "transfer", responsible, sip.Uri{Scheme: "sip", User: number, Host: b.cfg.Host}, c.records()[0].Data().CallID)
	cancel()
	if rec == nil {
		c.note("keypad transfer to " + number + " refused: " + a.Reasons())
		c.log.Info("b2bua: keypad transfer refused", "responsible", responsible, "to", number, "status", code)
		b.beepTo(c, x, 3)
		return
	}
	c.mu.Lock()
	if c.moved || c.ended {
		c.mu.Unlock()
		rec.Finish(491, "b2bua: another transfer or the call's end came first", "pbx")
		return
	}
	c.moved, c.mover, c.left, c.subscribed = true, x, false, false
	c.mu.Unlock()
	c.note("keypad transfer to " + number + " by " + responsible + " (" + a.Reasons() + ")")
	b.carryOut(c, x, a, rec)
}

// beepTo plays n short beeps to side x (a refused feature code).
func (b *B2BUA) beepTo(c *Call, x side, n int) {
	c.mu.Lock()
	pt := g711(c.p[1-x].sdp, c.p[x].sdp)
	c.mu.Unlock()
	if pt < 0 || c.sess == nil {
		return
	}
	var s []int16
	for range n {
		for i := range 960 {
			s = append(s, int16(6000*sinTable[i%8]))
		}
		s = append(s, make([]int16, 960)...)
	}
	stop, done := c.sess.PlayOnce(media.Side(x), media.NewMusic(s), uint8(pt))
	<-done
	stop()
}

// sinTable is one period of a 1 kHz tone at 8 kHz.
var sinTable = [8]float64{0, 0.7071, 1, 0.7071, 0, -0.7071, -1, -0.7071}
