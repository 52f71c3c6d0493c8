// Package chain is the one path every call attempt takes through sekisho.
// An attempt (from a phone today; from the trunk and from features later)
// is a value that passes an ordered list of stages. Each stage reads and
// fills the attempt and returns a verdict with a stable reason. Stages
// never write SIP: the caller maps the final verdict to a response with
// one table (see package pbx), and the reason goes to records, never to
// the peer.
//
// The order of stages is fixed in one place, pbx.newChain, with the
// reason for it beside it.
package chain

import (
	"context"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/policy"
)

// Action is what a verdict asks the caller to do.
type Action int

// Actions, ordered from "go on" to "say nothing".
const (
	// Undecided is the zero value. The runner treats it as a rejection:
	// a stage that forgot to decide must never let a call through.
	Undecided Action = iota
	// Continue passes the attempt to the next stage.
	Continue
	// Challenge asks the caller to authenticate (401/407).
	Challenge
	// Reject ends the attempt with Status.
	Reject
	// Drop ends the attempt with no answer at all.
	Drop
)

func (a Action) String() string {
	switch a {
	case Continue:
		return "continue"
	case Challenge:
		return "challenge"
	case Reject:
		return "reject"
	case Drop:
		return "drop"
	}
	return "undecided"
}

// Verdict is a stage's decision.
type Verdict struct {
	Action Action
	Status int    // SIP status for Reject
	Reason string // stable, e.g. "route: 202 has no registered contact"
	// Challenges are the authenticate header values for Challenge.
	Challenges []string
	Stale      bool
}

// Pass is the verdict to continue with a reason for the trail.
func Pass(reason string) Verdict { return Verdict{Action: Continue, Reason: reason} }

// Deny is the verdict to reject with status and reason.
func Deny(status int, reason string) Verdict {
	return Verdict{Action: Reject, Status: status, Reason: reason}
}

// Step is one stage's verdict as kept on the attempt's trail.
type Step struct {
	Stage   string
	Verdict Verdict
}

// Stage is one small decision on the path of a call. Run must be safe for
// concurrent use: many attempts run at once.
type Stage interface {
	Name() string
	Run(ctx context.Context, a *Attempt) Verdict
}

// Chain is an ordered list of stages.
type Chain struct {
	stages []Stage
}

// New returns a chain running stages in the given order.
func New(stages ...Stage) *Chain { return &Chain{stages: stages} }

// Names lists the stages in order.
func (c *Chain) Names() []string {
	out := make([]string, len(c.stages))
	for i, s := range c.stages {
		out[i] = s.Name()
	}
	return out
}

// Until returns the chain of the stages before the one named name (the
// whole chain if there is none): the same stages in the same order, for a
// decision that places no call and so must not run the stages that count
// placed calls.
func (c *Chain) Until(name string) *Chain {
	for i, s := range c.stages {
		if s.Name() == name {
			return &Chain{stages: c.stages[:i:i]}
		}
	}
	return c
}

// Run passes a through the stages until one does not continue. It returns
// the final verdict: Continue only if every stage continued. The trail of
// verdicts is kept on a.
func (c *Chain) Run(ctx context.Context, a *Attempt) Verdict {
	if len(c.stages) == 0 {
		return Deny(500, "chain: no stages")
	}
	var v Verdict
	for _, s := range c.stages {
		if err := ctx.Err(); err != nil {
			v = Deny(500, "chain: "+err.Error())
		} else {
			v = s.Run(ctx, a)
		}
		if v.Action == Undecided {
			// Fail closed: undecided means reject.
			v = Deny(500, s.Name()+": undecided")
		}
		a.Trail = append(a.Trail, Step{Stage: s.Name(), Verdict: v})
		if v.Action != Continue {
			return v
		}
	}
	return v
}

// Attempt is one request to create a call leg, carried through the chain.
// Stages fill in the fields they own; later stages read them and never
// re-derive them from the raw request.
type Attempt struct {
	// Set by the receiver before the chain runs.
	Method     string // INVITE
	Source     string // transport address of the request
	Transport  string
	Secure     bool   // arrived over TLS
	FromUser   string // user part of From, as claimed (unauthenticated)
	Dialled    string // user part of the Request-URI, raw, for evidence only
	AuthHeader string // Proxy-Authorization value, "" if none

	// Feature is set when the PBX itself creates the attempt for a feature
	// ("transfer" inside a call that is up, "forward" for a call to an
	// extension that forwards its calls), and
	// OnBehalfOf is the extension responsible: its policy and limits apply.
	// Only the PBX's own code sets these; nothing from a request does.
	Feature    string
	OnBehalfOf string
	// Presented is who an extension rung by such an attempt is shown as
	// calling: the party actually on the line (the caller a forward
	// passes on, the party a transfer hands over), not the extension
	// responsible. Display only: it decides nothing, and a trunk leg
	// always shows the trunk's own caller ID.
	Presented string

	// Set by the authenticate stage.
	Caller string // authenticated extension, or the calling number a trunk presented
	Trunk  string // the trunk the request came from, identified by source address; "" for phones

	// Set by the canonicalise stage: the one parse of Dialled.
	Dest Destination

	// Set by the toll gate: the profile that applied to the caller, with
	// the extension's own overrides, and when a person last lifted a
	// suspension of the caller.
	Profile  policy.Profile
	Unlocked time.Time

	// Set by the route stage: where to ring, and the local extension the
	// call is for (dialled, or behind a DID), even when it has no
	// registered contact, so that its call forwarding can apply.
	Targets   []Target
	CalleeExt string
	// For a ring group: Ring is how long Targets ring (0: the PBX's ring
	// timeout), and Next the rounds rung after, one after another, while
	// nobody answers (a hunt group's next members, an overflow group).
	Group string
	Ring  time.Duration
	Next  []Round
	// Mailbox is the extension whose voicemail takes a ring group's call
	// when no round is answered (the group's overflow).
	Mailbox string

	// Set by the limits stage: how long an answered call may last (0: no
	// limit of its own), and the reservation that must be settled exactly
	// once when the attempt ends, answered or not.
	MaxDuration time.Duration
	Hold        Hold

	// Trail of verdicts, written by the runner.
	Trail []Step
}

// Round is a set of targets rung together, for Ring.
type Round struct {
	Targets []Target
	Ring    time.Duration
}

// Hold is a reservation against the limits, taken when an outbound call
// is let through. Settle releases it with the answered duration (0 if the
// call was never answered) and returns the call's estimated cost.
type Hold interface {
	Settle(answered time.Duration) int64
}

// Reasons joins the trail's reasons for a record.
func (a *Attempt) Reasons() string {
	parts := make([]string, 0, len(a.Trail))
	for _, s := range a.Trail {
		parts = append(parts, s.Verdict.Reason)
	}
	return strings.Join(parts, "; ")
}

// Kind is the class of a canonical destination.
type Kind string

// Kinds of destination.
const (
	KindInvalid   Kind = "invalid"
	KindExtension Kind = "extension"
	// KindDID is a number the carrier delivered to us (inbound only).
	KindDID Kind = "did"
	// Public-network kinds, classified from libphonenumber's metadata.
	KindEmergency     Kind = "emergency"
	KindFixed         Kind = "fixed"
	KindMobile        Kind = "mobile"
	KindTollFree      Kind = "toll-free"
	KindSharedCost    Kind = "shared-cost"
	KindPremium       Kind = "premium"
	KindInternational Kind = "international"
)

// Public reports whether k is a number on the public network (a call to it
// leaves through a trunk).
func (k Kind) Public() bool {
	switch k {
	case KindEmergency, KindFixed, KindMobile, KindTollFree, KindSharedCost, KindPremium, KindInternational:
		return true
	}
	return false
}

// Destination is the canonical form of what was dialled.
type Destination struct {
	Kind Kind
	// Number is the extension or DID number, or for a public number the
	// number in the form sent to the carrier: national format for a
	// domestic number (0312345678), E.164 for an international one
	// (+23276123456), the short code for an emergency number.
	Number string
	// E164 is the public number in E.164 (+81312345678); "" otherwise.
	E164 string
	// Country is the ISO region of a public number (JP, SL, ...).
	Country string
	// CountryCode is its calling code (81, 232, ...).
	CountryCode int
	// Withhold is set when the caller dialled 184 (hide caller ID).
	Withhold bool
}

// Direction of a call relative to the PBX.
func (a *Attempt) Direction() string {
	switch {
	case a.Trunk != "":
		return "inbound"
	case len(a.Targets) > 0 && a.Targets[0].Trunk != "":
		return "outbound"
	}
	return "internal"
}

// Target is one place to ring: a registered contact of an extension, or a
// carrier trunk.
type Target struct {
	Extension string // the extension rung ("" for a trunk)
	Contact   string // Contact URI exactly as registered
	Transport string
	Source    string

	// For a trunk target.
	Trunk  string // trunk name
	Number string // the canonical number sent to the carrier, and nothing else
}
