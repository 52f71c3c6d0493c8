package dialplan

import (
	"context"
	"strings"
	"testing"

	"github.com/sekisho/sekisho/internal/chain"
)

func TestCanonical(t *testing.T) {
	p := New("JP")
	tests := []struct {
		dialled string
		kind    chain.Kind
		number  string // what would be sent to the carrier
	}{
		// Extensions and emergency numbers.
		{"201", chain.KindExtension, "201"},
		{"%32%30%31", chain.KindExtension, "201"},
		{"12345678", chain.KindExtension, "12345678"},
		{"110", chain.KindEmergency, "110"},
		{"119", chain.KindEmergency, "119"},
		{"0118", chain.KindEmergency, "118"},
		// Domestic, with the outside-line prefix 0.
		{"00312345678", chain.KindFixed, "0312345678"},
		{"%30%30312345678", chain.KindFixed, "0312345678"},
		{"009012345678", chain.KindMobile, "09012345678"},
		{"00120123456", chain.KindTollFree, "0120123456"},
		{"008001234567", chain.KindTollFree, "08001234567"},
		{"00990123456", chain.KindPremium, "0990123456"},
		{"00570123456", chain.KindSharedCost, "0570123456"},
		{"005012345678", chain.KindFixed, "05012345678"},  // 050 IP phone
		{"01840312345678", chain.KindFixed, "0312345678"}, // 184 withholds, is never sent
		{"01860312345678", chain.KindFixed, "0312345678"},
		{"000330312345678", chain.KindFixed, "0312345678"}, // carrier code dropped
		{"01840003301023276123456", chain.KindInvalid, ""}, // one outside-line prefix only
		{"0184003301023276123456", chain.KindInternational, "+23276123456"},
		// International: 010 or +, whatever came before it. The incident.
		{"001023276123456", chain.KindInternational, "+23276123456"},
		{"+23276123456", chain.KindInternational, "+23276123456"},
		{"00033010232761234", chain.KindInvalid, ""}, // wrong length for SL
		{"0003301023276123456", chain.KindInternational, "+23276123456"},
		{"0001023276123456", chain.KindInvalid, ""},                     // 0 + 001 + 0232...: not a number
		{"000101023276123456", chain.KindInternational, "+23276123456"}, // 001 + 010 (KDDI)
		{"0184010232761234", chain.KindInvalid, ""},
		{"018401023276123456", chain.KindInternational, "+23276123456"},
		{"001012025550123", chain.KindInternational, "+12025550123"},
		{"+81312345678", chain.KindFixed, "0312345678"},
		// Symbols, letters, separators, encodings: invalid, never a number.
		{"#001023276123456", chain.KindInvalid, ""},
		{"0#01023276123456", chain.KindInvalid, ""},
		{"%23001023276123456", chain.KindInvalid, ""},
		{"0%23010232761234", chain.KindInvalid, ""},
		{"%2523001023276123456", chain.KindInvalid, ""}, // double encoding
		{"*001023276123456", chain.KindInvalid, ""},
		{"0p01023276123456", chain.KindInvalid, ""},
		{"0,01023276123456", chain.KindInvalid, ""},
		{"0w01023276123456", chain.KindInvalid, ""},
		{"003-1234-5678", chain.KindInvalid, ""},
		{"003 1234 5678", chain.KindInvalid, ""},
		{"0(03)12345678", chain.KindInvalid, ""},
		{"0０３12345678", chain.KindInvalid, ""}, // full-width digits
		{"00312345678;phone-context=+81", chain.KindInvalid, ""},
		{"++23276123456", chain.KindInvalid, ""},
		{"0+23276123456", chain.KindInvalid, ""},
		{"+999123456", chain.KindInvalid, ""}, // unassigned country code
		{"0031234567", chain.KindInvalid, ""}, // too short
		{"0312345678", chain.KindInvalid, ""}, // no outside-line prefix
		{"0110", chain.KindEmergency, "110"},
		// What a tel: Request-URI hands over (see pbx.dialled): a global
		// number, or parameters and separators that make it invalid.
		{"+23276123456", chain.KindInternational, "+23276123456"},
		{"+1-876-555-0123", chain.KindInvalid, ""},
		{"0312345678;phone-context=+81", chain.KindInvalid, ""},
		{"+81312345678;isub=1", chain.KindInvalid, ""},
		{"+23276123456;ext=1", chain.KindInvalid, ""},
		{"0", chain.KindInvalid, ""},
		{"", chain.KindInvalid, ""},
		{"alice", chain.KindInvalid, ""},
		{"%zz", chain.KindInvalid, ""},
	}
	for _, tt := range tests {
		got := p.Canonical(tt.dialled)
		if got.Kind != tt.kind || got.Number != tt.number {
			t.Errorf("Canonical(%q) = %s %q, want %s %q", tt.dialled, got.Kind, got.Number, tt.kind, tt.number)
		}
	}
	if d := p.Canonical("01840312345678"); !d.Withhold {
		t.Error("184 must set Withhold")
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
	if New("JP").WithOutsidePrefix("9").Canonical("90312345678").Kind != chain.KindFixed {
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

// FuzzCanonical checks the gate's two promises for every input: what is
// sent to the carrier is digits with at most a leading +, and a public
// destination dialled again in its own canonical form is the same
// destination (no string can mean one thing to the gate and another to the
// carrier).
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"201", "#010", "%23010", "00312345678", "001023276123456", "+23276123456",
		"0003301023276123456", "018401023276123456", "01840312345678", "２０１", "%", "1%00", "0120123456"} {
		f.Add(s)
	}
	plans := []*Plan{New("JP"), New("US").WithOutsidePrefix("9")}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range plans {
			checkCanonical(t, p, s)
		}
	})
}

// checkCanonical is the fuzz property for one plan.
func checkCanonical(t *testing.T, p *Plan, s string) {
	t.Helper()
	d := p.Canonical(s)
	if d.Kind == chain.KindInvalid {
		return
	}
	n := strings.TrimPrefix(d.Number, "+")
	if !digits(n) {
		t.Fatalf("Canonical(%q) = %q: not digits", s, d.Number)
	}
	switch {
	case d.Kind == chain.KindExtension:
		if err := p.ValidExtension(d.Number); err != nil {
			t.Fatalf("Canonical(%q) = extension %q: %v", s, d.Number, err)
		}
	case d.Kind.Public() && d.E164 != "":
		again := p.Canonical(d.E164)
		if again.Kind != d.Kind || again.E164 != d.E164 || again.Number != d.Number {
			t.Fatalf("Canonical(%q) = %+v, but its E.164 form gives %+v", s, d, again)
		}
	}
	// Whatever the trunk's format, what goes to the carrier is
	// digits with at most a leading +.
	for _, f := range []string{FormatMixed, FormatNational, FormatE164} {
		n, err := p.Format(d, f)
		if err != nil || !digits(strings.TrimPrefix(n, "+")) {
			t.Fatalf("Format(Canonical(%q), %s) = %q, %v", s, f, n, err)
		}
	}
}

// BenchmarkCanonical measures the canonicalise stage for one dialled
// string, as the chain runs it per call attempt.
func BenchmarkCanonical(b *testing.B) {
	p := New("JP")
	for _, dial := range []string{"201", "00312345678", "001023276123456", "0#01023276123456"} {
		b.Run(dial, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a := &chain.Attempt{Caller: "201", Dialled: dial}
				Stage{Plan: p}.Run(context.Background(), a)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	p := New("JP")
	for _, c := range []struct{ dial, mixed, national, e164 string }{
		{"00312345678", "0312345678", "0312345678", "+81312345678"},
		{"009012345678", "09012345678", "09012345678", "+819012345678"},
		{"001023276123456", "+23276123456", "01023276123456", "+23276123456"},
		{"+12025550123", "+12025550123", "0101" + "2025550123", "+12025550123"},
		{"0110", "110", "110", "110"}, // emergency: always the short code
	} {
		d := p.Canonical(c.dial)
		for f, want := range map[string]string{FormatMixed: c.mixed, FormatNational: c.national, FormatE164: c.e164} {
			if got, err := p.Format(d, f); err != nil || got != want {
				t.Errorf("Format(%s, %s) = %q %v, want %q", c.dial, f, got, err, want)
			}
		}
	}
	if _, err := p.Format(p.Canonical("00312345678"), "raw"); err == nil {
		t.Error("unknown format accepted")
	}
	if _, err := New("FR").Format(p.Canonical("+23276123456"), FormatNational); err == nil {
		t.Error("national format without an international prefix accepted")
	}
}

// TestOtherRegions: the habits of North America and Britain: their
// international prefixes, the dial-around carrier code 1010XXX, their
// emergency numbers, and the same refusal of anything not a number.
func TestOtherRegions(t *testing.T) {
	us := New("US").WithOutsidePrefix("9")
	gb := New("GB").WithOutsidePrefix("9")
	for _, c := range []struct {
		p      *Plan
		dial   string
		kind   chain.Kind
		number string
	}{
		{us, "911", chain.KindEmergency, "911"},
		{us, "9911", chain.KindEmergency, "911"},
		{us, "912025550123", chain.KindFixed, "12025550123"},
		{us, "92025550123", chain.KindFixed, "12025550123"},
		{us, "901123276123456", chain.KindInternational, "+23276123456"},
		{us, "91010288" + "01123276123456", chain.KindInternational, "+23276123456"}, // dial-around, then 011
		{us, "9#01123276123456", chain.KindInvalid, ""},
		{us, "9*6712025550123", chain.KindInvalid, ""},
		{us, "901023276123456", chain.KindInvalid, ""}, // Japan's 010 means nothing here
		{gb, "999", chain.KindEmergency, "999"},
		{gb, "9112", chain.KindEmergency, "112"},
		{gb, "902079460000", chain.KindFixed, "02079460000"},
		{gb, "90023276123456", chain.KindInternational, "+23276123456"},
		{gb, "91410207946000", chain.KindInvalid, ""}, // 141 hides the caller ID; the number after it is too short
		{gb, "914102079460000", chain.KindFixed, "02079460000"},
	} {
		if got := c.p.Canonical(c.dial); got.Kind != c.kind || got.Number != c.number {
			t.Errorf("%s Canonical(%q) = %s %q, want %s %q", c.p.region, c.dial, got.Kind, got.Number, c.kind, c.number)
		}
	}
	if !Supported("US") || !Supported("GB") || Supported("FR") {
		t.Error("Supported")
	}
	if us.ValidExtension("911") == nil || us.ValidExtension("901") == nil || us.ValidExtension("201") != nil {
		t.Error("US extension rules")
	}
}
