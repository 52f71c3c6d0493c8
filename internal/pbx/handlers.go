package pbx

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/auth"
	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/digest"
	"github.com/sekisho/sekisho/internal/registrar"
	"github.com/sekisho/sekisho/internal/response"
	"github.com/sekisho/sekisho/internal/store"
)

const allow = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO"

// routes registers one handler per method. Every request goes through
// exactly one of them.
func (s *Server) routes() {
	s.sip.OnRegister(s.door(s.onRegister))
	s.sip.OnInvite(s.door(s.onInvite))
	s.sip.OnAck(s.door(s.onInDialog))
	s.sip.OnBye(s.door(s.onInDialog))
	s.sip.OnCancel(s.door(func(req *sip.Request, tx sip.ServerTransaction) {
		// A CANCEL that matched an INVITE was answered by the
		// transaction layer; one that reaches here matches nothing.
		tx.Respond(response.New(req, 481))
	}))
	s.sip.OnOptions(s.door(s.onOptions))
	for _, m := range []sip.RequestMethod{sip.UPDATE, sip.INFO, sip.REFER, sip.MESSAGE, sip.NOTIFY, sip.PRACK, sip.SUBSCRIBE, sip.PUBLISH} {
		s.sip.OnRequest(m, s.door(s.onInDialog))
	}
	s.sip.OnNoRoute(s.door(func(req *sip.Request, tx sip.ServerTransaction) {
		res := response.New(req, 405)
		res.AppendHeader(sip.NewHeader("Allow", allow))
		tx.Respond(res)
	}))
}

func hasToTag(req *sip.Request) bool {
	to := req.To()
	if to == nil {
		return false
	}
	_, ok := to.Params.Get("tag")
	return ok
}

func headerValue(req *sip.Request, name string) string {
	if h := req.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// onOptions answers keep-alives and capability queries (RFC 3261 11.2).
//
// Only phones (from the phone networks) and trunk peers get an answer: to
// anyone else an OPTIONS is how a scanner (svmap) finds a PBX, and
// silence tells it nothing.
func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if src := sourceOf(req); !s.inPhoneNetworks(src) && !s.trunks.IsPeer(src) {
		return
	}
	res := response.New(req, 200)
	res.AppendHeader(sip.NewHeader("Allow", allow))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	tx.Respond(res)
}

// onInDialog hands mid-call requests to the B2BUA. Outside a dialog these
// methods are refused.
func (s *Server) onInDialog(req *sip.Request, tx sip.ServerTransaction) {
	if hasToTag(req) {
		s.b2b.HandleInDialog(req, tx)
		return
	}
	switch req.Method {
	case sip.ACK:
		// An ACK for a non-2xx final is absorbed by the transaction layer;
		// a stray one gets no answer (RFC 3261 17.2.1).
	case sip.BYE:
		tx.Respond(response.New(req, 481))
	default:
		res := response.New(req, 405)
		res.AppendHeader(sip.NewHeader("Allow", allow))
		tx.Respond(res)
	}
}

// onRegister is the registrar (RFC 3261 10.3).
func (s *Server) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	to := req.To()
	aor := to.Address.User
	src := sourceOf(req)
	r := s.auth.Check(ctx, auth.Request{Method: "REGISTER", Header: headerValue(req, "Authorization"), Source: src, Secure: isSecure(req)})
	if r.Outcome != digest.OK {
		v := s.auth.Verdict(r)
		s.log.Debug("registrar: challenge", "aor", aor, "source", req.Source(), "reason", r.Reason)
		tx.Respond(response.ForVerdict(req, v))
		return
	}
	// Hijack guard: an extension may only change its own bindings, or one
	// stolen password would let an attacker take every phone's calls.
	if r.User != aor {
		s.log.Warn("registrar: authenticated user registering another AOR", "user", r.User, "aor", aor, "source", req.Source())
		tx.Respond(response.New(req, 403))
		return
	}

	rr := registrar.Request{
		AOR: aor, CallID: req.CallID().Value(), CSeq: req.CSeq().SeqNo,
		Source: req.Source(), Transport: req.Transport(), UserAgent: headerValue(req, "User-Agent"),
	}
	headerExpires := -1
	if h := req.GetHeader("Expires"); h != nil {
		if v, err := strconv.Atoi(h.Value()); err == nil && v >= 0 {
			headerExpires = v
		}
	}
	for _, h := range req.GetHeaders("Contact") {
		ch, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		if ch.Address.Wildcard {
			// "Contact: *" is only valid with Expires: 0 (RFC 3261 10.2.2).
			if headerExpires != 0 || len(req.GetHeaders("Contact")) != 1 {
				tx.Respond(response.New(req, 400))
				return
			}
			rr.Wildcard = true
			continue
		}
		exp := headerExpires
		if v, ok := ch.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				exp = n
			}
		}
		// Neither the contact's expires nor the Expires header: the default.
		d := s.reg.Limits().Default
		if exp >= 0 {
			d = time.Duration(exp) * time.Second
		}
		rr.Changes = append(rr.Changes, registrar.Change{Contact: ch.Address.String(), Expires: d})
	}

	var bindings []registrar.Binding
	var err error
	if len(rr.Changes) > 0 || rr.Wildcard {
		bindings, err = s.reg.Apply(rr)
	} else {
		bindings = s.reg.Lookup(aor) // a query (RFC 3261 10.2.3)
	}
	switch {
	case errors.Is(err, registrar.ErrTooBrief):
		res := response.New(req, 423)
		res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(int(s.reg.Limits().Min/time.Second))))
		tx.Respond(res)
		return
	case errors.Is(err, registrar.ErrTooMany):
		tx.Respond(response.New(req, 403))
		return
	case err != nil:
		tx.Respond(response.New(req, 500))
		return
	}
	if len(rr.Changes) > 0 {
		s.noteSource(aor, src)
	}
	res := response.New(req, 200)
	now := time.Now()
	for _, b := range bindings {
		var u sip.Uri
		if sip.ParseUri(b.Contact, &u) != nil {
			continue
		}
		ch := &sip.ContactHeader{Address: u, Params: sip.NewParams()}
		ch.Params.Add("expires", strconv.Itoa(int(b.Expires.Sub(now).Round(time.Second)/time.Second)))
		res.AppendHeader(ch)
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(time.RFC1123)))
	tx.Respond(res)
	s.log.Debug("registrar: ok", "aor", aor, "contacts", len(bindings), "source", req.Source())
}

// isSecure reports whether req arrived over TLS.
func isSecure(req *sip.Request) bool {
	t := req.Transport()
	return t == "TLS" || t == "WSS"
}

// noteSource raises an alert the first time extension aor registers from
// an address it never used, once it has registered from some other
// address before (its very first address is history starting, not news):
// a phone does not move often, stolen credentials do. It runs beside the
// registration, never in its way, and known pairs are remembered in
// memory so a refresh costs no database write.
func (s *Server) noteSource(aor string, src netip.Addr) {
	key := aor + "|" + src.String()
	if _, seen := s.sources.LoadOrStore(key, struct{}{}); seen {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if s.mail != nil {
			// A phone at a new address (or the PBX restarted): its
			// message-waiting lamp is told again.
			s.mail.Refresh(aor)
		}
		first, others, err := s.store.NoteSource(ctx, aor, src.String(), time.Now())
		if err != nil {
			s.sources.Delete(key) // try again on the next registration
			s.log.Error("registrar: could not note the source", "aor", aor, "err", err)
			return
		}
		if first && others > 0 {
			s.audit.Record(audit.Event{Type: audit.NewSource, Source: src.String(), Target: "extension " + aor,
				Detail: fmt.Sprintf("%d other addresses known", others)})
			s.alerts.Raise(ctx, "new-source", "extension "+aor,
				fmt.Sprintf("registered from %s, an address it never used before (%d known)", src, others))
		}
	}()
}

// evidence writes what the evidence log keeps of a call attempt: every
// refusal after authentication, aggregated per caller and destination,
// and every call let out abroad, one by one.
func (s *Server) evidence(a *chain.Attempt, v chain.Verdict) {
	target := a.Dest.E164
	if target == "" {
		target = a.Dest.Number
	}
	if target == "" {
		target = a.Dialled
	}
	who := a.Caller
	if who == "" {
		who = a.Source
	}
	switch {
	case v.Action == chain.Reject:
		s.audit.Note(audit.Event{Type: audit.PolicyDenial, Source: who, Target: target, Detail: a.Reasons(), Sample: a.Dialled})
	case v.Action == chain.Continue && (a.Dest.Kind == chain.KindInternational || a.Dest.Kind == chain.KindPremium):
		s.audit.Record(audit.Event{Type: audit.CallAbroad, Source: who, Target: target, Detail: a.Dest.Country + "; " + a.Reasons()})
	}
}

// dialled is the text the caller dialled: the user part of a sip: or sips:
// Request-URI, or everything after "tel:" in a tel: URI (RFC 3966), its
// parameters included, so that a ;phone-context or ;isub makes the number
// invalid rather than silently dropped. Any other scheme dials nothing,
// which the dialplan refuses.
func dialled(u sip.Uri) string {
	switch u.Scheme {
	case "sip", "sips":
		return u.User
	case "tel":
		return u.Raw()
	}
	return ""
}

// onInvite takes a new call attempt through the chain and, if every stage
// continues, hands it to the B2BUA.
func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if hasToTag(req) {
		s.b2b.HandleInDialog(req, tx) // re-INVITE
		return
	}
	if s.isDraining() {
		tx.Respond(response.New(req, 503))
		return
	}
	s.attempts.Add(1)
	defer s.attempts.Done()
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		// Loop guard (RFC 3261 16.3 step 2).
		tx.Respond(response.New(req, 483))
		return
	}
	tx.Respond(response.New(req, 100))

	a := &chain.Attempt{
		Method:     string(req.Method),
		Source:     req.Source(),
		Transport:  req.Transport(),
		Secure:     isSecure(req),
		FromUser:   req.From().Address.User,
		Dialled:    dialled(req.Recipient),
		AuthHeader: headerValue(req, "Proxy-Authorization"),
	}
	if s.feature(req, tx, a) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v := s.chain.Run(ctx, a)
	if v.Action == chain.Challenge {
		// The digest handshake is not a call attempt yet: no record.
		s.log.Debug("pbx: invite challenged", "from", a.FromUser, "source", a.Source, "reason", v.Reason)
		tx.Respond(response.ForVerdict(req, v))
		return
	}
	// Forwarding: always, before the extension rings; no answer, when it
	// has no phone registered at all.
	if v.Action == chain.Continue || v.Status == 480 {
		f, ok := s.forwardFor(ctx, a, store.ForwardAlways)
		if !ok && v.Status == 480 {
			f, ok = s.forwardFor(ctx, a, store.ForwardNoAnswer)
		}
		if ok {
			if fa := s.forward(ctx, a, f); fa != nil {
				a, v = fa, chain.Pass("forwarded")
			}
		}
	}
	if mb := orDialled(a.CalleeExt, a.Mailbox); v.Status == 480 && a.Feature == "" && mb != "" && s.mail.Has(ctx, mb) {
		// No phone registered and no forward took it: the mailbox does.
		v = chain.Pass("voicemail: nobody registered for " + a.Dialled + "; " + mb + "'s mailbox takes it")
		a.Trail = append(a.Trail, chain.Step{Stage: "voicemail", Verdict: v})
	}
	cancel()
	r := store.CDR{
		CallID: req.CallID().Value(), Caller: a.Caller, Source: a.Source,
		Dialled: a.Dialled, Callee: a.Dest.Number, Direction: a.Direction(), Trunk: a.Trunk,
		DestKind: string(a.Dest.Kind), DestE164: a.Dest.E164, Country: a.Dest.Country,
	}
	if len(a.Targets) > 0 {
		if t := a.Targets[0]; t.Trunk != "" {
			r.Trunk = t.Trunk
			if v.Action == chain.Continue {
				r.SentNumber = t.Number // only what really goes to the carrier
			}
		} else if a.Dest.Kind == chain.KindDID {
			r.Callee = t.Extension // a DID rings this extension
		}
	}
	rec := s.cdrs.Start(r)
	s.evidence(a, v)
	if h := a.Hold; h != nil {
		// Every ending of the attempt finishes its record: settle there,
		// so no path can keep a reservation or skip a cost.
		rec.OnFinish(func(c *store.CDR) { c.Cost = h.Settle(c.Duration) })
	}
	if v.Action != chain.Continue {
		s.log.Info("pbx: call refused", "caller", a.Caller, "dialled", a.Dialled, "source", a.Source, "reason", a.Reasons())
		if res := response.ForVerdict(req, v); res != nil {
			tx.Respond(res)
			rec.Finish(res.StatusCode, a.Reasons(), "pbx")
		} else {
			rec.Finish(0, a.Reasons(), "pbx")
		}
		return
	}
	rec.Update(func(c *store.CDR) { c.ResultReason = a.Reasons() })
	s.b2b.Originate(req, tx, a, rec)
}
