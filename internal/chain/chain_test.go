package chain

import (
	"context"
	"testing"
)

type fixed struct {
	name string
	v    Verdict
}

func (f fixed) Name() string                          { return f.name }
func (f fixed) Run(context.Context, *Attempt) Verdict { return f.v }

func TestRun(t *testing.T) {
	pass := fixed{"a", Pass("a: ok")}
	tests := []struct {
		name   string
		stages []Stage
		action Action
		status int
		trail  int
	}{
		{"all continue", []Stage{pass, pass}, Continue, 0, 2},
		{"reject stops", []Stage{pass, fixed{"b", Deny(403, "b: no")}, pass}, Reject, 403, 2},
		{"challenge stops", []Stage{fixed{"auth", Verdict{Action: Challenge}}, pass}, Challenge, 0, 1},
		{"undecided fails closed", []Stage{pass, fixed{"lazy", Verdict{}}, pass}, Reject, 500, 2},
		{"empty chain fails closed", nil, Reject, 500, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Attempt{}
			v := New(tt.stages...).Run(context.Background(), a)
			if v.Action != tt.action || v.Status != tt.status || len(a.Trail) != tt.trail {
				t.Fatalf("got %v %d trail %d, want %v %d trail %d", v.Action, v.Status, len(a.Trail), tt.action, tt.status, tt.trail)
			}
		})
	}
}

func TestCancelledContextRejects(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v := New(fixed{"a", Pass("ok")}).Run(ctx, &Attempt{})
	if v.Action != Reject {
		t.Fatalf("cancelled context: %v", v.Action)
	}
}

func TestUntil(t *testing.T) {
	c := New(named("a"), named("b"), named("c"))
	if got := c.Until("c").Names(); len(got) != 2 || got[1] != "b" {
		t.Fatalf("Until(c) = %v", got)
	}
	if got := c.Until("x").Names(); len(got) != 3 {
		t.Fatalf("Until(x) = %v", got)
	}
}

type named string

func (n named) Name() string                        { return string(n) }
func (named) Run(context.Context, *Attempt) Verdict { return Pass("") }
