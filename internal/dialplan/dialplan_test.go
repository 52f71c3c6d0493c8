package dialplan

import (
	"context"
	"testing"

	"github.com/sekisho/sekisho/internal/chain"
)

func TestCanonical(t *testing.T) {
	p := New("JP")
	tests := []struct {
		dialled string
		kind    chain.Kind
		number  string
	}{
		{"201", chain.KindExtension, "201"},
		{"%32%30%31", chain.KindExtension, "201"},
		{"20", chain.KindExtension, "20"},
		{"12345678", chain.KindExtension, "12345678"},
		{"123456789", chain.KindInvalid, ""},
		{"2", chain.KindInvalid, ""},
		{"0312345678", chain.KindInvalid, ""}, // outside line: not an extension
		{"010232761234", chain.KindInvalid, ""},
		{"#010232761234", chain.KindInvalid, ""}, // the incident's symbol trick
		{"%23010232761234", chain.KindInvalid, ""},
		{"*201", chain.KindInvalid, ""},
		{"201#", chain.KindInvalid, ""},
		{"20 1", chain.KindInvalid, ""},
		{"２０１", chain.KindInvalid, ""}, // full-width digits
		{"201;phone-context=x", chain.KindInvalid, ""},
		{"110", chain.KindInvalid, ""},
		{"119", chain.KindInvalid, ""},
		{"%zz", chain.KindInvalid, ""},
		{"", chain.KindInvalid, ""},
		{"alice", chain.KindInvalid, ""},
		// Outside line 0, then a strictly domestic national number.
		{"00312345678", chain.KindDomestic, "0312345678"},
		{"009012345678", chain.KindDomestic, "09012345678"},
		{"00120123456", chain.KindDomestic, "0120123456"},
		{"008001234567", chain.KindDomestic, "08001234567"},
		{"%30%30312345678", chain.KindDomestic, "0312345678"},
		{"0010232761234", chain.KindInvalid, ""},  // 0 + 010: international
		{"0#010232761234", chain.KindInvalid, ""}, // the symbol in front of 010
		{"#00312345678", chain.KindInvalid, ""},
		{"00312345678#", chain.KindInvalid, ""},
		{"0*0312345678", chain.KindInvalid, ""},
		{"003-1234-5678", chain.KindInvalid, ""}, // separators
		{"0033312345678", chain.KindInvalid, ""}, // 0 + carrier selection 0033
		{"00990123456", chain.KindInvalid, ""},   // premium rate
		{"00570123456", chain.KindInvalid, ""},   // shared cost
		{"00180123456", chain.KindInvalid, ""},
		{"0031234567", chain.KindInvalid, ""},   // too short
		{"003123456789", chain.KindInvalid, ""}, // 11 digits, not mobile
		{"0110", chain.KindInvalid, ""},
		{"0312345678", chain.KindInvalid, ""}, // no outside-line prefix
		{"0０３12345678", chain.KindInvalid, ""},
	}
	for _, tt := range tests {
		got := p.Canonical(tt.dialled)
		if got.Kind != tt.kind || got.Number != tt.number {
			t.Errorf("Canonical(%q) = %+v, want %s %q", tt.dialled, got, tt.kind, tt.number)
		}
	}
}

func TestInbound(t *testing.T) {
	p := New("JP")
	for _, tt := range []struct {
		user string
		kind chain.Kind
	}{
		{"0312345678", chain.KindDID},
		{"+81312345678", chain.KindDID},
		{"81312345678;x", chain.KindInvalid},
		{"#0312345678", chain.KindInvalid},
		{"", chain.KindInvalid},
		{"+", chain.KindInvalid},
	} {
		if got := p.Inbound(tt.user); got.Kind != tt.kind {
			t.Errorf("Inbound(%q) = %+v, want %s", tt.user, got, tt.kind)
		}
	}
	if New("US").Canonical("00312345678").Kind != chain.KindInvalid {
		t.Error("a region without a domestic rule must route nothing outside")
	}
	if New("JP").WithOutsidePrefix("9").Canonical("90312345678").Kind != chain.KindDomestic {
		t.Error("outside-line prefix 9 not honoured")
	}
}

func TestStage(t *testing.T) {
	s := Stage{Plan: New("JP")}
	a := &chain.Attempt{Dialled: "#0101234"}
	if v := s.Run(context.Background(), a); v.Action != chain.Reject || v.Status != 484 {
		t.Fatalf("invalid dial: %+v", v)
	}
	a = &chain.Attempt{Dialled: "202"}
	if v := s.Run(context.Background(), a); v.Action != chain.Continue || a.Dest.Number != "202" {
		t.Fatalf("extension: %+v dest %+v", v, a.Dest)
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"201", "#010", "%23010", "0312345678", "２０１", "%", "1%00"} {
		f.Add(s)
	}
	p := New("JP")
	f.Fuzz(func(t *testing.T, s string) {
		d := p.Canonical(s)
		if d.Kind == chain.KindExtension {
			// Whatever went in, what comes out is digits only.
			if err := p.ValidExtension(d.Number); err != nil {
				t.Fatalf("Canonical(%q) = %q, not a valid extension: %v", s, d.Number, err)
			}
		}
	})
}
