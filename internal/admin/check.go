package admin

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/dialplan"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/tollgate"
)

// Check is the gate's answer for a dialled string, as `check-number` and
// the console's "check a number" box show it.
type Check struct {
	From      string   `json:"from"`
	Dialled   string   `json:"dialled"`
	Kind      string   `json:"kind"`
	Number    string   `json:"number,omitempty"`
	E164      string   `json:"e164,omitempty"`
	Country   string   `json:"country,omitempty"`
	Withhold  bool     `json:"withhold,omitempty"`
	Decision  string   `json:"decision"`
	SIPStatus int      `json:"sip_status,omitempty"`
	Route     string   `json:"route,omitempty"`
	Profile   string   `json:"profile,omitempty"`
	Rate      string   `json:"rate,omitempty"`
	Reasons   []string `json:"reasons"`
}

// CheckNumber is the dry run of the call path: the same canonicalise and
// toll gate stages the server runs, on a dialled string, for an extension,
// without placing a call (like `ip route get`).
func CheckNumber(ctx context.Context, st *store.Store, from, dialled string) (Check, error) {
	if from == "" {
		return Check{}, refuse("from", "name the extension whose policy applies")
	}
	if dialled == "" || len(dialled) > 128 {
		return Check{}, refuse("dialled", "type the number as a phone would dial it (1 to 128 characters)")
	}
	if _, err := st.Extension(ctx, from); err != nil {
		return Check{}, &FieldError{Field: "from", Msg: "no extension " + from, Err: err}
	}
	region, err := st.Setting(ctx, store.SettingRegion, "JP")
	if err != nil {
		return Check{}, err
	}
	prefix, err := st.Setting(ctx, store.SettingOutsidePrefix, "0")
	if err != nil {
		return Check{}, err
	}
	book, err := LoadPolicy(ctx, st)
	if err != nil {
		return Check{}, err
	}
	plan := dialplan.New(region).WithOutsidePrefix(prefix)
	a := &chain.Attempt{Method: "INVITE", Caller: from, FromUser: from, Dialled: dialled}
	v := chain.New(dialplan.Stage{Plan: plan}, tollgate.Stage{Accounts: st, Policy: book}).Run(ctx, a)
	out := Check{From: from, Dialled: dialled, Kind: string(a.Dest.Kind), Number: a.Dest.Number,
		E164: a.Dest.E164, Country: a.Dest.Country, Withhold: a.Dest.Withhold, Decision: "allow", Profile: a.Profile.Name}
	if a.Dest.E164 != "" && a.Dest.Kind != chain.KindEmergency {
		rate, pfx := book.Current().Rates.Lookup(a.Dest.E164)
		out.Rate = fmt.Sprintf("%d a minute (%s)", rate, pfx)
	}
	if v.Action != chain.Continue {
		out.Decision, out.SIPStatus = "deny", v.Status
	} else {
		out.Route = dryRoute(ctx, st, a.Dest, plan)
	}
	out.Reasons = []string{}
	for _, s := range a.Trail {
		out.Reasons = append(out.Reasons, s.Verdict.Reason)
	}
	return out, nil
}

// dryRoute says where an allowed destination would go, without ringing.
func dryRoute(ctx context.Context, st *store.Store, d chain.Destination, plan *dialplan.Plan) string {
	if d.Kind == chain.KindExtension {
		if _, err := st.Extension(ctx, d.Number); err != nil {
			return "but no extension " + d.Number + " (404)"
		}
		return "rings extension " + d.Number
	}
	ts, err := st.Trunks(ctx)
	if err != nil || len(ts) == 0 {
		return "but no trunk is configured (503)"
	}
	n, err := plan.Format(d, ts[0].NumberFormat)
	if err != nil {
		return "but trunk " + ts[0].Name + " cannot take it: " + err.Error()
	}
	return "sent to trunk " + ts[0].Name + " as " + n
}

// Log is the whole evidence log with its checkpoints and signing key.
type Log struct {
	Key         ed25519.PrivateKey // nil before the server's first start
	Records     []store.AuditRecord
	Checkpoints []store.AuditCheckpoint
	AnchorSeq   int64  // where a pruned log starts
	AnchorHash  []byte // the hash the first kept record chains from
}

// LoadLog reads the whole evidence log.
func LoadLog(ctx context.Context, st *store.Store) (Log, error) {
	var l Log
	var err error
	if l.Key, err = audit.ReadKey(st.Dir()); err != nil && !errors.Is(err, audit.ErrNoKey) {
		return l, err
	}
	if l.Records, err = st.AuditRecords(ctx, store.AuditFilter{}); err != nil {
		return l, err
	}
	if l.Checkpoints, err = st.AuditCheckpoints(ctx); err != nil {
		return l, err
	}
	l.AnchorSeq, l.AnchorHash, err = st.AuditAnchor(ctx)
	return l, err
}

// LogStatus is the outcome of checking the evidence log.
type LogStatus struct {
	OK          bool   `json:"ok"`
	Records     int    `json:"records"`
	Checkpoints int    `json:"checkpoints"`
	BadRecord   int64  `json:"bad_record,omitempty"`
	Problem     string `json:"problem,omitempty"`
}

// Verify checks l's chain and its checkpoints, and then extra checkpoints
// signed by pub (an export kept elsewhere), when given.
func (l Log) Verify(extra []store.AuditCheckpoint, pub ed25519.PublicKey) LogStatus {
	var own ed25519.PublicKey
	if l.Key != nil {
		own = l.Key.Public().(ed25519.PublicKey)
	}
	var err error
	if own == nil && len(l.Checkpoints) > 0 {
		err = audit.ErrNoKey // checkpoints there, key gone: they cannot be checked
	} else {
		err = audit.VerifyFrom(l.AnchorSeq, l.AnchorHash, l.Records, l.Checkpoints, own)
	}
	n := len(l.Checkpoints)
	if err == nil && pub != nil {
		err = audit.VerifyFrom(l.AnchorSeq, l.AnchorHash, l.Records, extra, pub)
		n += len(extra)
	}
	out := LogStatus{OK: err == nil, Records: len(l.Records), Checkpoints: n}
	if p, ok := err.(*audit.Problem); ok {
		out.BadRecord, out.Problem = p.Seq, p.Reason
	} else if err != nil {
		out.Problem = err.Error()
	}
	return out
}

// String says what is wrong, naming the record when one is concerned.
func (s LogStatus) String() string {
	if s.OK {
		return "ok"
	}
	if s.BadRecord > 0 {
		return fmt.Sprintf("record %d: %s", s.BadRecord, s.Problem)
	}
	return s.Problem
}
