// Package auth decides who is calling: the authenticate stage of the call
// chain, and the same check for REGISTER. It joins the digest verifier to
// the extension store.
package auth

import (
	"context"
	"errors"
	"log/slog"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/digest"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/trunk"
)

// Accounts looks extensions up. *store.Store satisfies it.
type Accounts interface {
	Extension(ctx context.Context, number string) (store.Extension, error)
}

// Authenticator checks digest credentials against the extension store.
type Authenticator struct {
	verifier *digest.Verifier
	accounts Accounts
	log      *slog.Logger
}

// New returns an Authenticator.
func New(v *digest.Verifier, accounts Accounts, log *slog.Logger) *Authenticator {
	return &Authenticator{verifier: v, accounts: accounts, log: log}
}

// Check verifies header for method and returns the digest result. A store
// failure is reported as a failed check (fail closed), never as success.
func (a *Authenticator) Check(ctx context.Context, method, header string) digest.Result {
	return a.verifier.Check(method, header, func(user string) (digest.Secret, bool) {
		e, err := a.accounts.Extension(ctx, user)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				a.log.Error("auth: extension lookup failed", "user", user, "err", err)
			}
			return digest.Secret{}, false
		}
		// A hash made for another realm can never verify: treat as unknown.
		if e.Realm != a.verifier.Realm() {
			return digest.Secret{}, false
		}
		return digest.Secret{Offer: credential.Offer(e.Digest), HA1MD5: e.HA1MD5, HA1SHA256: e.HA1SHA256}, true
	})
}

// Challenges returns the challenge header values to send to user. The
// extension's own offer is used if it exists, otherwise the default offer.
func (a *Authenticator) Challenges(ctx context.Context, user string, stale bool) []string {
	if e, err := a.accounts.Extension(ctx, user); err == nil {
		return a.verifier.Challenges(credential.Offer(e.Digest).Algorithms(), stale)
	}
	return a.verifier.DefaultChallenges(stale)
}

// Verdict turns a digest result into a chain verdict for user claimedUser.
func (a *Authenticator) Verdict(ctx context.Context, r digest.Result, claimedUser string) chain.Verdict {
	switch r.Outcome {
	case digest.OK:
		return chain.Pass("auth: " + r.User + " authenticated")
	case digest.Stale:
		return chain.Verdict{Action: chain.Challenge, Reason: r.Reason, Stale: true,
			Challenges: a.Challenges(ctx, claimedUser, true)}
	default:
		return chain.Verdict{Action: chain.Challenge, Reason: r.Reason,
			Challenges: a.Challenges(ctx, claimedUser, false)}
	}
}

// Trunks identifies requests from carrier trunks by source address.
type Trunks interface {
	FromSource(source string) (trunk.Trunk, bool)
}

// Stage is the authenticate stage of the call chain.
type Stage struct {
	A      *Authenticator
	Trunks Trunks // nil: no trunks
}

// Name implements chain.Stage.
func (Stage) Name() string { return "auth" }

// Run implements chain.Stage. On success it sets a.Caller, and a.Trunk for
// a request from a carrier.
func (s Stage) Run(ctx context.Context, a *chain.Attempt) chain.Verdict {
	if a.Feature != "" {
		// A feature acts for the extension responsible, identified when
		// its call was set up. Without one (a carrier asking to
		// transfer), nobody's policy could allow it: refuse.
		if a.OnBehalfOf == "" {
			return chain.Deny(403, "auth: "+a.Feature+" with no extension responsible")
		}
		a.Caller = a.OnBehalfOf
		return chain.Pass("auth: " + a.Feature + " on behalf of " + a.OnBehalfOf)
	}
	if s.Trunks != nil {
		if t, ok := s.Trunks.FromSource(a.Source); ok {
			// A carrier does not answer digest challenges: its source
			// address is its identity. What it may reach is limited
			// later (tollgate: DIDs only, never back out).
			a.Trunk = t.Name
			a.Caller = callingNumber(a.FromUser)
			return chain.Pass("auth: trunk " + t.Name + " at " + a.Source)
		}
	}
	r := s.A.Check(ctx, a.Method, a.AuthHeader)
	v := s.A.Verdict(ctx, r, a.FromUser)
	if v.Action != chain.Continue {
		return v
	}
	// Caller-ID spoofing guard: extension 201 authenticating and claiming
	// to be 202 in From is refused, so records and callee displays always
	// name the account that really placed the call.
	if r.User != a.FromUser {
		return chain.Deny(403, "auth: "+r.User+" authenticated but From claims "+a.FromUser)
	}
	a.Caller = r.User
	return v
}

// callingNumber keeps a carrier-supplied calling number only if it is
// digits (optional leading +); anything else becomes "anonymous", so no
// text from outside travels on into records or the callee's display.
func callingNumber(from string) string {
	if len(from) < 2 || len(from) > 16 {
		return "anonymous"
	}
	for i := 0; i < len(from); i++ {
		c := from[i]
		if c >= '0' && c <= '9' || (i == 0 && c == '+') {
			continue
		}
		return "anonymous"
	}
	return from
}
