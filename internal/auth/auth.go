// Package auth decides who is calling: the authenticate stage of the call
// chain, and the same check for REGISTER. It joins the digest verifier to
// the extension store.
package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/config"
	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/digest"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/trunk"
)

// Accounts looks extensions up. *store.Store satisfies it.
type Accounts interface {
	Extension(ctx context.Context, number string) (store.Extension, error)
}

// Authenticator checks digest credentials against the extension store,
// and where each extension may come from.
type Authenticator struct {
	verifier *digest.Verifier
	accounts Accounts
	log      *slog.Logger
	cfg      Config
}

// Config is what an Authenticator enforces beyond the password.
type Config struct {
	// Offer is the algorithms every challenge offers, whoever it is for:
	// one shape for all, so a challenge never tells an enumerator that an
	// extension exists (an extension's own setting only limits what it
	// may answer with).
	Offer credential.Offer
	// PhoneNetworks are where phones may come from unless an extension
	// has its own list. A source outside gets the answer a wrong password
	// gets.
	PhoneNetworks []netip.Prefix
	// TLSOutside requires TLS from a phone outside PhoneNetworks (one an
	// extension's own list lets in): its password must not cross the
	// internet in a form anyone on the path can attack offline.
	TLSOutside bool
	// OnFailure is told of every failed authentication (wrong password,
	// unknown user, forbidden source), for the ban counters.
	OnFailure func(ctx context.Context, source netip.Addr, user, reason string)
}

// New returns an Authenticator.
func New(v *digest.Verifier, accounts Accounts, cfg Config, log *slog.Logger) *Authenticator {
	if cfg.Offer == "" {
		cfg.Offer = credential.OfferMD5
	}
	return &Authenticator{verifier: v, accounts: accounts, cfg: cfg, log: log}
}

// Request is what Check needs to know about a request.
type Request struct {
	Method string
	Header string // Authorization or Proxy-Authorization, "" if none
	Source netip.Addr
	Secure bool // arrived over TLS
}

func contains(nets []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// allowed reports whether e may authenticate from r's source, and why not.
func (a *Authenticator) allowed(e store.Extension, r Request) string {
	own, err := config.ParseNetworks(e.Networks)
	if err != nil {
		return "extension networks unparsable" // fail closed
	}
	inPhones := contains(a.cfg.PhoneNetworks, r.Source)
	switch {
	case len(own) > 0 && !contains(own, r.Source):
		return "source outside the extension's networks"
	case len(own) == 0 && !inPhones:
		return "source outside the phone networks"
	case !inPhones && a.cfg.TLSOutside && !r.Secure:
		return "TLS required from outside the phone networks"
	}
	return ""
}

// Check verifies r's credentials and returns the digest result. A store
// failure is reported as Unavailable (fail closed: 503), never as success
// and never to OnFailure.
// A source the extension may not come from fails exactly like a wrong
// password: nothing on the wire tells the two apart.
func (a *Authenticator) Check(ctx context.Context, r Request) digest.Result {
	blocked := ""
	var lookupErr error
	res := a.verifier.Check(r.Method, r.Header, func(user string) (digest.Secret, bool) {
		e, err := a.accounts.Extension(ctx, user)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				lookupErr = err
				a.log.Error("auth: extension lookup failed", "user", user, "err", err)
			}
			return digest.Secret{}, false
		}
		// A hash made for another realm can never verify: treat as unknown.
		if e.Realm != a.verifier.Realm() {
			return digest.Secret{}, false
		}
		if blocked = a.allowed(e, r); blocked != "" {
			return digest.Secret{}, false
		}
		return digest.Secret{Offer: credential.Offer(e.Digest), HA1MD5: e.HA1MD5, HA1SHA256: e.HA1SHA256}, true
	})
	if blocked != "" && res.Outcome == digest.Failed {
		res.Reason = "auth: " + blocked
	}
	if lookupErr != nil && res.Outcome == digest.Failed {
		// Fail closed, but blame nobody: a store too slow to answer (an
		// attacker's flood can make it so) must not turn the office's own
		// phones into "failed guesses" and get them banned.
		res.Outcome, res.Reason = digest.Unavailable, "auth: account lookup failed: "+lookupErr.Error()
	}
	if res.Outcome == digest.Failed && a.cfg.OnFailure != nil {
		a.cfg.OnFailure(ctx, r.Source, res.User, res.Reason)
	}
	return res
}

// Challenges returns the challenge header values: the same offer for
// every user, known or not (enumeration guard).
func (a *Authenticator) Challenges(stale bool) []string {
	return a.verifier.Challenges(a.cfg.Offer.Algorithms(), stale)
}

// Verdict turns a digest result into a chain verdict.
func (a *Authenticator) Verdict(r digest.Result) chain.Verdict {
	switch r.Outcome {
	case digest.OK:
		return chain.Pass("auth: " + r.User + " authenticated")
	case digest.Stale:
		return chain.Verdict{Action: chain.Challenge, Reason: r.Reason, Stale: true, Challenges: a.Challenges(true)}
	case digest.Unavailable:
		return chain.Deny(503, r.Reason)
	default:
		return chain.Verdict{Action: chain.Challenge, Reason: r.Reason, Challenges: a.Challenges(false)}
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
	src, _ := netip.ParseAddrPort(a.Source)
	r := s.A.Check(ctx, Request{Method: a.Method, Header: a.AuthHeader, Source: src.Addr(), Secure: a.Secure})
	v := s.A.Verdict(r)
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
