package registrar

import (
	"errors"
	"testing"
	"time"
)

func TestApply(t *testing.T) {
	r := New(Limits{})
	now := time.Now()
	r.now = func() time.Time { return now }
	req := func(cseq uint32, changes ...Change) Request {
		return Request{AOR: "201", CallID: "c1", CSeq: cseq, Changes: changes, Transport: "UDP", Source: "127.0.0.9:5060"}
	}
	a := "sip:201@127.0.0.9:5060"
	b := "sip:201-0x1@127.0.0.10:5062;transport=udp"

	if _, err := r.Apply(req(1, Change{Contact: a, Expires: time.Hour})); err != nil {
		t.Fatal(err)
	}
	if bs, _ := r.Apply(req(2, Change{Contact: b, Expires: 2 * time.Hour})); len(bs) != 2 {
		t.Fatalf("two contacts: got %d", len(bs))
	}
	if bs := r.Lookup("201"); bs[1].Expires.Sub(now) != time.Hour {
		t.Fatalf("expiry not clamped to max: %v", bs[1].Expires.Sub(now))
	}
	if _, err := r.Apply(req(1, Change{Contact: a, Expires: time.Hour})); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("same CSeq: %v, want out of order", err)
	}
	if _, err := r.Apply(req(3, Change{Contact: a, Expires: 10 * time.Second})); !errors.Is(err, ErrTooBrief) {
		t.Fatalf("10 s: %v, want too brief", err)
	}
	if bs, _ := r.Apply(req(4, Change{Contact: a, Expires: 0})); len(bs) != 1 || bs[0].Contact != b {
		t.Fatalf("un-register a: %+v", bs)
	}
	now = now.Add(61 * time.Minute)
	if bs := r.Lookup("201"); len(bs) != 0 {
		t.Fatalf("expired binding still returned: %+v", bs)
	}
	r.Sweep()
	if len(r.All()) != 0 || len(r.bindings) != 0 {
		t.Fatal("sweep left bindings")
	}
}

func TestWildcardAndLimit(t *testing.T) {
	r := New(Limits{MaxContacts: 2})
	for i, c := range []string{"sip:a@h", "sip:b@h"} {
		if _, err := r.Apply(Request{AOR: "201", CallID: "x", CSeq: uint32(i + 1), Changes: []Change{{Contact: c, Expires: time.Hour}}}); err != nil {
			t.Fatal(err)
		}
	}
	// Memory bound: an account cannot pile up contacts without limit.
	if _, err := r.Apply(Request{AOR: "201", CallID: "x", CSeq: 9, Changes: []Change{{Contact: "sip:c@h", Expires: time.Hour}}}); !errors.Is(err, ErrTooMany) {
		t.Fatalf("third contact: %v", err)
	}
	if _, err := r.Apply(Request{AOR: "201", CallID: "y", CSeq: 1, Wildcard: true}); err != nil {
		t.Fatal(err)
	}
	if len(r.Lookup("201")) != 0 {
		t.Fatal("wildcard did not remove all")
	}
}
