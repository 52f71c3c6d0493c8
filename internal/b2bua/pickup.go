package b2bua

import (
	"log/slog"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/cdr"
	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/media"
	"github.com/sekisho/sekisho/internal/response"
	"github.com/sekisho/sekisho/internal/store"
)

// Group pickup: a phone dials PickupCode to answer a call ringing at
// another phone of its pickup group (the extensions it shares a ring
// group with). Picking up places no call: the ringing attempt was decided
// and counted for the extension it rang, and it keeps its record, which
// names who picked it up. Only a call ringing at an extension the picker
// may pick for is handed over, so no phone can take calls of the office
// it has nothing to do with.
const PickupCode = "*8"

// pickup is a phone's INVITE to PickupCode, offered to a ringing attempt.
type pickup struct {
	req   *sip.Request
	tx    sip.ServerTransaction
	ext   string
	taken chan bool // the attempt's answer: true when it takes the pickup
	// done is closed when the picking phone's INVITE has its answer: its
	// handler waits for it, as its transaction ends when it returns.
	done chan struct{}
}

// GroupPickup answers ext's INVITE with a call ringing at an extension
// for which allowed is true (never ext itself), or 404 when there is none.
func (b *B2BUA) GroupPickup(req *sip.Request, tx sip.ServerTransaction, ext string, allowed func(rung string) bool) {
	b.mu.Lock()
	var candidates []*ringing
	for r := range b.ringing {
		for e := range r.exts {
			if e != ext && allowed(e) {
				candidates = append(candidates, r)
				break
			}
		}
	}
	b.mu.Unlock()
	p := &pickup{req: req, tx: tx, ext: ext, taken: make(chan bool, 1), done: make(chan struct{})}
	for _, r := range candidates {
		select {
		case r.pick <- p:
			if <-p.taken {
				<-p.done
				return
			}
		case <-time.After(time.Second): // between rounds, or answered meanwhile
		}
	}
	respond(tx, req, 404)
}

// bridgePickup connects the caller of a ringing attempt (its INVITE req,
// dialog as) with the phone that picked it up, through the relay session.
func (b *B2BUA) bridgePickup(req *sip.Request, as *sipgo.DialogServerSession, sess *media.Session, a *chain.Attempt, rec *cdr.Record,
	info CallInfo, p *pickup, log *slog.Logger, answeredMu *sync.Mutex, answered **Call) {
	handed := false
	defer func() {
		if !handed {
			close(p.done)
		}
	}()
	fail := func(code int, reason string) {
		as.Respond(480, response.Phrase(480), nil)
		rec.Finish(480, reason, "pbx")
		if code > 0 {
			respond(p.tx, p.req, code)
		}
	}
	toPicker, toCaller := sendrecv(req.Body()), p.req.Body()
	if sess != nil {
		offer, err := media.ParseSDP(p.req.Body())
		if err != nil {
			fail(488, "b2bua: the picking phone's SDP: "+err.Error())
			return
		}
		if toPicker, err = media.RewriteSDP(toPicker, b.cfg.MediaAddr, sess.Port(media.SideB)); err != nil {
			fail(500, "b2bua: caller SDP: "+err.Error())
			return
		}
		sess.SetPeer(media.SideB, offer.Addr)
		if toCaller, err = media.RewriteSDP(toCaller, b.cfg.MediaAddr, sess.Port(media.SideA)); err != nil {
			fail(488, "b2bua: the picking phone's SDP: "+err.Error())
			return
		}
	}
	pas, err := b.uaA.ReadInvite(p.req, p.tx)
	if err != nil {
		fail(400, "b2bua: the picking phone's INVITE: "+err.Error())
		return
	}
	info.Callee = p.ext
	rung := ""
	for _, t := range a.Targets {
		if t.Extension != "" {
			rung = t.Extension
			break
		}
	}
	rec.Answered()
	rec.Update(func(c *store.CDR) {
		c.ResultCode, c.Callee = 200, p.ext
		c.ResultReason += "; picked up by " + p.ext + " (" + PickupCode + ") while ringing " + rung
	})
	call := &Call{log: log, sess: sess, sessAddr: b.cfg.MediaAddr, info: []CallInfo{info}, recs: []*cdr.Record{rec}}
	call.p[sideA] = serverParty(as, callerExt(a), req.Body())
	call.p[sideB] = serverParty(pas, p.ext, p.req.Body())
	if !b.track(call) {
		pas.Respond(503, response.Phrase(503), nil)
		fail(0, "b2bua: shutting down")
		return
	}
	answeredMu.Lock()
	*answered = call
	answeredMu.Unlock()
	b.listenKeypads(call)
	b.limitDuration(call, a)
	handed = true
	go func() {
		defer close(p.done)
		if err := pas.RespondSDP(toPicker); err != nil {
			b.hangup(call, "pbx", "b2bua: the picking phone did not confirm: "+err.Error())
		}
	}()
	if err := as.RespondSDP(toCaller); err != nil {
		b.hangup(call, "pbx", "b2bua: caller did not confirm answer: "+err.Error())
		return
	}
	log.Info("b2bua: ringing call picked up", "by", p.ext, "ringing", rung)
}
