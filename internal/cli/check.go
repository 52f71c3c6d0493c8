package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/dialplan"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/tollgate"
)

type checkJSON struct {
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

// checkNumber is the dry run of the call path: the same canonicalise and
// toll gate stages the server runs, on a number, for an extension, without
// placing a call (like `ip route get`).
func checkNumber(args []string, env Env) error {
	var c common
	fs := newFlags("check-number", env)
	c.bind(fs)
	from := fs.String("from", "", "the extension whose policy applies (required)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *from == "" {
		return fmt.Errorf("%w: check-number takes --from EXT and one dialled STRING", ErrUsage)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, c.data)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Extension(ctx, *from); err != nil {
		return fmt.Errorf("--from %s: %w", *from, err)
	}
	region, err := st.Setting(ctx, store.SettingRegion, "JP")
	if err != nil {
		return err
	}
	prefix, err := st.Setting(ctx, store.SettingOutsidePrefix, "0")
	if err != nil {
		return err
	}
	book, err := loadPolicy(ctx, st)
	if err != nil {
		return err
	}
	a := &chain.Attempt{Method: "INVITE", Caller: *from, FromUser: *from, Dialled: pos[0]}
	v := chain.New(dialplan.Stage{Plan: dialplan.New(region).WithOutsidePrefix(prefix)}, tollgate.Stage{Accounts: st, Policy: book}).Run(ctx, a)
	out := checkJSON{From: *from, Dialled: pos[0], Kind: string(a.Dest.Kind), Number: a.Dest.Number,
		E164: a.Dest.E164, Country: a.Dest.Country, Withhold: a.Dest.Withhold, Decision: "allow", Profile: a.Profile.Name}
	if a.Dest.E164 != "" && a.Dest.Kind != chain.KindEmergency {
		rate, pfx := book.Current().Rates.Lookup(a.Dest.E164)
		out.Rate = fmt.Sprintf("%d a minute (%s)", rate, pfx)
	}
	if v.Action != chain.Continue {
		out.Decision, out.SIPStatus = "deny", v.Status
	} else {
		out.Route = dryRoute(ctx, st, a.Dest, dialplan.New(region).WithOutsidePrefix(prefix))
	}
	for _, s := range a.Trail {
		out.Reasons = append(out.Reasons, s.Verdict.Reason)
	}
	if c.json {
		return printJSON(env.Stdout, out)
	}
	fmt.Fprintf(env.Stdout, "dialled   %q from %s\n", out.Dialled, out.From)
	fmt.Fprintf(env.Stdout, "canonical %s", out.Kind)
	if out.Number != "" {
		fmt.Fprintf(env.Stdout, " %s", out.Number)
	}
	if out.E164 != "" {
		fmt.Fprintf(env.Stdout, " (%s, %s)", out.E164, out.Country)
	}
	fmt.Fprintln(env.Stdout)
	if out.Decision == "deny" {
		fmt.Fprintf(env.Stdout, "decision  deny (SIP %d)\n", out.SIPStatus)
	} else {
		fmt.Fprintf(env.Stdout, "decision  allow, %s\n", out.Route)
		fmt.Fprintf(env.Stdout, "profile   %s (limits apply when the call is placed)\n", out.Profile)
	}
	if out.Rate != "" {
		fmt.Fprintf(env.Stdout, "rate      %s\n", out.Rate)
	}
	fmt.Fprintf(env.Stdout, "reasons   %s\n", strings.Join(out.Reasons, "\n          "))
	return nil
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
