// Package voicemail is the PBX's mailboxes: a caller nobody answered
// leaves a message (recorded from the call's G.711 stream to a WAV file),
// the extension is told by a message-waiting NOTIFY (RFC 3842), and its
// owner listens by dialling *97 and a PIN typed as DTMF (RFC 4733
// telephone-events).
//
// Voicemail never places a call: there is no call-back and no dial-out
// from a mailbox, so it opens no way around the toll gate. The PIN is
// what stands between a caller and the messages (and, on many PBXs, the
// remote-access features attackers abuse), so it is never a default (made
// at random when the mailbox is), kept only as an argon2id hash, and
// guessing it is slowed like SIP passwords are: three tries a call, and
// failures lock the mailbox for a growing time.
package voicemail

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/media"
	"github.com/sekisho/sekisho/internal/store"
)

// Line is the PBX's own end of a call it answered: a mailbox speaks and
// listens through it.
type Line interface {
	// Play plays m once to the caller; the channel closes at its end.
	Play(m *media.Music) <-chan struct{}
	// StopPlaying cuts what is playing short.
	StopPlaying()
	// Listen hands each RTP packet the caller sends to fn (nil: stop).
	Listen(fn func(pkt []byte))
	// Done is closed when the caller has hung up.
	Done() <-chan struct{}
	// Hangup ends the call from the PBX's side.
	Hangup()
	// Codec is the G.711 payload type in use; Events the telephone-event
	// payload type, -1 if the phone offered none.
	Codec() uint8
	Events() int
}

// Service runs the mailboxes of one PBX.
type Service struct {
	Store *store.Store
	Dir   string // where messages are kept (DATA/voicemail)
	Log   *slog.Logger
	Audit *audit.Recorder
	// Notify tells ext's phones how many messages are new and old.
	Notify func(ext string, fresh, old int)
	// MaxMessage bounds one message; 3 minutes when zero.
	MaxMessage time.Duration
}

// PINDigits is the length of a generated PIN.
const PINDigits = 6

// NewPIN returns a random PIN of PINDigits digits.
func NewPIN() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("voicemail: PIN: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// Enable gives ext a mailbox with a new random PIN (replacing an old
// PIN) and returns the PIN, which is shown once and never stored.
func (s *Service) Enable(ctx context.Context, ext, email string) (string, error) {
	pin, err := NewPIN()
	if err != nil {
		return "", err
	}
	if err := s.Store.SetMailbox(ctx, store.Mailbox{Ext: ext, PINHash: credential.HashSecret(pin), Email: email, Created: time.Now()}); err != nil {
		return "", err
	}
	return pin, nil
}

// Has reports whether ext has a mailbox.
func (s *Service) Has(ctx context.Context, ext string) bool {
	_, ok, err := s.Store.GetMailbox(ctx, ext)
	if err != nil {
		s.Log.Error("voicemail: read mailbox", "ext", ext, "err", err)
	}
	return ok
}

// Counts returns ext's new and heard messages.
func (s *Service) Counts(ctx context.Context, ext string) (fresh, old int, err error) {
	msgs, err := s.Store.Voicemails(ctx, ext)
	for _, m := range msgs {
		if m.Heard {
			old++
		} else {
			fresh++
		}
	}
	return fresh, old, err
}

// Refresh lights ext's message-waiting lamp again when new messages
// wait (a phone seen from a new address may have rebooted with its lamp
// off; off is what it starts with, so nothing is sent then).
func (s *Service) Refresh(ext string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !s.Has(ctx, ext) || s.Notify == nil {
		return
	}
	if fresh, old, err := s.Counts(ctx, ext); err == nil && fresh > 0 {
		s.Notify(ext, fresh, old)
	}
}

func (s *Service) notify(ext string) {
	if s.Notify == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fresh, old, err := s.Counts(ctx, ext)
	if err != nil {
		s.Log.Error("voicemail: count messages", "ext", ext, "err", err)
		return
	}
	s.Notify(ext, fresh, old)
}

// Deposit records a message from caller for ext on line: a greeting, a
// beep, then what the caller says until it hangs up or MaxMessage. It
// returns the record's reason. A message under half a second is dropped.
func (s *Service) Deposit(line Line, ext, caller string) string {
	for _, prompt := range []*media.Music{s.greeting(ext), beep(0.4)} {
		select {
		case <-line.Play(prompt):
		case <-line.Done():
			return "voicemail: caller hung up during the greeting"
		}
	}
	limit := s.MaxMessage
	if limit <= 0 {
		limit = 3 * time.Minute
	}
	rec := newRecorder(line.Codec(), limit)
	line.Listen(rec.packet)
	started := time.Now()
	timer := time.NewTimer(limit)
	select {
	case <-line.Done():
	case <-timer.C:
		line.Hangup()
	}
	timer.Stop()
	line.Listen(nil)
	samples := rec.samples()
	if len(samples) < 4000 {
		return "voicemail: no message (under half a second)"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir := filepath.Join(s.Dir, ext)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		s.Log.Error("voicemail: message directory", "ext", ext, "err", err)
		return "voicemail: could not keep the message: " + err.Error()
	}
	file := filepath.Join(dir, strconv.FormatInt(started.UnixNano(), 10)+".wav")
	if err := writeWAV(file, samples); err != nil {
		s.Log.Error("voicemail: write message", "ext", ext, "err", err)
		return "voicemail: could not keep the message: " + err.Error()
	}
	d := time.Duration(len(samples)) * time.Second / 8000
	id, err := s.Store.AddVoicemail(ctx, store.Voicemail{Ext: ext, Caller: caller, Received: started, Duration: d, File: file})
	if err != nil {
		s.Log.Error("voicemail: store message", "ext", ext, "err", err)
		return "voicemail: could not keep the message: " + err.Error()
	}
	s.Log.Info("voicemail: message left", "ext", ext, "caller", caller, "id", id, "seconds", d.Seconds())
	go s.notify(ext)
	return fmt.Sprintf("voicemail: message %d (%.1f s) left for %s", id, d.Seconds(), ext)
}

// GreetingFile is where ext's own greeting is kept, if it has one.
func (s *Service) GreetingFile(ext string) string {
	return filepath.Join(s.Dir, ext, "greeting.wav")
}

// SetGreeting takes ext's own greeting from a WAV file (8000 Hz mono
// 16-bit PCM, as media.LoadWAV reads), or removes it when path is "".
func (s *Service) SetGreeting(ext, path string) error {
	dst := s.GreetingFile(ext)
	if path == "" {
		if err := os.Remove(dst); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("voicemail: remove greeting: %w", err)
		}
		return nil
	}
	m, err := media.LoadWAV(path)
	if err != nil {
		return fmt.Errorf("voicemail: greeting: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("voicemail: greeting: %w", err)
	}
	return writeWAV(dst, m.Samples())
}

// greeting is ext's own greeting, else the built-in chime.
func (s *Service) greeting(ext string) *media.Music {
	if m, err := media.LoadWAV(s.GreetingFile(ext)); err == nil {
		return m
	}
	return greeting()
}

// Retrieve is ext dialling its mailbox: the PIN, then each message in
// turn (oldest first). While a message plays, 7 deletes it and 6 skips to
// the next; a message played to its end is kept as heard.
func (s *Service) Retrieve(line Line, ext string) {
	defer line.Hangup()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if line.Events() < 0 {
		s.Log.Info("voicemail: the phone offered no DTMF events; cannot take a PIN", "ext", ext)
		return
	}
	digits := make(chan rune, 32)
	line.Listen(dtmfReader(uint8(line.Events()), digits))
	defer line.Listen(nil)
	if !s.login(ctx, line, ext, digits) {
		return
	}
	msgs, err := s.Store.Voicemails(ctx, ext)
	if err != nil {
		s.Log.Error("voicemail: list messages", "ext", ext, "err", err)
		return
	}
	changed := false
	for _, m := range msgs {
		music, err := media.LoadWAV(m.File)
		if err != nil {
			s.Log.Error("voicemail: read message", "ext", ext, "id", m.ID, "err", err)
			continue
		}
		select {
		case <-line.Play(beep(0.2)):
		case <-line.Done():
			return
		}
		done := line.Play(music)
		action := ""
	playing:
		for {
			select {
			case <-done:
				break playing
			case <-line.Done():
				return
			case d := <-digits:
				if d == '7' || d == '6' {
					action = string(d)
					line.StopPlaying()
					break playing
				}
			}
		}
		switch action {
		case "7":
			if file, err := s.Store.DeleteVoicemail(ctx, ext, m.ID); err == nil {
				os.Remove(file)
				changed = true
			}
		case "":
			if !m.Heard {
				s.Store.MarkHeard(ctx, m.ID)
				changed = true
			}
		}
	}
	if changed {
		go s.notify(ext)
	}
	select {
	case <-line.Play(beeps(2)):
	case <-line.Done():
	}
}

// login takes the PIN (digits, ended by # or after PINDigits of them) and
// checks it: three tries a call. Each wrong PIN locks the mailbox for
// credential.LockFor(failures), recorded in the store so that hanging up
// and calling again does not reset it (brute-force protection), and is
// evidence; a locked mailbox does not even listen.
func (s *Service) login(ctx context.Context, line Line, ext string, digits <-chan rune) bool {
	for try := 0; try < 3; try++ {
		box, ok, err := s.Store.GetMailbox(ctx, ext)
		if err != nil || !ok {
			return false
		}
		if time.Now().Before(box.LockedUntil) {
			s.evidence(audit.Event{Type: audit.AuthFailure, Source: "phone:" + ext, Target: "mailbox " + ext,
				Detail: "voicemail: mailbox locked until " + box.LockedUntil.Format(time.RFC3339) + " after wrong PINs"})
			line.Play(beeps(4))
			time.Sleep(time.Second)
			return false
		}
		select {
		case <-line.Play(beeps(1)):
		case <-line.Done():
			return false
		}
		pin, ok := readPIN(line, digits)
		if !ok {
			return false
		}
		good, _ := credential.CheckSecret(box.PINHash, pin)
		var until time.Time
		if !good {
			until = time.Now().Add(credential.LockFor(box.Fails + 1))
		}
		if err := s.Store.MailboxPIN(ctx, ext, good, until); err != nil {
			s.Log.Error("voicemail: record PIN try", "ext", ext, "err", err)
			return false // fail closed: an unrecorded failure would be a free guess
		}
		if good {
			return true
		}
		s.evidence(audit.Event{Type: audit.AuthFailure, Source: "phone:" + ext, Target: "mailbox " + ext,
			Detail: fmt.Sprintf("voicemail: wrong PIN (%d in a row)", box.Fails+1)})
	}
	return false
}

func (s *Service) evidence(e audit.Event) {
	if s.Audit != nil {
		s.Audit.Record(e)
	}
}

// readPIN collects digits until #, PINDigits+2 digits, or 15 s of silence.
func readPIN(line Line, digits <-chan rune) (string, bool) {
	var pin []rune
	for {
		select {
		case d := <-digits:
			if d == '#' {
				return string(pin), true
			}
			if pin = append(pin, d); len(pin) >= PINDigits+2 {
				return string(pin), true
			}
		case <-time.After(15 * time.Second):
			return string(pin), len(pin) > 0
		case <-line.Done():
			return "", false
		}
	}
}

// dtmfReader turns RFC 4733 telephone-event packets of payload type pt
// into digits on out, once per event (an event's packets share its RTP
// timestamp). It runs on the relay's goroutine: it never blocks.
func dtmfReader(pt uint8, out chan<- rune) func([]byte) {
	var last uint32
	seen := false
	return func(pkt []byte) {
		ptype, ts, payload, ok := rtpPayload(pkt)
		if !ok || ptype != pt || len(payload) < 4 {
			return
		}
		if seen && ts == last {
			return
		}
		ev := payload[0]
		var d rune
		switch {
		case ev <= 9:
			d = rune('0' + ev)
		case ev == 10:
			d = '*'
		case ev == 11:
			d = '#'
		default:
			return
		}
		seen, last = true, ts
		select {
		case out <- d:
		default:
		}
	}
}

// rtpPayload returns an RTP packet's payload type, timestamp and payload.
func rtpPayload(pkt []byte) (pt uint8, ts uint32, payload []byte, ok bool) {
	if len(pkt) < 12 || pkt[0]>>6 != 2 {
		return 0, 0, nil, false
	}
	n := 12 + 4*int(pkt[0]&0x0f)
	if pkt[0]&0x10 != 0 { // header extension
		if len(pkt) < n+4 {
			return 0, 0, nil, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(pkt[n+2:]))
	}
	end := len(pkt)
	if pkt[0]&0x20 != 0 && end > n { // padding
		end -= int(pkt[end-1])
	}
	if n > end {
		return 0, 0, nil, false
	}
	return pkt[1] & 0x7f, binary.BigEndian.Uint32(pkt[4:]), pkt[n:end], true
}
