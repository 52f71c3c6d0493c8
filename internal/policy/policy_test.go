package policy

import (
	"testing"
	"time"
)

func TestHours(t *testing.T) {
	h, err := ParseHours("mon-fri 08:00-20:00, sat 09:00-13:00")
	if err != nil {
		t.Fatal(err)
	}
	at := func(day, hh, mm int) time.Time { return time.Date(2026, 11, 22+day, hh, mm, 0, 0, time.UTC) } // 22 Nov 2026 is a Sunday
	for _, c := range []struct {
		t    time.Time
		want bool
	}{
		{at(1, 8, 0), true}, {at(1, 7, 59), false}, {at(5, 19, 59), true}, {at(5, 20, 0), false},
		{at(6, 12, 0), true}, {at(6, 13, 0), false}, {at(0, 12, 0), false},
	} {
		if got := h.Contains(c.t); got != c.want {
			t.Errorf("%s: %v, want %v", c.t.Format("Mon 15:04"), got, c.want)
		}
	}
	if w, _ := ParseHours("fri-mon 00:00-24:00"); !w.Contains(at(0, 3, 0)) || w.Contains(at(2, 3, 0)) {
		t.Error("wrapping day range")
	}
	if n, _ := ParseHours("never"); n.Contains(at(1, 12, 0)) || n.Always() {
		t.Error("never allows a time")
	}
	if a, _ := ParseHours(""); !a.Contains(at(0, 3, 0)) {
		t.Error("empty hours must mean always")
	}
	for _, bad := range []string{"mon 8-20", "mon-fri", "xyz 08:00-20:00", "mon 20:00-08:00", "mon 08:00-24:30", "mon 08:0-20:00"} {
		if _, err := ParseHours(bad); err == nil {
			t.Errorf("ParseHours(%q) accepted", bad)
		}
	}
}

func TestRates(t *testing.T) {
	r := NewRates(DefaultRates())
	for _, c := range []struct {
		e164   string
		want   int64
		prefix string
	}{
		{"+23276123456", 250, "+232"},
		{"+12025550123", 30, "+1"},
		{"+18765550123", 150, "+1876"}, // Jamaica is not the US
		{"+819012345678", 20, "+8190"},
		{"+81312345678", 10, "+81"},
		{"+8821234", 500, "+882"},
		{"+99912345", 300, "+"},
	} {
		if v, p := r.Lookup(c.e164); v != c.want || p != c.prefix {
			t.Errorf("Lookup(%s) = %d %s, want %d %s", c.e164, v, p, c.want, c.prefix)
		}
	}
	if v, _ := (Rates{}).Lookup("+81312345678"); v != Fallback {
		t.Error("an empty table must price at the fallback, never free")
	}
	if Cost(60, 1500*time.Millisecond) != 2 || Cost(250, time.Minute) != 250 || Cost(10, 0) != 0 {
		t.Error("Cost")
	}
	if Affordable(250, 1000) != 4*time.Minute || Affordable(250, -5) != 0 {
		t.Error("Affordable")
	}
}

func TestValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]Profile{
		"name":      {Name: "Bad Name", Class: ClassMobile},
		"class":     {Name: "x", Class: "everything"},
		"countries": {Name: "x", Class: ClassMobile, Countries: "+1"},
		"hours":     {Name: "x", Class: ClassMobile, Hours: "sometimes"},
		"limit":     {Name: "x", Class: ClassMobile, Limits: Limits{IntlPerHour: -1}},
	} {
		if p.Validate() == nil {
			t.Errorf("%s: invalid profile accepted", name)
		}
	}
	if c, err := ParseCountries(" sl, US,us "); err != nil || c != "SL,US" {
		t.Fatalf("ParseCountries: %q %v", c, err)
	}
	for _, bad := range []string{"+1", "USA", "1", "S"} {
		if _, err := ParseCountries(bad); err == nil {
			t.Errorf("ParseCountries(%q) accepted", bad)
		}
	}
	if Class("bogus").AtLeast(ClassDomestic) {
		t.Error("an unknown class must rank as internal")
	}
}
