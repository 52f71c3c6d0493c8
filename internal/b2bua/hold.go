package b2bua

import (
	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/media"
	"github.com/sekisho/sekisho/internal/response"
)

// Music on hold. When a party puts the call on hold (a re-INVITE with
// sendonly or inactive, or the RFC 2543 c=0.0.0.0), the PBX answers it
// itself and plays Config.HoldMusic to the held party from the relay's
// port for that party; the held party gets no re-INVITE at all, so its
// stream and codec stay as they are. The resume (a re-INVITE back to
// sendrecv) is answered the same way and the music stops. Without music,
// or when the held party does not speak G.711, the hold is relayed to the
// other party as any re-INVITE is.

// holdLocally handles a hold or resume re-INVITE from side from, and
// reports whether it did.
func (b *B2BUA) holdLocally(c *Call, from side, req *sip.Request, tx sip.ServerTransaction) bool {
	if b.cfg.HoldMusic == nil || c.sess == nil || !req.IsInvite() || !isSDP(req) {
		return false
	}
	offer, err := media.ParseSDP(req.Body())
	if err != nil {
		return false // relay answers 488
	}
	hold := offer.Direction == "sendonly" || offer.Direction == "inactive" || offer.Addr.Addr().IsUnspecified()
	held := 1 - from
	c.mu.Lock()
	me, other := c.p[from], c.p[held]
	playing := c.music[held] != nil
	pt := g711(other.sdp, me.sdp)
	c.mu.Unlock()
	switch {
	case hold && !playing && pt >= 0:
	case !hold && playing:
	default:
		return false
	}
	dir := "sendrecv"
	if hold {
		dir = "recvonly"
		if offer.Direction == "inactive" {
			dir = "inactive"
		}
	}
	answer, err := media.RewriteSDP(withDirection(other.sdp, dir), c.sessAddr, c.sess.Port(media.Side(from)))
	if err != nil {
		return false
	}
	c.sess.SetPeer(media.Side(from), offer.Addr)
	c.sess.SetHold(hold)
	c.mu.Lock()
	me.sdp = req.Body()
	if hold {
		c.music[held] = c.sess.Play(media.Side(held), b.cfg.HoldMusic, uint8(pt))
	} else {
		c.stopMusicLocked(held)
	}
	c.mu.Unlock()
	res := sip.NewResponseFromRequest(req, 200, response.Phrase(200), answer)
	ct := sip.ContentTypeHeader("application/sdp")
	res.AppendHeader(&ct)
	contact := b.contact
	res.AppendHeader(&contact)
	tx.Respond(res)
	c.log.Debug("b2bua: hold handled by the PBX", "hold", hold, "music", hold)
	return true
}

// stopMusicLocked stops the music playing to side s, if any. c.mu is held.
func (c *Call) stopMusicLocked(s side) {
	if stop := c.music[s]; stop != nil {
		stop()
		c.music[s] = nil
	}
}

// stopMusic stops any music playing to side s.
func (c *Call) stopMusic(s side) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopMusicLocked(s)
}

// g711 returns the G.711 payload type the held party's stream uses, from
// its own last session description, else the holder's; -1 when neither
// leads with PCMU or PCMA (the music is G.711 only).
func g711(sdps ...[]byte) int {
	for _, s := range sdps {
		if o, err := media.ParseSDP(s); err == nil && (o.Format == media.PayloadPCMU || o.Format == media.PayloadPCMA) {
			return o.Format
		}
	}
	return -1
}
