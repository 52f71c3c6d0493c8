package b2bua

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/media"
	"github.com/sekisho/sekisho/internal/response"
)

// Call park (パーク保留). A phone parks the party it is talking to by
// transferring it to ParkPrefix and a slot (*851 is slot 1): the party
// stays on the line, hearing music on hold, and any extension picks it up
// by dialling PickupPrefix and the slot (*861). Parking and picking up
// place no new call: the parked leg is the one that was already decided,
// counted and recorded, and it keeps its record and its duration limit. A
// carrier cannot park (it cannot transfer), and only an authenticated
// extension can pick up (pbx.feature runs the auth stage first). Nobody
// picks up within ParkTimeout: the PBX hangs up, so a forgotten outside
// line does not stay open (and billed) for ever.
const (
	ParkPrefix   = "*85"
	PickupPrefix = "*86"
	ParkTimeout  = 5 * time.Minute
	maxParkSlot  = 99
)

// parked is a call waiting in a slot; side is the empty side.
type parked struct {
	c     *Call
	side  side
	timer *time.Timer
}

// ParkSlot reads a slot number after prefix in a dialled or Refer-To user
// part: 1 to 99.
func ParkSlot(user, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(user, prefix)
	if !ok || rest == "" || len(rest) > 2 {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 || n > maxParkSlot || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}

// park parks the party opposite side x of c in slot, for a REFER from x.
func (b *B2BUA) park(c *Call, x side, slot int, responsible string, req *sip.Request, tx sip.ServerTransaction) {
	if c.sess == nil || b.cfg.HoldMusic == nil {
		// No relay or no music: a parked party would sit in silence with
		// no PBX port to reach it on. Refuse rather than pretend.
		tx.Respond(response.New(req, 501))
		return
	}
	c.mu.Lock()
	busy := c.moved || c.ended
	if !busy {
		c.moved, c.mover, c.subscribed = true, x, true
	}
	xp, y := c.p[x], c.p[1-x]
	pt := g711(y.sdp)
	c.mu.Unlock()
	if busy {
		tx.Respond(response.New(req, 491))
		return
	}
	done := func() {
		c.mu.Lock()
		c.moved = false
		c.mu.Unlock()
	}
	b.mu.Lock()
	taken := b.parked[slot] != nil
	if !taken {
		b.parked[slot] = &parked{c: c, side: x}
	}
	b.mu.Unlock()
	if taken || pt < 0 {
		done()
		code := 486 // the slot is in use
		if pt < 0 {
			code = 488 // the party does not speak G.711: no music for it
		}
		c.note(fmt.Sprintf("park in slot %d by %s answered %d", slot, responsible, code))
		tx.Respond(response.New(req, code))
		return
	}
	accepted := sip.NewResponseFromRequest(req, 202, response.Phrase(202), nil)
	ct := b.contact
	accepted.AppendHeader(&ct)
	tx.Respond(accepted)
	c.note(fmt.Sprintf("parked in slot %d by %s", slot, responsible))
	c.log.Info("b2bua: call parked", "slot", slot, "by", responsible)
	go func() {
		defer done()
		b.notify(c, xp, "100 Trying", false)
		c.mu.Lock()
		c.music[1-x] = c.sess.Play(media.Side(1-x), b.cfg.HoldMusic, uint8(pt))
		c.mu.Unlock()
		// The parker leaves; the call stays up with nobody on its side.
		xp.stop()
		b.mu.Lock()
		delete(b.legs, xp.key)
		b.gone[xp.key] = xp
		if p := b.parked[slot]; p != nil && p.c == c {
			p.timer = time.AfterFunc(ParkTimeout, func() {
				b.unpark(slot, c, "park: nobody picked up slot "+strconv.Itoa(slot)+" within "+ParkTimeout.String())
			})
		}
		b.mu.Unlock()
		context.AfterFunc(xp.context(), func() {
			b.mu.Lock()
			delete(b.gone, xp.key)
			b.mu.Unlock()
		})
		// The parked party hanging up frees the slot.
		context.AfterFunc(y.context(), func() { b.unpark(slot, c, "") })
		b.notify(c, xp, "200 OK", true)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		xp.bye(ctx)
	}()
}

// unpark frees slot if c still waits there, and hangs c up with reason
// when there is one.
func (b *B2BUA) unpark(slot int, c *Call, reason string) {
	b.mu.Lock()
	p := b.parked[slot]
	if p == nil || p.c != c {
		b.mu.Unlock()
		return
	}
	delete(b.parked, slot)
	b.mu.Unlock()
	if p.timer != nil {
		p.timer.Stop()
	}
	if reason != "" {
		b.hangup(c, "pbx", reason)
	}
}

// Pickup answers ext's INVITE to PickupPrefix+slot with the call parked
// there: ext takes the parker's side, the music stops, and the parked
// party is re-INVITEd onto ext's media. An empty slot answers 404.
func (b *B2BUA) Pickup(req *sip.Request, tx sip.ServerTransaction, slot int, ext string) {
	b.mu.Lock()
	p := b.parked[slot]
	delete(b.parked, slot)
	b.mu.Unlock()
	if p == nil {
		respond(tx, req, 404)
		return
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	c, x := p.c, p.side
	c.mu.Lock()
	y := c.p[1-x]
	ended := c.ended
	c.mu.Unlock()
	offer, err := media.ParseSDP(req.Body())
	if ended || err != nil {
		code := 404
		if err != nil {
			code = 488
			b.mu.Lock()
			b.parked[slot] = p // still parked for a phone that can take it
			b.mu.Unlock()
		}
		respond(tx, req, code)
		return
	}
	answer, err := media.RewriteSDP(sendrecv(y.sdp), c.sessAddr, c.sess.Port(media.Side(x)))
	if err != nil {
		respond(tx, req, 488)
		return
	}
	as, err := b.uaA.ReadInvite(req, tx)
	if err != nil {
		respond(tx, req, 400)
		return
	}
	np := serverParty(as, ext, req.Body())
	c.sess.SetPeer(media.Side(x), offer.Addr)
	c.mu.Lock()
	c.p[x] = np
	c.stopMusicLocked(1 - x)
	c.mu.Unlock()
	c.refreshEvents()
	b.mu.Lock()
	b.legs[np.key] = &leg{call: c, side: x}
	b.mu.Unlock()
	np.stop = context.AfterFunc(np.context(), func() { b.untrack(c) })
	if err := as.RespondSDP(answer); err != nil {
		b.hangup(c, "pbx", "park: the picking phone did not confirm: "+err.Error())
		return
	}
	c.note(fmt.Sprintf("picked up from slot %d by %s", slot, ext))
	c.log.Info("b2bua: parked call picked up", "slot", slot, "by", ext)
	b.reoffer(c, 1-x, req.Body())
}
