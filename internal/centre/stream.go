package centre

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/sekisho/sekisho/internal/wire"
)

// maxLine bounds one line from a unit: a unit (or a stolen unit
// certificate) cannot make the centre buffer without end.
const maxLine = 1 << 20

// A unit's messages are metered by a token bucket: a burst of
// msgBurst (a unit back from a long absence re-sends a few hundred
// alerts at once), then msgRate a second. Stops a unit, or a stolen
// unit certificate, from flooding the database and, through the alert
// fan-out, the vendor's webhooks and mailboxes.
const (
	msgBurst = 2000
	msgRate  = 100
)

// bucket is a token bucket; not safe for concurrent use.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) take(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = msgBurst
	} else {
		b.tokens = min(msgBurst, b.tokens+now.Sub(b.last).Seconds()*msgRate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// writeWithin bounds one write to a unit: a unit that stops reading
// cannot hold a stream (and its goroutine) for ever.
const writeWithin = 30 * time.Second

// authUnit returns the unit a stream request comes from. The TLS layer
// has verified the client certificate against the CA; here the unit's
// row must exist, hold that very certificate, and not be revoked.
func (s *Server) authUnit(r *http.Request) (Unit, int, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		// Stops anyone without a certificate from this centre's CA.
		return Unit{}, http.StatusUnauthorized, errors.New("a client certificate issued by this centre is required: enrol first")
	}
	leaf := r.TLS.VerifiedChains[0][0]
	u, err := s.st.Unit(r.Context(), leaf.Subject.CommonName)
	if errors.Is(err, ErrNotFound) {
		return u, http.StatusForbidden, errors.New("unknown unit")
	}
	if err != nil {
		return u, http.StatusInternalServerError, err
	}
	// The fingerprint on record, not merely one the CA signed: stops a
	// certificate the unit no longer holds (an earlier enrolment of a
	// unit that was re-issued one) from being used by whoever kept it.
	fp := CertFingerprint(leaf.Raw)
	if subtle.ConstantTimeCompare([]byte(fp), []byte(u.CertFingerprint)) != 1 {
		// The one before the last renewal is good until the unit has
		// used the new one: a unit that renewed but could not save the
		// new certificate is not locked out of its own fleet.
		prev, err := s.st.PrevFingerprint(r.Context(), u.ID)
		if err != nil {
			return u, http.StatusInternalServerError, err
		}
		if prev == "" || subtle.ConstantTimeCompare([]byte(fp), []byte(prev)) != 1 {
			return u, http.StatusForbidden, errors.New("this certificate is not the unit's current one")
		}
	} else if err := s.st.ForgetPrevious(r.Context(), u.ID); err != nil {
		return u, http.StatusInternalServerError, err
	}
	// Stops a revoked unit (a stolen box, a customer who left) from
	// coming back with a certificate that still verifies.
	if !u.Revoked.IsZero() {
		return u, http.StatusForbidden, ErrRevoked
	}
	return u, 0, nil
}

// stream handles POST /v1/stream: JSON lines of wire.Message both ways,
// the request body the unit's, the response body the centre's.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	u, code, err := s.authUnit(r)
	if err != nil {
		s.log.Warn("centre: stream refused", "remote", r.RemoteAddr, "unit", u.ID, "why", err.Error())
		if code == http.StatusInternalServerError {
			err = errors.New("the centre could not check the unit; try again later")
		}
		http.Error(w, err.Error(), code)
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	c := &conn{unit: u.ID, group: u.Group, cancel: cancel, wake: make(chan struct{}, 1), ctl: make(chan wire.Message, 8)}
	// Registered before the first look at the bundles, so a push made
	// meanwhile wakes this stream rather than being missed.
	s.hub.add(c)
	defer s.hub.remove(c)
	log := s.log.With("unit", u.ID, "name", u.Name)

	rc := http.NewResponseController(w)
	rc.EnableFullDuplex() // HTTP/1.1 needs it; HTTP/2 is full duplex already
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	sess := &session{s: s, u: u, c: c, w: w, rc: rc, log: log}
	err = sess.run(ctx, r.Body)
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, ErrRevoked):
		log.Warn("centre: stream ended: unit revoked")
	case errors.Is(cause, errReplaced):
		log.Info("centre: stream replaced by the unit's new one")
	case err != nil && !errors.Is(err, context.Canceled):
		log.Info("centre: stream ended", "why", err.Error())
	default:
		log.Info("centre: stream ended")
	}
	if !errors.Is(cause, errReplaced) {
		octx, ocancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := s.st.SetOnline(octx, u.ID, time.Time{}); err != nil {
			log.Error("centre: mark unit offline", "err", err)
		}
		ocancel()
	}
}

// session is one unit's stream.
type session struct {
	s    *Server
	u    Unit
	c    *conn
	w    http.ResponseWriter
	rc   *http.ResponseController
	log  *slog.Logger
	sent uint64 // newest bundle seq the unit has or was sent
}

func (ss *session) write(m wire.Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ss.rc.SetWriteDeadline(time.Now().Add(writeWithin))
	if _, err := ss.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write to unit: %w", err)
	}
	if err := ss.rc.Flush(); err != nil {
		return fmt.Errorf("write to unit: %w", err)
	}
	// Cleared again: on HTTP/2 a deadline that passes while the stream
	// is merely idle would reset it.
	ss.rc.SetWriteDeadline(time.Time{})
	return nil
}

// sendNewest sends the newest bundle for the unit's group if it is
// newer than what the unit has: from the database when the stream opens
// (a unit coming back must get the very newest before it is told it is
// in sync), from what the poll read when it wakes the stream.
func (ss *session) sendNewest(ctx context.Context, fromPoll bool) error {
	b, ok := ss.s.heads.newest(ss.u.Group)
	if !fromPoll || !ok {
		var err error
		if b, ok, err = ss.s.st.NewestBundle(ctx, ss.u.Group); err != nil {
			return err
		}
	}
	if !ok || b.Seq <= ss.sent {
		return nil
	}
	if err := ss.write(wire.Message{Type: wire.TypeBundle, Bundle: &b.Signed}); err != nil {
		return err
	}
	ss.sent = b.Seq
	ss.log.Info("centre: bundle sent", "seq", b.Seq, "group", b.Group)
	return nil
}

func (ss *session) online(ctx context.Context) {
	if err := ss.s.st.SetOnline(ctx, ss.u.ID, time.Now().Add(3*ss.s.cfg.PingEvery)); err != nil {
		ss.log.Error("centre: mark unit online", "err", err)
	}
}

func (ss *session) run(ctx context.Context, body io.Reader) error {
	in := make(chan wire.Message)
	readErr := make(chan error, 1)
	go func() { readErr <- readLines(ctx, body, in) }()

	hello := time.NewTimer(ss.s.cfg.HelloWithin)
	defer hello.Stop()
	var h *wire.Hello
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-readErr:
		return fmt.Errorf("before hello: %w", err)
	case <-hello.C:
		return errors.New("no hello in time")
	case m := <-in:
		if m.Type != wire.TypeHello || m.Hello == nil {
			return fmt.Errorf("first message is %q, want hello", m.Type)
		}
		h = m.Hello
	}
	now := time.Now()
	if err := ss.s.st.Seen(ctx, ss.u.ID, cleanText(h.Version, 64), h.Applied, now); err != nil {
		return err
	}
	ss.online(ctx)
	ss.log.Info("centre: unit connected", "version", h.Version, "applied", h.Applied, "group", ss.u.Group)
	// The group is the row's, set by the token: a unit cannot move
	// itself to another group's policy by saying so in its Hello.
	ss.sent = h.Applied
	if err := ss.sendNewest(ctx, false); err != nil {
		return err
	}
	if err := ss.write(wire.Message{Type: wire.TypeSynced}); err != nil {
		return err
	}

	ping := time.NewTicker(ss.s.cfg.PingEvery)
	defer ping.Stop()
	// A unit reports every few seconds: one silent for four pings is
	// gone (its connection died without a close), and counts offline.
	silence := 4 * ss.s.cfg.PingEvery
	idle := time.NewTimer(silence)
	defer idle.Stop()
	var budget bucket
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			return err
		case <-idle.C:
			return fmt.Errorf("the unit said nothing for %v", silence)
		case <-ss.c.wake:
			if err := ss.sendNewest(ctx, true); err != nil {
				return err
			}
		case m := <-ss.c.ctl:
			if err := ss.write(m); err != nil {
				return err
			}
		case <-ping.C:
			if err := ss.write(wire.Message{Type: wire.TypePing}); err != nil {
				return err
			}
			ss.online(ctx)
		case m := <-in:
			idle.Reset(silence)
			if !budget.take(time.Now()) {
				return fmt.Errorf("more than %d messages a second: the stream is ended", msgRate)
			}
			if err := ss.handle(ctx, m); err != nil {
				return err
			}
		}
	}
}

// readLines decodes the unit's lines onto in until the body ends.
func readLines(ctx context.Context, body io.Reader, in chan<- wire.Message) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var m wire.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("a line from the unit is not a message: %w", err)
		}
		select {
		case in <- m:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read from unit: %w", err)
	}
	return errors.New("the unit closed the stream")
}

// handle stores one message from the unit. A store error ends the
// stream: the unit reconnects and sends again (alerts are kept once).
func (ss *session) handle(ctx context.Context, m wire.Message) error {
	now := time.Now()
	switch {
	case m.Type == wire.TypeStatus && m.Status != nil:
		return ss.s.st.SaveStatus(ctx, ss.u.ID, *m.Status, now)
	case m.Type == wire.TypeAlert && m.Alert != nil:
		a := *m.Alert
		a.Kind, a.Subject, a.Detail = cleanText(a.Kind, 64), cleanText(a.Subject, 256), cleanText(a.Detail, 4096)
		id, added, err := ss.s.st.AddAlert(ctx, ss.u.ID, a, now)
		if err != nil {
			return err
		}
		if added {
			ss.log.Warn("centre: alert", "id", id, "unit_seq", a.Seq, "kind", a.Kind, "subject", a.Subject, "detail", a.Detail)
		}
		// A re-sent alert wakes delivery too: its first copy may have been
		// stored by a stream that ended before it could (the INSERT
		// committed as the stream's context was cancelled).
		ss.s.notify.Wake()
		return ss.s.st.Touch(ctx, ss.u.ID, now)
	case m.Type == wire.TypeAck && m.Ack != nil:
		a := *m.Ack
		a.Error = cleanText(a.Error, 1024)
		if err := ss.s.st.SaveAck(ctx, ss.u.ID, a, now); err != nil {
			return err
		}
		if a.OK {
			ss.log.Info("centre: bundle applied", "seq", a.Seq, "hash", a.Hash)
		} else {
			ss.log.Warn("centre: bundle refused by the unit", "seq", a.Seq, "hash", a.Hash, "error", a.Error)
		}
		return ss.s.st.Touch(ctx, ss.u.ID, now)
	case m.Type == wire.TypeRenew && m.Renew != nil:
		return ss.renew(ctx, *m.Renew)
	case m.Type == wire.TypeDeclined && m.Declined != nil:
		ss.log.Warn("centre: the unit declined a maintenance session", "session", m.Declined.Session, "why", cleanText(m.Declined.Why, 512))
		ss.s.tunnels.declined(ss.u.ID, *m.Declined)
		return nil
	default:
		// A newer unit may say things this centre does not know yet.
		ss.log.Debug("centre: message ignored", "type", m.Type)
		return ss.s.st.Touch(ctx, ss.u.ID, now)
	}
}

// renew issues the unit a new certificate for the key in its request.
// The request comes over the stream the unit's current certificate
// opened, so it is the unit asking; a bad request is answered, not fatal.
func (ss *session) renew(ctx context.Context, req wire.Renew) error {
	cert, fp, err := ss.s.keys.IssueUnit(req.CSR, ss.u.ID, time.Now())
	if err != nil {
		ss.log.Warn("centre: certificate renewal refused", "err", err)
		return ss.write(wire.Message{Type: wire.TypeRenewed, Renewed: &wire.Renewed{Error: err.Error()}})
	}
	if err := ss.s.st.Renewed(ctx, ss.u.ID, fp); err != nil {
		return err
	}
	ss.log.Info("centre: unit certificate renewed", "fingerprint", fp)
	return ss.write(wire.Message{Type: wire.TypeRenewed, Renewed: &wire.Renewed{Cert: cert}})
}
