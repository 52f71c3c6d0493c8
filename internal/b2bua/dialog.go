package b2bua

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/media"
	"github.com/sekisho/sekisho/internal/response"
	"github.com/sekisho/sekisho/internal/store"
)

// inDialogTimeout bounds how long a relayed in-dialog request may wait for
// the other side's answer (64*T1, RFC 3261 17.1.2.2 Timer F).
const inDialogTimeout = 32 * time.Second

// track registers an answered call under both legs' dialog keys. It
// returns false if the B2BUA is closing.
func (b *B2BUA) track(c *Call) bool {
	aFrom, aTo := c.a.InviteRequest.From(), c.a.InviteRequest.To()
	bFrom, bTo := c.bl.InviteRequest.From(), c.bl.InviteResponse.To()
	aLocal, _ := aTo.Params.Get("tag")
	aRemote, _ := aFrom.Params.Get("tag")
	bLocal, _ := bFrom.Params.Get("tag")
	bRemote, _ := bTo.Params.Get("tag")
	aKey := dialogKey(c.a.InviteRequest.CallID().Value(), aLocal, aRemote)
	bKey := dialogKey(c.bl.InviteRequest.CallID().Value(), bLocal, bRemote)

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing.Load() {
		return false
	}
	b.legs[aKey] = &leg{call: c, side: sideA}
	b.legs[bKey] = &leg{call: c, side: sideB}
	b.calls[c] = struct{}{}
	// Forget the call when either dialog ends for any reason.
	untrack := func() {
		c.endMedia() // the dialog ended some other way (no ACK, transport)
		b.mu.Lock()
		delete(b.legs, aKey)
		delete(b.legs, bKey)
		delete(b.calls, c)
		if len(b.calls) == 0 && b.idle != nil {
			close(b.idle)
			b.idle = nil
		}
		b.mu.Unlock()
	}
	context.AfterFunc(c.a.Context(), untrack)
	context.AfterFunc(c.bl.Context(), untrack)
	return true
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
	if ok {
		b.mu.Lock()
		l = b.legs[key]
		b.mu.Unlock()
	}
	if l == nil && ok {
		b.mu.Lock()
		as := b.ends[key]
		b.mu.Unlock()
		if as != nil {
			switch req.Method {
			case sip.ACK:
				as.ReadAck(req, tx)
			case sip.BYE:
				as.ReadBye(req, tx)
			default:
				tx.Respond(response.New(req, 481))
			}
			return
		}
	}
	if l == nil {
		if !req.IsAck() {
			// RFC 3261 12.2.2: a request for a dialog we do not know.
			tx.Respond(response.New(req, 481))
		}
		return
	}
	c := l.call
	switch req.Method {
	case sip.ACK:
		if l.side == sideA {
			c.a.ReadAck(req, tx)
		}
		// ACKs from the B side (for re-INVITEs it sent) end there: we
		// answered those ourselves.
	case sip.BYE:
		b.bye(c, l.side, req, tx)
	case sip.REFER:
		b.refer(c, l.side, req, tx)
	default:
		b.relay(c, l.side, req, tx)
	}
}

// refer decides a transfer request (RFC 3515) with the toll gate. A
// transfer creates a call to any number the Refer-To names, billed to the
// office: toll fraud guard, it is decided by the same chain as a dialled
// call (pbx.gate), with the policy of the extension that asked for it. A carrier
// cannot transfer at all (no extension is responsible). Carrying out an
// allowed transfer is not built yet, so an allowed one is declined too,
// with 501; the record says which it was.
func (b *B2BUA) refer(c *Call, from side, req *sip.Request, tx sip.ServerTransaction) {
	responsible := ""
	switch {
	case from == sideA && !c.info.Inbound:
		responsible = c.info.Caller
	case from == sideB && c.info.Callee != "":
		responsible = c.info.Callee
	}
	rt := req.ReferTo()
	if rt == nil {
		tx.Respond(response.New(req, 400))
		return
	}
	code, reason := 403, "b2bua: transfer refused: no gate"
	if b.cfg.Gate != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		a, v := b.cfg.Gate(ctx, "transfer", responsible, rt.Address)
		cancel()
		reason = a.Reasons()
		if v.Action == chain.Continue {
			code = 501
			reason += "; b2bua: transfer allowed by the gate but not supported yet"
			if a.Hold != nil {
				a.Hold.Settle(0) // no leg was placed
			}
		}
	}
	c.log.Info("b2bua: transfer request", "responsible", responsible, "refer_to", rt.Address.String(), "status", code, "reason", reason)
	c.rec.Update(func(r *store.CDR) {
		if r.ResultReason != "" {
			r.ResultReason += "; "
		}
		r.ResultReason += fmt.Sprintf("REFER to %s answered %d (%s)", rt.Address.User, code, reason)
	})
	tx.Respond(response.New(req, code))
}

// bye answers a BYE from one side and hangs up the other.
func (b *B2BUA) bye(c *Call, from side, req *sip.Request, tx sip.ServerTransaction) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		tx.Respond(response.New(req, 200))
		return
	}
	c.ended = true
	c.mu.Unlock()
	who := "caller"
	if from == sideA {
		if err := c.a.ReadBye(req, tx); err != nil {
			tx.Respond(response.New(req, 200))
		}
	} else {
		who = "callee"
		if err := c.bl.ReadBye(req, tx); err != nil {
			tx.Respond(response.New(req, 200))
		}
	}
	c.endMedia()
	c.rec.Finish(200, "", who)
	ctx, cancel := context.WithTimeout(context.Background(), inDialogTimeout)
	defer cancel()
	var err error
	if from == sideA {
		err = c.bl.Bye(ctx)
	} else {
		err = c.a.Bye(ctx)
	}
	if err != nil {
		c.log.Debug("b2bua: BYE to other side", "err", err)
	}
	c.log.Debug("b2bua: call ended", "by", who)
}

// endMedia stops relaying, frees the ports and puts the packet counts in
// the call record. Safe to call more than once.
func (c *Call) endMedia() {
	if c.sess == nil {
		return
	}
	st := c.sess.Stats()
	c.sess.Close()
	c.rec.Update(func(r *store.CDR) { r.PacketsAtoB, r.PacketsBtoA, r.PacketsForeign = st.AtoB, st.BtoA, st.Foreign })
}

// hangup ends a call from the PBX's side, sending BYE on both legs.
func (b *B2BUA) hangup(c *Call, who, reason string) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	c.mu.Unlock()
	c.endMedia()
	c.rec.Finish(200, reason, who)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan struct{}, 2)
	go func() { c.a.Bye(ctx); done <- struct{}{} }()
	go func() { c.bl.Bye(ctx); done <- struct{}{} }()
	<-done
	<-done
}

// relay forwards an in-dialog request (re-INVITE, UPDATE, INFO, ...) to the
// other side and passes its final answer back. For a re-INVITE the B2BUA
// ACKs the other side itself and absorbs the ACK from the requester.
func (b *B2BUA) relay(c *Call, fromSide side, req *sip.Request, tx sip.ServerTransaction) {
	var target sip.Uri
	if fromSide == sideA {
		if ct := c.bl.InviteResponse.Contact(); ct != nil {
			target = ct.Address
		} else {
			target = c.bl.InviteRequest.Recipient
		}
	} else {
		target = c.a.InviteRequest.Contact().Address
	}
	out := sip.NewRequest(req.Method, *target.Clone())
	reqBody := req.Body()
	from, to := media.SideA, media.SideB
	if fromSide == sideB {
		from, to = media.SideB, media.SideA
	}
	if c.sess != nil && isSDP(req) {
		// A media change (hold, resume, new address): the requester's
		// side follows its new SDP; the other side is offered our port.
		var err error
		if reqBody, err = c.mediaChange(from, to, reqBody); err != nil {
			tx.Respond(response.New(req, 488))
			return
		}
	}
	if ct := req.ContentType(); ct != nil && len(reqBody) > 0 {
		out.AppendHeader(sip.HeaderClone(ct))
	}
	out.SetBody(reqBody)

	ctx, cancel := context.WithTimeout(context.Background(), inDialogTimeout)
	defer cancel()
	var res *sip.Response
	var err error
	if fromSide == sideA {
		res, err = c.bl.Do(ctx, out)
	} else {
		res, err = c.a.Do(ctx, out)
	}
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
		var ackErr error
		if fromSide == sideA {
			ackErr = c.bl.WriteRequest(ack)
		} else {
			ackErr = c.a.WriteRequest(ack)
		}
		if ackErr != nil {
			c.log.Debug("b2bua: ACK for relayed re-INVITE", "err", ackErr)
		}
	}
	resBody := res.Body()
	if c.sess != nil && res.IsSuccess() && len(resBody) > 0 {
		var err error
		if resBody, err = c.mediaChange(to, from, resBody); err != nil {
			resBody = nil
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
		if selects(c.info) {
			calls = append(calls, c)
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
