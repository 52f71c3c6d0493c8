// Package b2bua is the originate step of the call path: a back-to-back
// user agent. It ends the caller's dialog (the A leg) itself and places a
// new call (the B leg) to each target the chain chose. Nothing from the
// caller's INVITE is copied to the B leg except the session description:
// the B leg's Request-URI, From, To, Call-ID and Contact are built here
// from the chain's decision, so a caller cannot smuggle headers, routes or
// a different destination through the PBX.
//
// Media is anchored: the B2BUA opens a media relay session for each call,
// rewrites each leg's SDP to the relay's ports, and tells the relay where
// each side said it would send from. The relay knows nothing of SIP.
package b2bua

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/sekisho/sekisho/internal/cdr"
	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/media"
	"github.com/sekisho/sekisho/internal/response"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/trunk"
)

// Config is what the B2BUA needs from the wiring.
type Config struct {
	Client      *sipgo.Client
	Host        string // advertised host for our URIs
	Port        int    // advertised SIP port
	RingTimeout time.Duration
	Log         *slog.Logger
	// UDPLocal is the SIP UDP listener's address. Legs over UDP are sent
	// from it, so a phone sees requests from the address it registered
	// with (NAT bindings and phone-side ACLs expect that), not from an
	// ephemeral port.
	UDPLocal *net.UDPAddr
	// Trunks gives trunk details and credentials for trunk targets.
	Trunks Trunks
	// Media relays every call's RTP and RTCP; nil passes SDP through
	// unchanged (media flows phone to phone).
	Media *media.Relay
	// MediaAddr is the address written into rewritten SDP.
	MediaAddr netip.Addr
	// MaxOutbound is how long an answered call to a trunk may last before
	// the PBX hangs it up; 0 means no limit.
	MaxOutbound time.Duration
	// Gate runs the call chain for a leg that a feature would create on
	// behalf of an extension (a transfer's Refer-To target). nil refuses
	// every such leg.
	Gate func(ctx context.Context, feature, responsible string, target sip.Uri) (*chain.Attempt, chain.Verdict)
	// Forward returns the leg to ring when a call to an extension finds
	// it busy or unanswered (why is "busy" or "noanswer"), already
	// decided by the chain on the forwarding extension's behalf, with its
	// hold settled through rec; nil: no forward. nil Forward: never.
	Forward func(a *chain.Attempt, why string, rec *cdr.Record) *chain.Attempt
}

// Trunks is what the B2BUA needs to place a call on a carrier trunk.
type Trunks interface {
	Get(name string) (trunk.Trunk, bool)
	Password(t trunk.Trunk) (string, error)
}

// B2BUA holds the calls in progress. It is safe for concurrent use.
type B2BUA struct {
	cfg     Config
	contact sip.ContactHeader
	uaA     *sipgo.DialogUA // toward callers: answers go back to the source address
	uaB     *sipgo.DialogUA // toward callees: requests go to the registered Contact
	closing atomic.Bool

	mu      sync.Mutex
	legs    map[string]*leg                       // dialog key -> leg, both legs of every call; guarded by mu
	ends    map[string]*sipgo.DialogServerSession // dialogs the PBX answered itself; guarded by mu
	calls   map[*Call]struct{}
	ringing map[*ringing]struct{} // attempts not yet answered; guarded by mu
	idle    chan struct{}         // closed when calls becomes empty while closing; guarded by mu
}

// CallInfo is what HangupWhere may select calls by.
type CallInfo struct {
	Caller        string // the authenticated extension, or the carrier's calling number
	Inbound       bool   // the caller leg comes from a carrier trunk
	Callee        string // the extension that answered ("" for a trunk leg)
	Outbound      bool   // the callee leg goes to a carrier trunk
	International bool   // ... to a number abroad
}

// ringing is an attempt whose callee legs are still ringing.
type ringing struct {
	info  CallInfo // guarded by the B2BUA's mu
	abort context.CancelCauseFunc
}

// setInfo changes what the attempt is (a forward rings another leg on
// another extension's behalf), under mu, which HangupWhere holds.
func (r *ringing) setInfo(mu *sync.Mutex, info CallInfo) {
	mu.Lock()
	defer mu.Unlock()
	r.info = info
}

// New returns a B2BUA.
func New(cfg Config) *B2BUA {
	if cfg.RingTimeout <= 0 {
		cfg.RingTimeout = 60 * time.Second
	}
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "sekisho", Host: cfg.Host, Port: cfg.Port}}
	return &B2BUA{
		cfg:     cfg,
		contact: contact,
		uaA:     &sipgo.DialogUA{Client: cfg.Client, ContactHDR: contact, RewriteContact: true},
		uaB:     &sipgo.DialogUA{Client: cfg.Client, ContactHDR: contact},
		legs:    make(map[string]*leg),
		ends:    make(map[string]*sipgo.DialogServerSession),
		calls:   make(map[*Call]struct{}),
		ringing: make(map[*ringing]struct{}),
	}
}

// Contact returns the PBX's Contact header.
func (b *B2BUA) Contact() sip.ContactHeader { return b.contact }

// Call is one bridged call: an answered A leg and B leg.
type Call struct {
	a        *sipgo.DialogServerSession
	bl       *sipgo.DialogClientSession
	rec      *cdr.Record
	log      *slog.Logger
	sess     *media.Session // nil without a relay
	sessAddr netip.Addr     // address written into rewritten SDP
	info     CallInfo

	mu    sync.Mutex // serialises in-dialog work across the two legs
	ended bool       // guarded by mu
}

type side int

const (
	sideA side = iota // the caller
	sideB             // the callee
)

type leg struct {
	call *Call
	side side
}

// dialogKey identifies a dialog from the receiving side: Call-ID, our tag,
// their tag. For requests we receive, our tag is in To and theirs in From.
func dialogKey(callID, local, remote string) string { return callID + "\x00" + local + "\x00" + remote }

func requestKey(req *sip.Request) (string, bool) {
	cid, from, to := req.CallID(), req.From(), req.To()
	if cid == nil || from == nil || to == nil {
		return "", false
	}
	lt, _ := to.Params.Get("tag")
	rt, _ := from.Params.Get("tag")
	if lt == "" || rt == "" {
		return "", false
	}
	return dialogKey(cid.Value(), lt, rt), true
}

// trunkAnswerTimeout is how long a carrier may stay silent (not even 100
// Trying) before its leg is abandoned with 503.
const trunkAnswerTimeout = 8 * time.Second

var errTrunkSilent = errors.New("b2bua: trunk sent no response")

// ErrClosing is returned by Originate while the PBX is shutting down.
var ErrClosing = errors.New("b2bua: shutting down")

// Originate rings the attempt's targets and bridges the first to answer to
// the caller. It returns once the caller's INVITE has its final response;
// an answered call then lives on until a BYE. rec is the attempt's record.
func (b *B2BUA) Originate(req *sip.Request, tx sip.ServerTransaction, a *chain.Attempt, rec *cdr.Record) {
	log := b.cfg.Log.With("call_id", req.CallID().Value(), "caller", a.Caller, "callee", a.Dest.Number)
	if b.closing.Load() {
		respond(tx, req, 503)
		rec.Finish(503, "b2bua: shutting down", "pbx")
		return
	}
	as, err := b.uaA.ReadInvite(req, tx)
	if err != nil {
		log.Warn("b2bua: cannot open caller dialog", "err", err)
		respond(tx, req, 400)
		rec.Finish(400, "b2bua: "+err.Error(), "")
		return
	}
	maxFwd := 70
	if mf := req.MaxForwards(); mf != nil {
		maxFwd = int(mf.Val()) - 1
	}

	// Anchor the media: the callee is offered the relay's B side, never
	// the caller's own address.
	body := req.Body()
	var sess *media.Session
	var answered *Call // set once the call is up; read by the idle callback
	var answeredMu sync.Mutex
	if b.cfg.Media != nil {
		offer, err := media.ParseSDP(body)
		if err != nil {
			respond(tx, req, 488)
			rec.Finish(488, "b2bua: caller SDP: "+err.Error(), "pbx")
			return
		}
		sess, err = b.cfg.Media.Open(func() {
			answeredMu.Lock()
			c := answered
			answeredMu.Unlock()
			if c != nil {
				b.hangup(c, "pbx", "media: no RTP or RTCP from either side")
			}
		})
		if err != nil {
			code := 500
			if errors.Is(err, media.ErrExhausted) {
				// An alert, not a crash: the office needs a bigger range.
				log.Error("media: RTP port range exhausted; call refused", "active", b.cfg.Media.Active())
				code = 503
			}
			respond(tx, req, code)
			rec.Finish(code, err.Error(), "pbx")
			return
		}
		// Until the call is up and tracked, the session is ours to free.
		defer func() {
			answeredMu.Lock()
			up := answered != nil
			answeredMu.Unlock()
			if !up {
				sess.Close()
			}
		}()
		sess.SetPeer(media.SideA, offer.Addr)
		if body, err = media.RewriteSDP(body, b.cfg.MediaAddr, sess.Port(media.SideB)); err != nil {
			respond(tx, req, 488)
			rec.Finish(488, "b2bua: caller SDP: "+err.Error(), "pbx")
			return
		}
	}

	info := CallInfo{Caller: a.Caller, Inbound: a.Trunk != "", Outbound: a.Direction() == "outbound", International: a.Dest.Kind == chain.KindInternational}
	baseCtx, abort := context.WithCancelCause(context.Background())
	defer abort(nil)
	ringFor := func(d time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return b.cfg.RingTimeout
	}
	ringCtx, stopRing := context.WithTimeout(baseCtx, ringFor(a.Ring))
	defer func() { stopRing() }() // the forward's ring replaces it
	// While it rings, the attempt can be aborted by HangupWhere (the
	// caller was suspended by a call placed in parallel).
	rg := &ringing{info: info, abort: abort}
	b.mu.Lock()
	b.ringing[rg] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.ringing, rg)
		b.mu.Unlock()
	}()
	// The caller's CANCEL ends its dialog context; stop ringing then.
	stopAfter := context.AfterFunc(as.Context(), stopRing)
	defer stopAfter()

	var aMu sync.Mutex // serialises responses on the A leg across forks
	provisional := func(res *sip.Response) error {
		if res.StatusCode == 180 || res.StatusCode == 183 {
			aMu.Lock()
			defer aMu.Unlock()
			var hdrs []sip.Header
			early := res.Body()
			if len(early) > 0 && sess != nil {
				// Early media (183 with SDP) goes through the relay too.
				var err error
				if early, err = b.answerSDP(sess, early); err != nil {
					early = nil
				}
			}
			if ct := res.ContentType(); ct != nil && len(early) > 0 {
				hdrs = append(hdrs, sip.HeaderClone(ct))
			}
			if err := as.Respond(res.StatusCode, response.Phrase(res.StatusCode), early, hdrs...); err != nil {
				log.Debug("b2bua: relay provisional", "err", err)
			}
		}
		return nil
	}

	// ring rings a's targets at once until the first answers (the others
	// are cancelled), all fail, or ringCtx ends.
	ring := func(a *chain.Attempt, ringCtx context.Context) (winner *sipgo.DialogClientSession, failures []error) {
		type result struct {
			s      *sipgo.DialogClientSession
			err    error
			silent bool   // a trunk that never answered at all
			ext    string // the extension this fork rang, "" for a trunk
		}
		results := make(chan result, len(a.Targets))
		forkCtx := make([]context.CancelCauseFunc, len(a.Targets))
		for i, t := range a.Targets {
			ctx, cancel := context.WithCancelCause(ringCtx)
			forkCtx[i] = cancel
			inv, opts, err := b.newLeg(req, body, a, t, maxFwd)
			if err != nil {
				results <- result{err: err}
				continue
			}
			var heard, silent atomic.Bool
			opts.OnResponse = func(res *sip.Response) error {
				heard.Store(true)
				return provisional(res)
			}
			if t.Trunk != "" {
				// A carrier that does not even say 100 Trying is down: give
				// the caller 503 now rather than after the ring timeout.
				// Forced cancel: with no provisional there is nothing to CANCEL.
				stop := time.AfterFunc(trunkAnswerTimeout, func() {
					if !heard.Load() {
						silent.Store(true)
						cancel(sipgo.WaitAnswerForceCancelErr)
					}
				})
				defer stop.Stop()
			}
			go func() {
				s, err := b.uaB.WriteInvite(ctx, inv)
				if err == nil {
					err = s.WaitAnswer(ctx, opts)
				}
				results <- result{s: s, err: err, silent: silent.Load(), ext: t.Extension}
			}()
		}
		defer func() {
			for _, c := range forkCtx {
				c(nil)
			}
		}()

		for range a.Targets {
			r := <-results
			if r.err == nil && winner == nil && as.Context().Err() == nil {
				winner = r.s
				info.Callee = r.ext
				// First answer wins: cancel the other forks (RFC 3261 16.7
				// step 10 behaviour, done by us as the UAC of every fork).
				for _, c := range forkCtx {
					c(nil)
				}
				continue
			}
			if r.err == nil {
				// A second fork answered too (or the caller left): it must
				// not stay up ringing nobody. ACK and hang it up.
				go func(s *sipgo.DialogClientSession) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					s.Ack(ctx)
					s.Bye(ctx)
				}(r.s)
				continue
			}
			if r.silent {
				r.err = errTrunkSilent
			}
			failures = append(failures, r.err)
		}
		return winner, failures
	}

	winner, failures := ring(a, ringCtx)
	// A ring group's next rounds (hunt members, an overflow group), one
	// after another while nobody answers and the caller waits.
	for next := a.Next; winner == nil && len(next) > 0 && as.Context().Err() == nil && context.Cause(baseCtx) == nil; next = next[1:] {
		stopRing()
		ringCtx, stopRing = context.WithTimeout(baseCtx, ringFor(next[0].Ring))
		stopAfterRound := context.AfterFunc(as.Context(), stopRing)
		defer stopAfterRound()
		round := *a
		round.Targets = next[0].Targets
		winner, failures = ring(&round, ringCtx)
	}
	// Busy or no answer: the callee's forward for that condition, if it
	// has one the gate allows, is rung next, once (pbx decides it with the
	// forwarding extension's policy and limits).
	if winner == nil && b.cfg.Forward != nil && as.Context().Err() == nil && context.Cause(baseCtx) == nil {
		why := ""
		switch code, _, _ := b.failure(as.Context(), ringCtx, failures, len(a.Targets) > 0 && a.Targets[0].Trunk != ""); code {
		case 486, 600:
			why = "busy"
		case 480:
			why = "noanswer"
		}
		if fa := b.forwardTo(a, why, rec); fa != nil {
			a = fa
			info = CallInfo{Caller: a.Caller, Outbound: a.Direction() == "outbound", International: a.Dest.Kind == chain.KindInternational}
			rg.setInfo(&b.mu, info)
			stopRing()
			ringCtx, stopRing = context.WithTimeout(baseCtx, b.cfg.RingTimeout)
			stopAfter2 := context.AfterFunc(as.Context(), stopRing)
			defer stopAfter2()
			winner, failures = ring(a, ringCtx)
		}
	}

	if winner == nil {
		if cause := context.Cause(baseCtx); cause != nil && !errors.Is(cause, context.Canceled) && as.Context().Err() == nil {
			aMu.Lock()
			as.Respond(403, response.Phrase(403), nil)
			aMu.Unlock()
			rec.Finish(403, cause.Error(), "pbx")
			return
		}
		code, reason, by := b.failure(as.Context(), ringCtx, failures, len(a.Targets) > 0 && a.Targets[0].Trunk != "")
		if code == 487 {
			// The transaction layer already answered the CANCEL and 487.
			rec.Finish(487, "b2bua: caller cancelled", "caller")
			return
		}
		aMu.Lock()
		as.Respond(code, response.Phrase(code), nil)
		aMu.Unlock()
		rec.Finish(code, reason, by)
		return
	}

	// ACK the callee at once so it stops retransmitting its 200, then
	// answer the caller with the callee's session description. The call
	// is tracked before the caller is answered: sipgo's RespondSDP waits
	// for the caller's ACK, which must find the call.
	ackCtx, cancelAck := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelAck()
	if err := winner.Ack(ackCtx); err != nil {
		log.Warn("b2bua: ACK to callee failed", "err", err)
	}
	answerBody := winner.InviteResponse.Body()
	if sess != nil {
		if answerBody, err = b.answerSDP(sess, answerBody); err != nil {
			// The callee answered with SDP we cannot relay.
			winner.Bye(ackCtx)
			aMu.Lock()
			as.Respond(488, response.Phrase(488), nil)
			aMu.Unlock()
			rec.Finish(488, "b2bua: callee SDP: "+err.Error(), "callee")
			return
		}
	}
	rec.Answered()
	rec.Update(func(c *store.CDR) { c.ResultCode = 200 })
	call := &Call{a: as, bl: winner, rec: rec, log: log, sess: sess, sessAddr: b.cfg.MediaAddr, info: info}
	if cause := context.Cause(baseCtx); cause != nil && !errors.Is(cause, context.Canceled) {
		// Aborted between the callee's answer and now: end it.
		winner.Bye(ackCtx)
		aMu.Lock()
		as.Respond(403, response.Phrase(403), nil)
		aMu.Unlock()
		rec.Finish(403, cause.Error(), "pbx")
		return
	}
	if !b.track(call) {
		// Shutting down raced with the answer: end it cleanly.
		winner.Bye(ackCtx)
		aMu.Lock()
		as.Respond(503, response.Phrase(503), nil)
		aMu.Unlock()
		rec.Finish(503, "b2bua: shutting down", "pbx")
		return
	}
	answeredMu.Lock()
	answered = call // from here the call owns the media session
	answeredMu.Unlock()
	maxDur := b.cfg.MaxOutbound
	if a.MaxDuration > 0 && (maxDur <= 0 || a.MaxDuration < maxDur) {
		maxDur = a.MaxDuration // the profile's limit, or what the budget pays for
	}
	if maxDur > 0 && info.Outbound {
		// Toll fraud guard: one stolen call left open for days costs
		// more than a burst of short ones. The PBX ends it.
		limit := time.AfterFunc(maxDur, func() {
			b.hangup(call, "pbx", "limits: maximum call duration "+maxDur.String()+" reached")
		})
		context.AfterFunc(as.Context(), func() { limit.Stop() })
	}
	aMu.Lock()
	err = as.RespondSDP(answerBody)
	aMu.Unlock()
	if err != nil {
		// The caller never confirmed (no ACK in 64*T1) or went away
		// between the callee's answer and ours.
		log.Warn("b2bua: caller did not confirm the answer", "err", err)
		b.hangup(call, "pbx", "b2bua: caller did not confirm answer: "+err.Error())
		return
	}
	log.Debug("b2bua: call answered")
}

func (b *B2BUA) forwardTo(a *chain.Attempt, why string, rec *cdr.Record) *chain.Attempt {
	if why == "" || a.CalleeExt == "" || a.Feature != "" {
		return nil
	}
	return b.cfg.Forward(a, why, rec)
}

// answerSDP takes the callee side's SDP: it points the relay's B side at
// the callee and returns the SDP rewritten to the relay's A side for the
// caller.
func (b *B2BUA) answerSDP(sess *media.Session, body []byte) ([]byte, error) {
	offer, err := media.ParseSDP(body)
	if err != nil {
		return nil, err
	}
	sess.SetPeer(media.SideB, offer.Addr)
	return media.RewriteSDP(body, b.cfg.MediaAddr, sess.Port(media.SideA))
}

// newLeg builds the B leg INVITE toward target t from the chain's
// decision, and the answer options (carrier credentials for a trunk). Only
// the SDP body is taken from the caller's request.
func (b *B2BUA) newLeg(req *sip.Request, body []byte, a *chain.Attempt, t chain.Target, maxFwd int) (*sip.Request, sipgo.AnswerOptions, error) {
	var opts sipgo.AnswerOptions
	var ruri, fromURI, toURI sip.Uri
	display := a.Caller
	var pai *sip.Uri
	if t.Trunk != "" {
		tr, ok := b.cfg.Trunks.Get(t.Trunk)
		if !ok {
			return nil, opts, fmt.Errorf("b2bua: trunk %s is gone", t.Trunk)
		}
		// The carrier sees the canonical number and the trunk's own
		// caller ID: nothing the caller typed or claimed in From.
		ruri = sip.Uri{Scheme: "sip", User: t.Number, Host: tr.Host, Port: tr.Port}
		if tr.Transport == "tcp" {
			ruri.UriParams = sip.NewParams()
			ruri.UriParams.Add("transport", "tcp")
		}
		cid := tr.CallerID
		if cid == "" {
			cid = tr.Username
		}
		if cid == "" {
			cid = "anonymous"
		}
		display = cid
		fromURI = sip.Uri{Scheme: "sip", User: cid, Host: tr.Host}
		toURI = sip.Uri{Scheme: "sip", User: t.Number, Host: tr.Host}
		pai = &sip.Uri{Scheme: "sip", User: cid, Host: tr.Host}
		if tr.Username != "" {
			pw, err := b.cfg.Trunks.Password(tr)
			if err != nil {
				return nil, opts, err
			}
			opts.Username, opts.Password = tr.Username, pw
		}
	} else {
		if err := sip.ParseUri(t.Contact, &ruri); err != nil {
			return nil, opts, fmt.Errorf("b2bua: registered contact %q: %w", t.Contact, err)
		}
		fromURI = sip.Uri{Scheme: "sip", User: a.Caller, Host: b.cfg.Host, Port: b.cfg.Port}
		toURI = sip.Uri{Scheme: "sip", User: t.Extension, Host: b.cfg.Host, Port: b.cfg.Port}
	}
	inv := sip.NewRequest(sip.INVITE, ruri)
	from := &sip.FromHeader{DisplayName: display, Address: fromURI, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	to := &sip.ToHeader{Address: toURI, Params: sip.NewParams()}
	callID := sip.CallIDHeader(uuid.NewString())
	mf := sip.MaxForwardsHeader(maxFwd)
	inv.AppendHeader(from)
	inv.AppendHeader(to)
	inv.AppendHeader(&callID)
	inv.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	inv.AppendHeader(&mf)
	ct := b.contact
	inv.AppendHeader(&ct)
	inv.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"))
	if pai != nil {
		inv.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<"+pai.String()+">"))
	}
	if len(body) > 0 {
		if rct := req.ContentType(); rct != nil {
			inv.AppendHeader(sip.HeaderClone(rct))
		}
		inv.SetBody(body)
	}
	if t.Transport != "" {
		inv.SetTransport(strings.ToUpper(t.Transport))
	}
	if u := b.cfg.UDPLocal; u != nil && (t.Transport == "" || strings.EqualFold(t.Transport, "udp")) {
		inv.Laddr = sip.Addr{IP: u.IP, Port: u.Port}
	}
	return inv, opts, nil
}

// failure picks the caller's final response when no fork answered, the
// reason for the record, and who ended the attempt.
func (b *B2BUA) failure(callerCtx, ringCtx context.Context, errs []error, trunkLeg bool) (int, string, string) {
	if callerCtx.Err() != nil {
		return 487, "", "caller"
	}
	for _, err := range errs {
		if errors.Is(err, errTrunkSilent) {
			return 503, "b2bua: trunk sent no response within " + trunkAnswerTimeout.String(), "pbx"
		}
	}
	if errors.Is(ringCtx.Err(), context.DeadlineExceeded) {
		return 480, "b2bua: no answer within ring timeout", "pbx"
	}
	best, reason := 0, ""
	for _, err := range errs {
		var de *sipgo.ErrDialogResponse
		if !errors.As(err, &de) {
			if reason == "" {
				reason = "b2bua: callee unreachable: " + err.Error()
			}
			continue
		}
		code := de.Res.StatusCode
		switch {
		case code >= 600:
			return callerStatus(code, trunkLeg), fmt.Sprintf("b2bua: callee answered %d", code), "callee"
		case code == 486:
			best, reason = 486, "b2bua: callee busy"
		case best == 0:
			best, reason = code, fmt.Sprintf("b2bua: callee answered %d", code)
		}
	}
	if best == 0 {
		if trunkLeg {
			// A carrier that does not answer: the network is unavailable.
			return 503, reason, "pbx"
		}
		return 480, reason, "pbx"
	}
	return callerStatus(best, trunkLeg), reason, "callee"
}

// callerStatus maps a callee's failure to what the caller is told. A
// redirect or an authentication demand is never passed on: following a
// 3xx would let a callee send the call to a destination the chain never
// approved. From a carrier, "no such number" is worth telling the caller;
// its server errors and a refusal of our credentials become 503.
func callerStatus(code int, trunkLeg bool) int {
	switch code {
	case 486, 488, 600, 603, 606:
		return code
	}
	if trunkLeg {
		switch {
		case code == 404 || code == 484:
			return code
		case code == 401 || code == 407 || code >= 500:
			return 503
		}
	}
	return 480
}

// respond sends a bodiless final response with the standard reason phrase.
func respond(tx sip.ServerTransaction, req *sip.Request, code int) {
	tx.Respond(response.New(req, code))
}

// AnswerAndEnd answers an INVITE itself, with an inactive stream of the
// caller's first offered format (no media flows), and hangs up after
// hold: the answer to a feature code that was carried out.
func (b *B2BUA) AnswerAndEnd(req *sip.Request, tx sip.ServerTransaction, hold time.Duration) {
	as, err := b.uaA.ReadInvite(req, tx)
	if err != nil {
		respond(tx, req, 400)
		return
	}
	format := "0"
	for _, line := range strings.Split(string(req.Body()), "\n") {
		if f := strings.Fields(strings.TrimSpace(line)); len(f) > 3 && f[0] == "m=audio" {
			format = f[3]
			break
		}
	}
	host := b.cfg.Host
	if b.cfg.MediaAddr.IsValid() {
		host = b.cfg.MediaAddr.String()
	}
	ipv := "IP4"
	if strings.Contains(host, ":") {
		ipv = "IP6"
	}
	sdp := "v=0\r\no=sekisho 1 1 IN " + ipv + " " + host + "\r\ns=-\r\nc=IN " + ipv + " " + host + "\r\nt=0 0\r\n" +
		"m=audio 9 RTP/AVP " + format + "\r\na=inactive\r\n"
	// Known by its dialog key until it ends, so that the phone's ACK (and
	// a BYE of its own) find it.
	local, _ := as.InviteRequest.To().Params.Get("tag")
	remote, _ := as.InviteRequest.From().Params.Get("tag")
	key := dialogKey(req.CallID().Value(), local, remote)
	b.mu.Lock()
	b.ends[key] = as
	b.mu.Unlock()
	context.AfterFunc(as.Context(), func() {
		b.mu.Lock()
		delete(b.ends, key)
		b.mu.Unlock()
	})
	if err := as.RespondSDP([]byte(sdp)); err != nil {
		as.Close()
		return
	}
	go func() {
		time.Sleep(hold)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		as.Bye(ctx)
		as.Close()
	}()
}
