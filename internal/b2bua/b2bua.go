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
	"strconv"
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
	// Gate runs the call chain, without limits, for a leg that already
	// exists and that a feature joins on behalf of an extension (an
	// attended transfer's target). nil refuses every such join.
	Gate func(ctx context.Context, feature, responsible string, target sip.Uri) (*chain.Attempt, chain.Verdict)
	// Place decides a new leg a feature creates on behalf of an extension
	// inside a call that is up (a blind transfer's target): the whole
	// chain with that extension's policy, limits included, and a call
	// record of its own (callID is the requesting dialog's) whose
	// finishing settles the reservation. Refused, it returns a nil record
	// and the status for the requester; the refusal is evidence. nil
	// refuses every such leg.
	Place func(ctx context.Context, feature, responsible string, target sip.Uri, callID string) (*chain.Attempt, *cdr.Record, int)
	// Voicemail takes an extension's calls nobody answered (busy, no
	// answer, no phone registered) when it has a mailbox; nil: never.
	Voicemail Voicemail
	// HoldMusic is played by the PBX to a party the other puts on hold;
	// nil relays the hold to the other party instead.
	HoldMusic *media.Music
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
	gone    map[string]*party                     // parties transferred out of their call, until their dialog ends; guarded by mu
	parked  map[int]*parked                       // calls waiting in a park slot; guarded by mu
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
	exts  map[string]bool // extensions being rung now; guarded by the B2BUA's mu
	pick  chan *pickup    // a group pickup hands its phone over here
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
		gone:    make(map[string]*party),
		parked:  make(map[int]*parked),
		calls:   make(map[*Call]struct{}),
		ringing: make(map[*ringing]struct{}),
	}
}

// Contact returns the PBX's Contact header.
func (b *B2BUA) Contact() sip.ContactHeader { return b.contact }

// Call is one bridged call: two parties, the caller's side (A) and the
// callee's (B). A transfer replaces the party on one side.
type Call struct {
	log      *slog.Logger
	sess     *media.Session // nil without a relay
	sessAddr netip.Addr     // address written into rewritten SDP
	info     []CallInfo     // one per record; guarded by the B2BUA's mu

	mu     sync.Mutex // serialises in-dialog work across the two legs
	p      [2]*party  // by side; guarded by mu
	recs   []*cdr.Record
	ended  bool          // guarded by mu
	moved  bool          // a transfer is being carried out; guarded by mu
	mover  side          // while moved: the side that asked for it; guarded by mu
	left   bool          // while moved: the transferor hung up already; guarded by mu
	into   *Call         // set when an attended transfer joined this call's leg into another; guarded by mu
	timers []*time.Timer // duration limits, stopped when the call is forgotten; guarded by mu
	music  [2]func()     // stops the music playing to each side on hold; guarded by mu
	// events is each side's telephone-event payload type (-1: none, or no
	// extension there), read by the keypads on the relay's goroutines.
	events [2]atomic.Int32
	// subscribed is set while the transfer in progress came from a REFER,
	// whose sender expects NOTIFYs; a keypad transfer has none. Guarded by mu.
	subscribed bool
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
	aExt := callerExt(a) // before a forward replaces a
	maxFwd := 70
	if mf := req.MaxForwards(); mf != nil {
		maxFwd = int(mf.Val()) - 1
	}

	// Anchor the media: the callee is offered the relay's B side, never
	// the caller's own address.
	body := req.Body()
	var sess *media.Session
	var answered *Call // set once the call is up; read by the idle callback
	var handedOff bool // the session went to a mailbox's line
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
		// Until the call is up and tracked (or a mailbox took it), the
		// session is ours to free.
		defer func() {
			answeredMu.Lock()
			up := answered != nil || handedOff
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
	rg := &ringing{info: info, abort: abort, pick: make(chan *pickup)}
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
	var picked *pickup // a phone of the pickup group took the call
	ring := func(a *chain.Attempt, ringCtx context.Context) (*sipgo.DialogClientSession, []error) {
		exts := map[string]bool{}
		for _, t := range a.Targets {
			if t.Extension != "" {
				exts[t.Extension] = true
			}
		}
		b.mu.Lock()
		rg.exts = exts
		b.mu.Unlock()
		w, ext, failures, p := b.fork(ringCtx, a, body, req.ContentType(), maxFwd, provisional, func() bool { return as.Context().Err() != nil }, rg.pick)
		if w != nil {
			info.Callee = ext
		}
		if p != nil {
			picked = p
		}
		return w, failures
	}

	winner, failures := ring(a, ringCtx)
	// A ring group's next rounds (hunt members, an overflow group), one
	// after another while nobody answers and the caller waits.
	for next := a.Next; winner == nil && picked == nil && len(next) > 0 && as.Context().Err() == nil && context.Cause(baseCtx) == nil; next = next[1:] {
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
	if picked != nil {
		b.bridgePickup(req, as, sess, a, rec, info, picked, log, &answeredMu, &answered)
		return
	}
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

	mailbox := a.CalleeExt
	if mailbox == "" {
		mailbox = a.Mailbox // a ring group's overflow
	}
	if winner == nil && b.cfg.Voicemail != nil && sess != nil && mailbox != "" && a.Feature == "" &&
		as.Context().Err() == nil && context.Cause(baseCtx) == nil {
		// Busy or no answer, and no forward took the call: the callee's
		// mailbox, if it has one. The PBX answers; nothing is placed.
		code, _, _ := b.failure(as.Context(), ringCtx, failures, false)
		vctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		has := (code == 486 || code == 480) && b.cfg.Voicemail.Has(vctx, mailbox)
		cancel()
		if has {
			aMu.Lock()
			line, err := b.answerLine(as, sess, req.Body())
			aMu.Unlock()
			if err == nil {
				answeredMu.Lock()
				handedOff = true
				answeredMu.Unlock()
				rec.Answered()
				rec.Update(func(c *store.CDR) { c.ResultCode = 200 })
				ext, caller := mailbox, a.Caller
				go func() {
					reason := b.cfg.Voicemail.Deposit(line, ext, caller)
					line.close()
					sess.Close()
					rec.Finish(200, reason, "caller")
				}()
				return
			}
			log.Warn("b2bua: voicemail could not answer", "err", err)
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
	rec.Update(func(c *store.CDR) {
		c.ResultCode = 200
		if a.Group != "" && info.Callee != "" {
			c.Callee = info.Callee // the member who answered; dialled keeps the group
		}
	})
	call := &Call{log: log, sess: sess, sessAddr: b.cfg.MediaAddr, info: []CallInfo{info}, recs: []*cdr.Record{rec}}
	call.p[sideA] = serverParty(as, aExt, req.Body())
	call.p[sideB] = clientParty(winner, info.Callee)
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
	b.listenKeypads(call)
	b.limitDuration(call, a)
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

// fork rings a's targets at once with the session description body
// until the first answers (the others are cancelled), all fail, or ctx
// ends. It returns the answered leg and the extension it rang ("" for a
// trunk), or every fork's failure. onResponse sees provisional responses;
// gone reports that whoever waits for the answer has left, so an answer
// then is hung up rather than bridged to nobody.
func (b *B2BUA) fork(ctx context.Context, a *chain.Attempt, body []byte, ctype *sip.ContentTypeHeader, maxFwd int,
	onResponse func(*sip.Response) error, gone func() bool, pick <-chan *pickup) (winner *sipgo.DialogClientSession, winnerExt string, failures []error, picked *pickup) {
	type result struct {
		s      *sipgo.DialogClientSession
		err    error
		silent bool   // a trunk that never answered at all
		ext    string // the extension this fork rang, "" for a trunk
	}
	results := make(chan result, len(a.Targets))
	forkCtx := make([]context.CancelCauseFunc, len(a.Targets))
	for i, t := range a.Targets {
		ctx, cancel := context.WithCancelCause(ctx)
		forkCtx[i] = cancel
		inv, opts, err := b.newLeg(ctype, body, a, t, maxFwd)
		if err != nil {
			results <- result{err: err}
			continue
		}
		var heard, silent atomic.Bool
		opts.OnResponse = func(res *sip.Response) error {
			heard.Store(true)
			if onResponse != nil {
				return onResponse(res)
			}
			return nil
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

	for n := len(a.Targets); n > 0; {
		var r result
		select {
		case p := <-pick:
			if winner != nil || picked != nil {
				p.taken <- false
				continue
			}
			// Picked up from another phone: the forks are cancelled and
			// their endings collected below as failures.
			picked = p
			p.taken <- true
			for _, c := range forkCtx {
				c(nil)
			}
			continue
		case r = <-results:
			n--
		}
		if r.err == nil && winner == nil && picked == nil && !gone() {
			winner, winnerExt = r.s, r.ext
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
	return winner, winnerExt, failures, picked
}

// callerExt is the extension that placed a, "" for a carrier.
func callerExt(a *chain.Attempt) string {
	if a.Trunk != "" {
		return ""
	}
	return a.Caller
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
// the SDP body (and its content type) comes from the caller's request.
func (b *B2BUA) newLeg(ctype *sip.ContentTypeHeader, body []byte, a *chain.Attempt, t chain.Target, maxFwd int) (*sip.Request, sipgo.AnswerOptions, error) {
	var opts sipgo.AnswerOptions
	var ruri, fromURI, toURI sip.Uri
	var display string
	var pai *sip.Uri
	private := false
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
		if a.Dest.Withhold {
			// 184 before the number: the caller hides its number (RFC
			// 3323). The callee sees an anonymous From; the carrier still
			// gets the asserted identity, marked private, which it needs
			// for billing and for emergency call-backs.
			display = "Anonymous"
			fromURI = sip.Uri{Scheme: "sip", User: "anonymous", Host: "anonymous.invalid"}
			private = true
		}
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
		shown := a.Caller
		if a.Presented != "" {
			shown = a.Presented // a forward or transfer: the party on the line
		}
		display = shown
		fromURI = sip.Uri{Scheme: "sip", User: shown, Host: b.cfg.Host, Port: b.cfg.Port}
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
	if private {
		inv.AppendHeader(sip.NewHeader("Privacy", "id"))
	}
	if len(body) > 0 {
		if ctype != nil {
			inv.AppendHeader(sip.HeaderClone(ctype))
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

// ownSDP is the PBX's own session description: one audio stream on port
// with formats fmts and attribute lines attrs.
func (b *B2BUA) ownSDP(port int, fmts, attrs string) []byte {
	host := b.cfg.Host
	if b.cfg.MediaAddr.IsValid() {
		host = b.cfg.MediaAddr.String()
	}
	ipv := "IP4"
	if strings.Contains(host, ":") {
		ipv = "IP6"
	}
	return []byte("v=0\r\no=sekisho 1 1 IN " + ipv + " " + host + "\r\ns=-\r\nc=IN " + ipv + " " + host + "\r\nt=0 0\r\n" +
		"m=audio " + strconv.Itoa(port) + " RTP/AVP " + fmts + "\r\n" + attrs)
}

// answerOwn answers as with sdp, the PBX being the far end of the call.
// The dialog is known by its key until it ends, so that the phone's ACK
// (and a BYE of its own) find it.
func (b *B2BUA) answerOwn(as *sipgo.DialogServerSession, sdp []byte) error {
	local, _ := as.InviteRequest.To().Params.Get("tag")
	remote, _ := as.InviteRequest.From().Params.Get("tag")
	key := dialogKey(as.InviteRequest.CallID().Value(), local, remote)
	b.mu.Lock()
	b.ends[key] = as
	b.mu.Unlock()
	context.AfterFunc(as.Context(), func() {
		b.mu.Lock()
		delete(b.ends, key)
		b.mu.Unlock()
	})
	if err := as.RespondSDP(sdp); err != nil {
		as.Close()
		return fmt.Errorf("b2bua: answer: %w", err)
	}
	return nil
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
	if err := b.answerOwn(as, b.ownSDP(9, format, "a=inactive\r\n")); err != nil {
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
