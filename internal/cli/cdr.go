package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

type cdrJSON struct {
	ID             int64  `json:"id"`
	CallID         string `json:"call_id"`
	State          string `json:"state"`
	Started        string `json:"started"`
	Answered       string `json:"answered,omitempty"`
	Ended          string `json:"ended,omitempty"`
	DurationMS     int64  `json:"duration_ms"`
	Caller         string `json:"caller"`
	Source         string `json:"source"`
	Dialled        string `json:"dialled"`
	Callee         string `json:"callee"`
	ResultCode     int    `json:"result_code"`
	ResultReason   string `json:"result_reason"`
	HangupBy       string `json:"hangup_by"`
	Direction      string `json:"direction"`
	Trunk          string `json:"trunk,omitempty"`
	SentNumber     string `json:"sent_number,omitempty"`
	PacketsAtoB    uint64 `json:"packets_a_to_b"`
	PacketsBtoA    uint64 `json:"packets_b_to_a"`
	PacketsForeign uint64 `json:"packets_foreign"`
	DestKind       string `json:"dest_kind,omitempty"`
	DestE164       string `json:"dest_e164,omitempty"`
	Country        string `json:"country,omitempty"`
	Cost           int64  `json:"cost"`
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func cdrCmd(args []string, env Env) error {
	if len(args) == 0 || args[0] != "list" {
		return fmt.Errorf("%w: cdr needs a subcommand: list", ErrUsage)
	}
	var c common
	fs := newFlags("cdr list", env)
	c.bind(fs)
	limit := fs.Int("limit", 100, "how many records, newest first")
	since := fs.Duration("since", 0, "only records that started within this long ago (e.g. 24h); 0 for all")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: cdr list takes no arguments", ErrUsage)
	}
	if *limit <= 0 {
		return fmt.Errorf("%w: --limit must be positive", ErrUsage)
	}
	ctx := context.Background()
	st, err := openStore(ctx, c.data)
	if err != nil {
		return err
	}
	defer st.Close()
	f := store.CDRFilter{Limit: *limit}
	if *since > 0 {
		f.Since = time.Now().Add(-*since)
	}
	rs, err := st.ListCDRs(ctx, f)
	if err != nil {
		return err
	}
	if c.json {
		out := make([]cdrJSON, 0, len(rs))
		for _, r := range rs {
			out = append(out, cdrJSON{ID: r.ID, CallID: r.CallID, State: r.State, Started: ts(r.Started),
				Answered: ts(r.Answered), Ended: ts(r.Ended), DurationMS: r.Duration.Milliseconds(),
				Caller: r.Caller, Source: r.Source, Dialled: r.Dialled, Callee: r.Callee,
				ResultCode: r.ResultCode, ResultReason: r.ResultReason, HangupBy: r.HangupBy,
				Direction: r.Direction, Trunk: r.Trunk, SentNumber: r.SentNumber, PacketsAtoB: r.PacketsAtoB, PacketsBtoA: r.PacketsBtoA, PacketsForeign: r.PacketsForeign,
				DestKind: r.DestKind, DestE164: r.DestE164, Country: r.Country, Cost: r.Cost})
		}
		return printJSON(env.Stdout, out)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTARTED\tDIRECTION\tCALLER\tDIALLED\tCALLEE\tSENT\tRESULT\tDURATION\tCOST\tHANGUP\tSTATE")
	for _, r := range rs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", r.ID, r.Started.Format("2006-01-02 15:04:05"), r.Direction,
			r.Caller, r.Dialled, r.Callee, r.SentNumber, r.ResultCode, r.Duration.Round(time.Second), r.Cost, r.HangupBy, r.State)
	}
	return tw.Flush()
}
