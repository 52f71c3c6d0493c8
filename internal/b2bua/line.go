package b2bua

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/media"
)

// Voicemail takes the calls nobody answered into mailboxes.
type Voicemail interface {
	// Has reports whether ext has a mailbox.
	Has(ctx context.Context, ext string) bool
	// Deposit takes a message for ext from caller on l and returns the
	// call record's reason. It returns when the call has ended.
	Deposit(l *Line, ext, caller string) string
}

// Line is a call the PBX answered itself (voicemail): the relay session's
// side A faces the caller, and the PBX plays to it and listens to it.
type Line struct {
	as    *sipgo.DialogServerSession
	sess  *media.Session
	own   bool // the session was opened for the line and closes with it
	codec uint8
	event int

	mu   sync.Mutex
	stop func() // guarded by mu
}

// Play plays m once to the caller, cutting short what played before.
func (l *Line) Play(m *media.Music) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stop != nil {
		l.stop()
	}
	stop, finished := l.sess.PlayOnce(media.SideA, m, l.codec)
	l.stop = stop
	return finished
}

// StopPlaying cuts short what is playing.
func (l *Line) StopPlaying() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stop != nil {
		l.stop()
		l.stop = nil
	}
}

// Listen hands the caller's RTP packets to fn.
func (l *Line) Listen(fn func([]byte)) { l.sess.Listen(media.SideA, fn) }

// Done is closed when the call has ended.
func (l *Line) Done() <-chan struct{} { return l.as.Context().Done() }

// Hangup ends the call from the PBX's side.
func (l *Line) Hangup() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l.as.Bye(ctx)
	l.as.Close()
}

// Codec is the G.711 payload type of the call.
func (l *Line) Codec() uint8 { return l.codec }

// Events is the telephone-event payload type, -1 without one.
func (l *Line) Events() int { return l.event }

func (l *Line) close() {
	l.StopPlaying()
	l.sess.Listen(media.SideA, nil)
	if l.own {
		l.sess.Close()
	}
}

// offerCodecs reads an offer's first audio stream: the first G.711
// format it lists (-1 if none) and its telephone-event format (-1).
func offerCodecs(body []byte) (g711, events int) {
	g711, events = -1, -1
	inAudio := false
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "m=") {
			if inAudio {
				break
			}
			f := strings.Fields(line)
			if len(f) < 4 || f[0] != "m=audio" || f[1] == "0" {
				continue
			}
			inAudio = true
			for _, pt := range f[3:] {
				if (pt == "0" || pt == "8") && g711 < 0 {
					g711, _ = strconv.Atoi(pt)
				}
			}
			continue
		}
		if inAudio && strings.HasPrefix(line, "a=rtpmap:") {
			pt, enc, _ := strings.Cut(strings.TrimPrefix(line, "a=rtpmap:"), " ")
			if n, err := strconv.Atoi(pt); err == nil && n >= 96 && n <= 127 && strings.HasPrefix(strings.ToLower(enc), "telephone-event/8000") {
				events = n // a dynamic payload type (RFC 3551), nothing else goes back into our SDP
			}
		}
	}
	return g711, events
}

// answerLine answers as itself on sess (side A already set to the
// caller): G.711 as the caller offered it, and telephone-events if it
// offered them. The dialog is known by its key until it ends.
func (b *B2BUA) answerLine(as *sipgo.DialogServerSession, sess *media.Session, offer []byte) (*Line, error) {
	codec, events := offerCodecs(offer)
	if codec < 0 {
		return nil, fmt.Errorf("b2bua: the caller offers no G.711")
	}
	names := map[int]string{0: "PCMU", 8: "PCMA"}
	fmts := strconv.Itoa(codec)
	attrs := "a=rtpmap:" + fmts + " " + names[codec] + "/8000\r\n"
	if events >= 0 {
		e := strconv.Itoa(events)
		fmts += " " + e
		attrs += "a=rtpmap:" + e + " telephone-event/8000\r\na=fmtp:" + e + " 0-16\r\n"
	}
	if err := b.answerOwn(as, b.ownSDP(sess.Port(media.SideA), fmts, attrs+"a=ptime:20\r\na=sendrecv\r\n")); err != nil {
		return nil, err
	}
	sess.SetHold(false)
	return &Line{as: as, sess: sess, codec: uint8(codec), event: events}, nil
}

// AnswerLine answers an INVITE itself on a relay session of its own (a
// feature code that talks to the caller: *97 for the mailbox). The
// caller's SDP must be usable (488 otherwise).
func (b *B2BUA) AnswerLine(req *sip.Request, tx sip.ServerTransaction) (*Line, error) {
	if b.cfg.Media == nil {
		respond(tx, req, 488)
		return nil, fmt.Errorf("b2bua: no media relay")
	}
	offer, err := media.ParseSDP(req.Body())
	if err != nil {
		respond(tx, req, 488)
		return nil, err
	}
	if c, _ := offerCodecs(req.Body()); c < 0 {
		respond(tx, req, 488)
		return nil, fmt.Errorf("b2bua: the caller offers no G.711")
	}
	as, err := b.uaA.ReadInvite(req, tx)
	if err != nil {
		respond(tx, req, 400)
		return nil, err
	}
	var line atomic.Pointer[Line]
	sess, err := b.cfg.Media.Open(func() {
		if l := line.Load(); l != nil {
			l.Hangup() // no media from the caller for the media timeout
		}
	})
	if err != nil {
		respond(tx, req, 503)
		return nil, err
	}
	sess.SetPeer(media.SideA, offer.Addr)
	l, err := b.answerLine(as, sess, req.Body())
	if err != nil {
		sess.Close()
		return nil, err
	}
	l.own = true
	line.Store(l)
	context.AfterFunc(as.Context(), l.close)
	return l, nil
}
