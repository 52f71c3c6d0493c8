package b2bua

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/cdr"
	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/media"
	"github.com/sekisho/sekisho/internal/response"
	"github.com/sekisho/sekisho/internal/store"
)

// Transfers (RFC 3515 REFER, RFC 5589 call flows).
//
// A transfer creates a call to whatever the Refer-To names, billed to the
// office: the incident's kind of fraud, an outside caller transferred to a
// number abroad, needs no stolen password, only a phone that transfers.
// So the party that asked is the one responsible, and a transfer is
// decided by the same chain as a call that party dialled:
//
//   - Blind (no Replaces): Config.Place runs the whole chain on behalf of
//     the transferor's extension, limits included, and opens a record of
//     its own. The PBX rings the target with the transferee's session
//     description, and when it answers, the target takes the transferor's
//     side of the call: the relay's port on that side stays, only its peer
//     moves, and the transferee is re-INVITEd to the target's answer (which
//     also takes it off hold).
//   - Attended (Refer-To with Replaces): the transferor has a second call,
//     already decided and recorded when it was dialled. The gate decides
//     again on the transferor's current policy (Config.Gate, no limits: no
//     new leg is placed), then that call's other party is re-INVITEd onto
//     this call's relay port and joins it; the transferor's two legs end.
//
// A carrier never transfers (no extension is responsible: 403), and the
// Refer-To's own headers and parameters reach no one.

// refer handles a REFER from side from of call c.
func (b *B2BUA) refer(c *Call, from side, req *sip.Request, tx sip.ServerTransaction) {
	rt := req.ReferTo()
	if rt == nil || rt.Address.Host == "" {
		tx.Respond(response.New(req, 400))
		return
	}
	c.mu.Lock()
	responsible := c.p[from].ext
	busy := c.moved || c.ended
	c.mu.Unlock()
	if busy {
		// One transfer at a time (RFC 3261 14.1 uses 491 for the same
		// race with re-INVITEs).
		tx.Respond(response.New(req, 491))
		return
	}
	target := *rt.Address.Clone()
	replaces := ""
	if target.Headers != nil {
		if v, ok := target.Headers.Get("Replaces"); ok {
			if u, err := url.PathUnescape(v); err == nil {
				replaces = u
			} else {
				replaces = v
			}
		}
	}
	// Only the user part and host decide anything; headers a REFER puts
	// in its Refer-To (an attacker's Route, a second Refer-To) go nowhere.
	target.Headers = nil
	target.UriParams = nil
	if responsible == "" {
		c.note(fmt.Sprintf("REFER to %s answered 403 (b2bua: a carrier cannot transfer)", target.User))
		c.log.Info("b2bua: transfer refused", "refer_to", target.User, "reason", "from a carrier")
		tx.Respond(response.New(req, 403))
		return
	}
	if slot, ok := ParkSlot(target.User, ParkPrefix); ok {
		b.park(c, from, slot, responsible, req, tx)
		return
	}
	if replaces != "" {
		b.attended(c, from, responsible, target, replaces, req, tx)
		return
	}
	b.blind(c, from, responsible, target, req, tx)
}

// blind decides a transfer of the other party to target and, allowed,
// carries it out in the background.
func (b *B2BUA) blind(c *Call, from side, responsible string, target sip.Uri, req *sip.Request, tx sip.ServerTransaction) {
	if b.cfg.Place == nil {
		tx.Respond(response.New(req, 403))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	a, rec, code := b.cfg.Place(ctx, "transfer", responsible, target, req.CallID().Value())
	cancel()
	if rec == nil {
		c.note(fmt.Sprintf("REFER to %s answered %d (%s)", target.User, code, a.Reasons()))
		c.log.Info("b2bua: transfer refused", "responsible", responsible, "refer_to", target.User, "status", code, "reason", a.Reasons())
		tx.Respond(response.New(req, code))
		return
	}
	c.mu.Lock()
	if c.moved || c.ended {
		c.mu.Unlock()
		rec.Finish(491, "b2bua: another transfer or the call's end came first", "pbx")
		tx.Respond(response.New(req, 491))
		return
	}
	c.moved, c.mover, c.left, c.subscribed = true, from, false, true
	c.mu.Unlock()
	c.note(fmt.Sprintf("REFER to %s answered 202 (%s)", target.User, a.Reasons()))
	c.log.Info("b2bua: transfer accepted", "responsible", responsible, "refer_to", target.User)
	accepted := sip.NewResponseFromRequest(req, 202, response.Phrase(202), nil)
	ct := b.contact
	accepted.AppendHeader(&ct)
	tx.Respond(accepted)
	go b.carryOut(c, from, a, rec)
}

// carryOut rings the blind transfer's target and, when it answers, puts
// it on side x of c in place of the transferor.
func (b *B2BUA) carryOut(c *Call, x side, a *chain.Attempt, rec *cdr.Record) {
	defer func() {
		c.mu.Lock()
		c.moved = false
		c.mu.Unlock()
	}()
	c.mu.Lock()
	xp, yp := c.p[x], c.p[1-x]
	ysdp := yp.sdp
	c.mu.Unlock()
	b.notify(c, xp, "100 Trying", false)

	body := sendrecv(ysdp)
	if c.sess != nil {
		var err error
		if body, err = media.RewriteSDP(body, c.sessAddr, c.sess.Port(media.Side(x))); err != nil {
			b.transferFailed(c, xp, rec, 488, "b2bua: transferee SDP: "+err.Error(), "pbx")
			return
		}
	}
	ringCtx, stop := context.WithTimeout(context.Background(), b.cfg.RingTimeout)
	defer stop()
	defer context.AfterFunc(yp.context(), stop)() // the transferee hung up
	if a.Presented == "" {
		// The target sees who it will talk to: the transferee.
		a.Presented = partyName(yp)
	}
	ctype := sip.ContentTypeHeader("application/sdp")
	winner, ext, failures, _ := b.fork(ringCtx, a, body, &ctype, 70, nil, func() bool { return yp.context().Err() != nil }, nil)
	if winner == nil {
		code, reason, by := b.failure(yp.context(), ringCtx, failures, len(a.Targets) > 0 && a.Targets[0].Trunk != "")
		if code == 487 {
			code, reason, by = 487, "b2bua: the transferee hung up", "caller"
		}
		b.transferFailed(c, xp, rec, code, reason, by)
		return
	}
	ackCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := winner.Ack(ackCtx); err != nil {
		c.log.Warn("b2bua: ACK to transfer target failed", "err", err)
	}
	np := clientParty(winner, ext)
	if c.sess != nil {
		offer, err := media.ParseSDP(np.sdp)
		if err != nil {
			winner.Bye(ackCtx)
			b.transferFailed(c, xp, rec, 488, "b2bua: target SDP: "+err.Error(), "callee")
			return
		}
		c.sess.SetPeer(media.Side(x), offer.Addr)
	}
	rec.Answered()
	rec.Update(func(r *store.CDR) { r.ResultCode = 200 })

	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		winner.Bye(ackCtx)
		rec.Finish(487, "b2bua: the call ended before the transfer target answered", "caller")
		return
	}
	old := c.p[x]
	c.p[x] = np
	c.recs = append(c.recs, rec)
	left := c.left
	c.mu.Unlock()
	old.stop()
	info := CallInfo{Caller: a.Caller, Callee: ext, Outbound: a.Direction() == "outbound", International: a.Dest.Kind == chain.KindInternational}
	b.mu.Lock()
	delete(b.legs, old.key)
	if !left {
		b.gone[old.key] = old
	}
	b.legs[np.key] = &leg{call: c, side: x}
	c.info = append(c.info, info)
	b.mu.Unlock()
	np.stop = context.AfterFunc(np.context(), func() { b.untrack(c) })
	if !left {
		context.AfterFunc(old.context(), func() {
			b.mu.Lock()
			delete(b.gone, old.key)
			b.mu.Unlock()
		})
	}
	b.limitDuration(c, a)
	c.refreshEvents()

	// The transferee is usually on hold (the transferor held it before
	// transferring): its music stops, and it is offered the target's
	// answer, which also resumes a hold it was told of.
	c.stopMusic(1 - x)
	b.reoffer(c, 1-x, np.sdp)
	c.log.Info("b2bua: call transferred", "by", a.OnBehalfOf, "to", a.Dest.Number)
	if !left {
		b.notify(c, old, "200 OK", true)
		// RFC 5589: the transferor ends its dialog after a successful
		// NOTIFY; the PBX does it so a phone that waits is not left up.
		old.bye(ackCtx)
	}
}

// partyName is how a party is shown to someone it is handed to: its
// extension, or the number it called from or was called at.
func partyName(p *party) string {
	if p.ext != "" {
		return p.ext
	}
	if p.srv != nil {
		return p.srv.InviteRequest.From().Address.User
	}
	return p.cli.InviteRequest.To().Address.User
}

// transferFailed ends a blind transfer that did not connect: its record,
// and the transferor learns why. A transferor that has already left takes
// the call with it: the transferee has nobody to go back to.
func (b *B2BUA) transferFailed(c *Call, xp *party, rec *cdr.Record, code int, reason, by string) {
	rec.Finish(code, "transfer: "+reason, by)
	c.note(fmt.Sprintf("transfer failed: %d (%s)", code, reason))
	c.mu.Lock()
	left := c.left
	c.mu.Unlock()
	if left {
		c.mu.Lock()
		c.moved = false
		c.mu.Unlock()
		b.hangup(c, "pbx", "b2bua: transfer failed after the transferor left: "+reason)
		return
	}
	b.notify(c, xp, fmt.Sprintf("%d %s", code, response.Phrase(code)), true)
	c.mu.Lock()
	subscribed := c.subscribed
	c.mu.Unlock()
	if !subscribed {
		c.mu.Lock()
		x := sideA
		if c.p[sideB] == xp {
			x = sideB
		}
		c.mu.Unlock()
		b.beepTo(c, x, 3)
	}
}

// notify tells a transferor how its REFER is going (RFC 3515 section 2.4.4:
// a message/sipfrag of the status line).
func (b *B2BUA) notify(c *Call, p *party, status string, final bool) {
	c.mu.Lock()
	subscribed := c.subscribed
	c.mu.Unlock()
	if !subscribed {
		return // a keypad transfer: nobody asked to be told
	}
	req := sip.NewRequest(sip.NOTIFY, p.target())
	req.AppendHeader(sip.NewHeader("Event", "refer"))
	state := "active;expires=60"
	if final {
		state = "terminated;reason=noresource"
	}
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	ct := sip.ContentTypeHeader("message/sipfrag;version=2.0")
	req.AppendHeader(&ct)
	req.SetBody([]byte("SIP/2.0 " + status + "\r\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.do(ctx, req); err != nil {
		c.log.Debug("b2bua: NOTIFY to transferor", "err", err)
	}
}

// reoffer re-INVITEs the party on side s with sdp (the other party's, as
// it sent it), pointed at the relay's port for side s, and follows its
// answer. A refusal leaves the call as it is.
func (b *B2BUA) reoffer(c *Call, s side, sdp []byte) {
	c.mu.Lock()
	p := c.p[s]
	c.mu.Unlock()
	body := sendrecv(sdp)
	if c.sess != nil {
		var err error
		if body, err = media.RewriteSDP(body, c.sessAddr, c.sess.Port(media.Side(s))); err != nil {
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), inDialogTimeout)
	defer cancel()
	res, err := p.reinvite(ctx, body)
	if err != nil || !res.IsSuccess() {
		c.log.Debug("b2bua: re-INVITE after transfer", "err", err)
		return
	}
	if ans := res.Body(); len(ans) > 0 {
		if c.sess != nil {
			if offer, err := media.ParseSDP(ans); err == nil {
				c.sess.SetPeer(media.Side(s), offer.Addr)
				c.sess.SetHold(false)
			}
		}
		c.mu.Lock()
		p.sdp = ans
		c.mu.Unlock()
	}
}

// limitDuration ends c when a's longest call is reached, for a leg that
// goes out to a trunk.
func (b *B2BUA) limitDuration(c *Call, a *chain.Attempt) {
	maxDur := b.cfg.MaxOutbound
	if a.MaxDuration > 0 && (maxDur <= 0 || a.MaxDuration < maxDur) {
		maxDur = a.MaxDuration
	}
	if maxDur <= 0 || a.Direction() != "outbound" {
		return
	}
	// Toll fraud guard: one stolen call left open for days costs more
	// than a burst of short ones. The PBX ends it.
	limit := time.AfterFunc(maxDur, func() {
		b.hangup(c, "pbx", "limits: maximum call duration "+maxDur.String()+" reached")
	})
	c.mu.Lock()
	c.timers = append(c.timers, limit)
	c.mu.Unlock()
}

// sendrecv returns sdp with its direction attributes made sendrecv: a
// session description taken from a party on hold is offered to someone
// new as a two-way call.
func sendrecv(sdp []byte) []byte { return withDirection(sdp, "sendrecv") }

// withDirection returns sdp with every direction attribute replaced by
// a=dir; where it has none (sendrecv, RFC 3264 section 5.1), a=dir is
// added at the end, so that a hold or a resume is said outright.
func withDirection(sdp []byte, dir string) []byte {
	lines := strings.SplitAfter(string(sdp), "\n")
	var out strings.Builder
	found := false
	for _, l := range lines {
		switch strings.TrimRight(l, "\r\n") {
		case "a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive":
			found = true
			out.WriteString("a=" + dir)
			out.WriteString(l[len(strings.TrimRight(l, "\r\n")):])
		default:
			out.WriteString(l)
		}
	}
	if !found {
		s := out.String()
		eol := "\r\n"
		if !strings.Contains(s, "\r\n") {
			eol = "\n"
		}
		if !strings.HasSuffix(s, "\n") && s != "" {
			s += eol
		}
		return []byte(s + "a=" + dir + eol)
	}
	return []byte(out.String())
}

// attended joins the other party of the transferor's call named by
// replaces into c, in the transferor's place.
func (b *B2BUA) attended(c *Call, from side, responsible string, target sip.Uri, replaces string, req *sip.Request, tx sip.ServerTransaction) {
	c2, side2, ok := b.findReplaces(replaces)
	if !ok || c2 == c {
		c.note(fmt.Sprintf("REFER with Replaces answered 481 (b2bua: no such call of %s)", responsible))
		tx.Respond(response.New(req, 481))
		return
	}
	c2.mu.Lock()
	owner := c2.p[side2].ext
	cp := c2.p[1-side2] // the party the transferor was talking to
	busy := c2.moved || c2.ended
	c2.mu.Unlock()
	// Stops hijack: a phone may only hand over a call it is itself in.
	// Guessing another call's dialog identifiers must not let it pull a
	// stranger's call (or an outside line) into its own.
	if owner != responsible {
		c.note(fmt.Sprintf("REFER with Replaces answered 403 (b2bua: the replaced call is not %s's)", responsible))
		c.log.Warn("b2bua: attended transfer refused: the replaced call belongs to another party", "responsible", responsible, "owner", owner)
		tx.Respond(response.New(req, 403))
		return
	}
	if busy {
		tx.Respond(response.New(req, 491))
		return
	}
	// The leg exists and was decided when it was dialled; the gate
	// decides again on the transferor's policy now (it may have changed,
	// or the call may have been set up before a freeze).
	dialled := ""
	if rs := c2.records(); len(rs) > 0 {
		dialled = rs[0].Data().Dialled
	}
	if cp.ext != "" {
		dialled = cp.ext
	}
	code, reason := 403, "b2bua: transfer refused: no gate"
	if b.cfg.Gate != nil && dialled != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		a, v := b.cfg.Gate(ctx, "transfer", responsible, sip.Uri{Scheme: "sip", User: dialled, Host: b.cfg.Host})
		cancel()
		reason = a.Reasons()
		if v.Action == chain.Continue {
			code = 202
		}
	}
	c.note(fmt.Sprintf("REFER to %s (attended) answered %d (%s)", dialled, code, reason))
	if code != 202 {
		c.log.Info("b2bua: attended transfer refused", "responsible", responsible, "to", dialled, "reason", reason)
		tx.Respond(response.New(req, code))
		return
	}
	c.mu.Lock()
	if c.moved || c.ended {
		c.mu.Unlock()
		tx.Respond(response.New(req, 491))
		return
	}
	c.moved, c.mover, c.left, c.subscribed = true, from, false, true
	c.mu.Unlock()
	c2.mu.Lock()
	c2.moved, c2.mover = true, side2
	c2.mu.Unlock()
	accepted := sip.NewResponseFromRequest(req, 202, response.Phrase(202), nil)
	ct := b.contact
	accepted.AppendHeader(&ct)
	tx.Respond(accepted)
	go b.join(c, from, c2, side2)
}

// findReplaces finds the call and side of the dialog a Replaces value
// (RFC 3891: call-id;to-tag=...;from-tag=...) names, as the transferor
// sees it.
func (b *B2BUA) findReplaces(v string) (*Call, side, bool) {
	callID, toTag, fromTag, ok := parseReplaces(v)
	if !ok {
		return nil, 0, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// The transferor's from-tag is its own tag, the remote one for us.
	if l := b.legs[dialogKey(callID, toTag, fromTag)]; l != nil {
		return l.call, l.side, true
	}
	return nil, 0, false
}

// parseReplaces reads a Replaces value: call-id;to-tag=...;from-tag=...
// (RFC 3891 section 6.1), each part present and non-empty.
func parseReplaces(v string) (callID, toTag, fromTag string, ok bool) {
	parts := strings.Split(v, ";")
	callID = strings.TrimSpace(parts[0])
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(k) {
		case "to-tag":
			toTag = val
		case "from-tag":
			fromTag = val
		}
	}
	return callID, toTag, fromTag, callID != "" && toTag != "" && fromTag != ""
}

// join carries out an attended transfer: the party cp on the other side
// of c2 (from the transferor's leg side2) takes the transferor's side x
// of c, and the transferor's two legs end.
func (b *B2BUA) join(c *Call, x side, c2 *Call, side2 side) {
	defer func() {
		c.mu.Lock()
		c.moved = false
		c.mu.Unlock()
	}()
	c.mu.Lock()
	xp, yp := c.p[x], c.p[1-x]
	ysdp := yp.sdp
	c.mu.Unlock()
	c2.mu.Lock()
	xp2, cp := c2.p[side2], c2.p[1-side2]
	c2.mu.Unlock()
	b.notify(c, xp, "100 Trying", false)

	// The joining party is moved onto this call's relay port for side x,
	// offered the transferee's session description.
	body := sendrecv(ysdp)
	if c.sess != nil {
		var err error
		if body, err = media.RewriteSDP(body, c.sessAddr, c.sess.Port(media.Side(x))); err != nil {
			b.joinFailed(c, xp, c2, 488, "b2bua: transferee SDP: "+err.Error())
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), inDialogTimeout)
	defer cancel()
	res, err := cp.reinvite(ctx, body)
	if err != nil || !res.IsSuccess() || len(res.Body()) == 0 {
		code := 408
		if err == nil {
			code = res.StatusCode
		}
		b.joinFailed(c, xp, c2, code, "b2bua: the transfer target refused the re-INVITE")
		return
	}
	ans := res.Body()
	if c.sess != nil {
		offer, err := media.ParseSDP(ans)
		if err != nil {
			b.joinFailed(c, xp, c2, 488, "b2bua: target SDP: "+err.Error())
			return
		}
		c.sess.SetPeer(media.Side(x), offer.Addr)
	}

	c.mu.Lock()
	c2.mu.Lock()
	if c.ended || c2.ended {
		c2.moved = false
		c2.mu.Unlock()
		c.mu.Unlock()
		b.notify(c, xp, "487 Request Terminated", true)
		return
	}
	cp.sdp = ans
	c.p[x] = cp
	c.recs = append(c.recs, c2.recs...)
	c.timers = append(c.timers, c2.timers...)
	c2.ended, c2.into = true, c
	c2.mu.Unlock()
	c.mu.Unlock()
	xp.stop()
	xp2.stop()
	cp.stop()
	b.mu.Lock()
	delete(b.legs, xp.key)
	delete(b.legs, xp2.key)
	b.gone[xp.key], b.gone[xp2.key] = xp, xp2
	b.legs[cp.key] = &leg{call: c, side: x}
	c.info = append(c.info, c2.info...)
	delete(b.calls, c2)
	b.mu.Unlock()
	cp.stop = context.AfterFunc(cp.context(), func() { b.untrack(c) })
	for _, p := range []*party{xp, xp2} {
		context.AfterFunc(p.context(), func() {
			b.mu.Lock()
			delete(b.gone, p.key)
			b.mu.Unlock()
		})
	}
	// c2's relay session carried the transferor and the target; nobody
	// is on it now.
	if c2.sess != nil {
		c2.sess.Close()
	}
	c.stopMusic(1 - x)
	c.refreshEvents()
	b.reoffer(c, 1-x, ans)
	c.log.Info("b2bua: call transferred (attended)")
	b.notify(c, xp, "200 OK", true)
	xp.bye(ctx)
	xp2.bye(ctx)
}

// joinFailed ends an attended transfer that did not connect: both calls
// go on as they were, and the transferor learns why.
func (b *B2BUA) joinFailed(c *Call, xp *party, c2 *Call, code int, reason string) {
	c2.mu.Lock()
	c2.moved = false
	c2.mu.Unlock()
	c.note(fmt.Sprintf("attended transfer failed: %d (%s)", code, reason))
	b.notify(c, xp, fmt.Sprintf("%d %s", code, response.Phrase(code)), true)
}
