package b2bua

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/cdr"

	"github.com/sekisho/sekisho/internal/media"
	"github.com/sekisho/sekisho/internal/response"
	"github.com/sekisho/sekisho/internal/store"
)

// inDialogTimeout bounds how long a relayed in-dialog request may wait for
// the other side's answer (64*T1, RFC 3261 17.1.2.2 Timer F).
const inDialogTimeout = 32 * time.Second

// track registers an answered call under both parties' dialog keys. It
// returns false if the B2BUA is closing.
func (b *B2BUA) track(c *Call) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing.Load() {
		return false
	}
	for s, p := range c.p {
		b.legs[p.key] = &leg{call: c, side: side(s)}
		p.stop = context.AfterFunc(p.context(), func() { b.untrack(c) })
	}
	b.calls[c] = struct{}{}
	return true
}

// untrack forgets a call whose party's dialog ended for any reason (a BYE,
// no ACK, a transport error): media ends, its keys go.
func (b *B2BUA) untrack(c *Call) {
	c.endMedia()
	c.mu.Lock()
	keys := []string{c.p[sideA].key, c.p[sideB].key}
	if c.into == nil {
		for _, t := range c.timers {
			t.Stop()
		}
	}
	c.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range keys {
		if l := b.legs[k]; l != nil && l.call == c {
			delete(b.legs, k)
		}
	}
	delete(b.calls, c)
	if len(b.calls) == 0 && b.idle != nil {
		close(b.idle)
		b.idle = nil
	}
}

// Active returns the number of answered calls in progress.
func (b *B2BUA) Active() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.calls)
}

// HandleInDialog handles a request inside an existing dialog (one with a
// To tag): ACK, BYE, re-INVITE and the other mid-call methods.
func (b *B2BUA) HandleInDialog(req *sip.Request, tx sip.ServerTransaction) {
	key, ok := requestKey(req)
	var l *leg
	var as *sipgo.DialogServerSession
	var gone *party
	if ok {
		b.mu.Lock()
		l, as, gone = b.legs[key], b.ends[key], b.gone[key]
		b.mu.Unlock()
	}
	switch {
	case l == nil && as != nil:
		switch req.Method {
		case sip.ACK:
			as.ReadAck(req, tx)
		case sip.BYE:
			as.ReadBye(req, tx)
		default:
			tx.Respond(response.New(req, 481))
		}
		return
	case l == nil && gone != nil:
		// A party transferred away: its call goes on without it. Its own
		// BYE ends only its dialog.
		switch req.Method {
		case sip.ACK:
		case sip.BYE:
			if err := gone.readBye(req, tx); err != nil {
				tx.Respond(response.New(req, 200))
			}
		default:
			tx.Respond(response.New(req, 481))
		}
		return
	case l == nil:
		if !req.IsAck() {
			// RFC 3261 12.2.2: a request for a dialog we do not know.
			tx.Respond(response.New(req, 481))
		}
		return
	}
	c := l.call
	switch req.Method {
	case sip.ACK:
		c.mu.Lock()
		p := c.p[l.side]
		c.mu.Unlock()
		p.readAck(req, tx)
	case sip.BYE:
		b.bye(c, l.side, req, tx)
	case sip.REFER:
		b.refer(c, l.side, req, tx)
	default:
		b.relay(c, l.side, req, tx)
	}
}

// bye answers a BYE from one side and hangs up the other.
func (b *B2BUA) bye(c *Call, from side, req *sip.Request, tx sip.ServerTransaction) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		tx.Respond(response.New(req, 200))
		return
	}
	me, other := c.p[from], c.p[1-from]
	if c.moved && from == c.mover {
		// The transferor hangs up while its transfer is being carried
		// out (a blind transfer lets it leave at once): only its dialog
		// ends; the party it transferred waits for the target.
		c.left = true
		c.mu.Unlock()
		me.stop()
		if err := me.readBye(req, tx); err != nil {
			tx.Respond(response.New(req, 200))
		}
		return
	}
	c.ended = true
	c.mu.Unlock()
	who := "caller"
	if from == sideB {
		who = "callee"
	}
	if err := me.readBye(req, tx); err != nil {
		tx.Respond(response.New(req, 200))
	}
	c.endMedia()
	c.finish(200, "", who)
	ctx, cancel := context.WithTimeout(context.Background(), inDialogTimeout)
	defer cancel()
	if err := other.bye(ctx); err != nil {
		c.log.Debug("b2bua: BYE to other side", "err", err)
	}
	c.log.Debug("b2bua: call ended", "by", who)
}

// finish completes every record the call carries.
func (c *Call) finish(code int, reason, who string) {
	for _, r := range c.records() {
		r.Finish(code, reason, who)
	}
}

// records returns the call's records: its own first, then one for each
// leg a transfer placed or joined to it.
func (c *Call) records() []*cdr.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*cdr.Record(nil), c.recs...)
}

// note adds text to the result reason of the call's own record.
func (c *Call) note(text string) {
	c.records()[0].Update(func(r *store.CDR) {
		if r.ResultReason != "" {
			r.ResultReason += "; "
		}
		r.ResultReason += text
	})
}

// endMedia stops relaying, frees the ports and puts the packet counts in
// the call's records. Safe to call more than once.
func (c *Call) endMedia() {
	if c.sess == nil {
		return
	}
	st := c.sess.Stats()
	c.sess.Close()
	for _, rec := range c.records() {
		rec.Update(func(r *store.CDR) { r.PacketsAtoB, r.PacketsBtoA, r.PacketsForeign = st.AtoB, st.BtoA, st.Foreign })
	}
}

// hangup ends a call from the PBX's side, sending BYE on both legs.
func (b *B2BUA) hangup(c *Call, who, reason string) {
	c.mu.Lock()
	for c.into != nil {
		// Joined into another call by an attended transfer: that call
		// carries this one's leg and records now.
		next := c.into
		c.mu.Unlock()
		c = next
		c.mu.Lock()
	}
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	ps := c.p
	c.mu.Unlock()
	c.endMedia()
	c.finish(200, reason, who)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan struct{}, 2)
	for _, p := range ps {
		go func() { p.bye(ctx); done <- struct{}{} }()
	}
	<-done
	<-done
}

// relay forwards an in-dialog request (re-INVITE, UPDATE, INFO, ...) to the
// other side and passes its final answer back. For a re-INVITE the B2BUA
// ACKs the other side itself and absorbs the ACK from the requester.
func (b *B2BUA) relay(c *Call, fromSide side, req *sip.Request, tx sip.ServerTransaction) {
	if b.holdLocally(c, fromSide, req, tx) {
		return
	}
	c.mu.Lock()
	me, other := c.p[fromSide], c.p[1-fromSide]
	c.mu.Unlock()
	target := other.target()
	out := sip.NewRequest(req.Method, *target.Clone())
	reqBody := req.Body()
	from, to := media.Side(fromSide), media.Side(1-fromSide)
	if c.sess != nil && isSDP(req) {
		// A media change (hold, resume, new address): the requester's
		// side follows its new SDP; the other side is offered our port.
		var err error
		sent := reqBody
		if reqBody, err = c.mediaChange(from, to, reqBody); err != nil {
			tx.Respond(response.New(req, 488))
			return
		}
		c.mu.Lock()
		me.sdp = sent
		c.mu.Unlock()
	}
	if ct := req.ContentType(); ct != nil && len(reqBody) > 0 {
		out.AppendHeader(sip.HeaderClone(ct))
	}
	out.SetBody(reqBody)

	ctx, cancel := context.WithTimeout(context.Background(), inDialogTimeout)
	defer cancel()
	res, err := other.do(ctx, out)
	if err != nil {
		c.log.Debug("b2bua: relay failed", "method", req.Method, "err", err)
		// No final answer from the other side: Request Timeout
		// (RFC 3261 16.7 step 6 treats a timed-out branch the same way).
		tx.Respond(response.New(req, 408))
		return
	}
	if req.IsInvite() && res.IsSuccess() {
		ack := sip.NewRequest(sip.ACK, *target.Clone())
		ack.AppendHeader(&sip.CSeqHeader{SeqNo: res.CSeq().SeqNo, MethodName: sip.ACK})
		if ackErr := other.write(ack); ackErr != nil {
			c.log.Debug("b2bua: ACK for relayed re-INVITE", "err", ackErr)
		}
	}
	resBody := res.Body()
	if c.sess != nil && res.IsSuccess() && len(resBody) > 0 {
		sent := resBody
		var err error
		if resBody, err = c.mediaChange(to, from, resBody); err != nil {
			resBody = nil
		} else {
			c.mu.Lock()
			other.sdp = sent
			c.mu.Unlock()
		}
	}
	back := sip.NewResponseFromRequest(req, res.StatusCode, response.Phrase(res.StatusCode), resBody)
	if ct := res.ContentType(); ct != nil && len(resBody) > 0 {
		back.AppendHeader(sip.HeaderClone(ct))
	}
	if req.IsInvite() {
		contact := b.contact
		back.AppendHeader(&contact)
	}
	tx.Respond(back)
}

// Close stops new calls, waits up to ctx for answered calls to end by
// themselves, then hangs up what is left. It returns the number of calls
// the PBX had to end.
func (b *B2BUA) Close(ctx context.Context) int {
	b.closing.Store(true)
	b.mu.Lock()
	var idle chan struct{}
	if len(b.calls) > 0 {
		idle = make(chan struct{})
		b.idle = idle
	}
	b.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
		}
	}
	b.mu.Lock()
	left := make([]*Call, 0, len(b.calls))
	for c := range b.calls {
		left = append(left, c)
	}
	b.mu.Unlock()
	for _, c := range left {
		b.hangup(c, "pbx", "b2bua: PBX shutting down")
	}
	return len(left)
}

// HangupWhere ends every call in progress, and aborts every attempt still
// ringing, that match selects, with reason in their records. It returns
// how many it ended. The BYEs go out in the background.
func (b *B2BUA) HangupWhere(selects func(CallInfo) bool, reason string) int {
	b.mu.Lock()
	var calls []*Call
	for c := range b.calls {
		for _, info := range c.info {
			if selects(info) {
				calls = append(calls, c)
				break
			}
		}
	}
	n := len(calls)
	for r := range b.ringing {
		if selects(r.info) {
			r.abort(errors.New(reason))
			n++
		}
	}
	b.mu.Unlock()
	for _, c := range calls {
		go b.hangup(c, "pbx", reason)
	}
	return n
}

func isSDP(req *sip.Request) bool {
	ct := req.ContentType()
	return len(req.Body()) > 0 && ct != nil && strings.EqualFold(strings.TrimSpace(strings.Split(ct.Value(), ";")[0]), "application/sdp")
}

// mediaChange applies SDP that side src sent: the relay's src side
// follows its address and hold state, and the SDP is rewritten to the
// relay's dst side port for the other party.
func (c *Call) mediaChange(src, dst media.Side, body []byte) ([]byte, error) {
	offer, err := media.ParseSDP(body)
	if err != nil {
		return nil, err
	}
	c.sess.SetPeer(src, offer.Addr)
	c.sess.SetHold(offer.Direction == "sendonly" || offer.Direction == "recvonly" || offer.Direction == "inactive")
	return media.RewriteSDP(body, c.sessAddr, c.sess.Port(dst))
}
