package voicemail

import (
	"context"
	"encoding/binary"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/media"
	"github.com/sekisho/sekisho/internal/store"
)

// fakeLine plays nothing and types digits as telephone-events.
type fakeLine struct {
	mu     sync.Mutex
	listen func([]byte)
	done   chan struct{}
	ts     uint32
}

func newFakeLine() *fakeLine { return &fakeLine{done: make(chan struct{})} }

func (f *fakeLine) Play(*media.Music) <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
func (f *fakeLine) StopPlaying() {}
func (f *fakeLine) Listen(fn func([]byte)) {
	f.mu.Lock()
	f.listen = fn
	f.mu.Unlock()
}
func (f *fakeLine) Done() <-chan struct{} { return f.done }
func (f *fakeLine) Hangup() {
	select {
	case <-f.done:
	default:
		close(f.done)
	}
}
func (f *fakeLine) Codec() uint8 { return media.PayloadPCMU }
func (f *fakeLine) Events() int  { return 101 }

// typeDigits sends each digit as an RFC 4733 event: three packets with
// the same timestamp, the last with the end bit, as phones do.
func (f *fakeLine) typeDigits(s string) {
	for _, d := range s {
		ev := byte(d - '0')
		if d == '#' {
			ev = 11
		}
		f.ts += 800
		for i := range 3 {
			pkt := make([]byte, 16)
			pkt[0], pkt[1] = 0x80, 101
			binary.BigEndian.PutUint32(pkt[4:], f.ts)
			pkt[12] = ev
			if i == 2 {
				pkt[13] = 0x80
			}
			f.mu.Lock()
			fn := f.listen
			f.mu.Unlock()
			if fn != nil {
				fn(pkt)
			}
		}
	}
}

func service(t *testing.T) (*Service, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ha1 := credential.HA1(credential.MD5, "202", "sekisho", "x")
	if err := st.AddExtension(context.Background(), store.Extension{Number: "202", Realm: "sekisho", HA1MD5: ha1, Digest: "md5"}); err != nil {
		t.Fatal(err)
	}
	return &Service{Store: st, Dir: t.TempDir(), Log: slog.New(slog.DiscardHandler)}, st
}

// TestPINLockout: three wrong PINs in a call end it and lock the
// mailbox, in the store, so the right PIN in the next call is refused
// too; a good PIN later clears the count.
func TestPINLockout(t *testing.T) {
	s, st := service(t)
	ctx := context.Background()
	pin, err := s.Enable(ctx, "202", "")
	if err != nil || len(pin) != PINDigits {
		t.Fatalf("Enable: %q %v", pin, err)
	}
	wrong := "000000"
	if wrong == pin {
		wrong = "111111"
	}
	line := newFakeLine()
	digits := make(chan rune, 32)
	line.Listen(dtmfReader(101, digits))
	go line.typeDigits(wrong + "#" + wrong + "#" + wrong + "#")
	if s.login(ctx, line, "202", digits) {
		t.Fatal("wrong PINs let the caller in")
	}
	box, _, _ := st.GetMailbox(ctx, "202")
	if box.Fails != 3 || !box.LockedUntil.After(time.Now()) {
		t.Fatalf("after three wrong PINs: fails %d, locked until %v", box.Fails, box.LockedUntil)
	}
	// The next call, with the right PIN, meets the lock.
	line2 := newFakeLine()
	digits2 := make(chan rune, 32)
	line2.Listen(dtmfReader(101, digits2))
	go line2.typeDigits(pin + "#")
	if s.login(ctx, line2, "202", digits2) {
		t.Fatal("a locked mailbox let the right PIN in")
	}
	// Once the lock has passed, the right PIN opens it and clears the count.
	if err := st.MailboxPIN(ctx, "202", false, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	line3 := newFakeLine()
	digits3 := make(chan rune, 32)
	line3.Listen(dtmfReader(101, digits3))
	go line3.typeDigits(pin + "#")
	if !s.login(ctx, line3, "202", digits3) {
		t.Fatal("the right PIN after the lock did not open the mailbox")
	}
	if box, _, _ := st.GetMailbox(ctx, "202"); box.Fails != 0 {
		t.Fatalf("a good PIN left %d failures counted", box.Fails)
	}
}

// TestDTMFOncePerEvent: an event's repeated packets give one digit, a
// new timestamp a new one, other payload types none.
func TestDTMFOncePerEvent(t *testing.T) {
	out := make(chan rune, 8)
	read := dtmfReader(101, out)
	pkt := func(ts uint32, pt, ev byte) []byte {
		p := make([]byte, 16)
		p[0], p[1] = 0x80, pt
		binary.BigEndian.PutUint32(p[4:], ts)
		p[12] = ev
		return p
	}
	for _, p := range [][]byte{pkt(100, 101, 5), pkt(100, 101, 5), pkt(100, 101, 5), pkt(260, 0, 5), pkt(900, 101, 11), pkt(1700, 101, 10)} {
		read(p)
	}
	close(out)
	got := ""
	for d := range out {
		got += string(d)
	}
	if got != "5#*" {
		t.Fatalf("digits %q, want 5#*", got)
	}
}

// FuzzRTPPayload: any datagram is an RTP packet with a payload inside it,
// or refused; the DTMF reader and the recorder take it without a panic.
func FuzzRTPPayload(f *testing.F) {
	f.Add([]byte{0x80, 101, 0, 1, 0, 0, 3, 32, 0, 0, 0, 1, 11, 0x80, 0, 160})
	f.Add([]byte{0xb1, 0, 0, 1, 0, 0, 3, 32, 0, 0, 0, 1, 1, 2, 3, 4, 0, 0, 0, 1, 9, 9, 9, 9, 4})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		_, _, payload, ok := rtpPayload(pkt)
		if ok && len(payload) > len(pkt)-12 {
			t.Fatalf("payload of %d bytes from a %d-byte packet", len(payload), len(pkt))
		}
		dtmfReader(101, make(chan rune, 1))(pkt)
		newRecorder(0, time.Second).packet(pkt)
	})
}
