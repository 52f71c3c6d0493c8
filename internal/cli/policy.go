package cli

import (
	"context"
	"flag"
	"fmt"
	"github.com/sekisho/sekisho/internal/admin"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/store"
)

// limitFlags binds the flags that edit a policy.Limits; apply copies the
// ones given onto l.
type limitFlags struct {
	maxCalls, perMinute, perHour, samePrefix, distinct *int
	spend                                              *int64
}

func bindLimits(fs *flag.FlagSet) limitFlags {
	return limitFlags{
		maxCalls:   fs.Int("max-calls", 0, "outbound calls in progress at once (0: no limit)"),
		perMinute:  fs.Int("intl-per-minute", 0, "international calls per minute (0: no limit)"),
		perHour:    fs.Int("intl-per-hour", 0, "international calls per hour (0: no limit)"),
		samePrefix: fs.Int("same-prefix", 0, "international calls in a row to one prefix (0: no limit)"),
		distinct:   fs.Int("distinct-per-hour", 0, "different numbers abroad per hour (0: no limit)"),
		spend:      fs.Int64("daily-spend", 0, "estimated spend per day, in the rate table's unit (0: no limit)"),
	}
}

// change is the limits among set as an admin.ProfileChange.
func (f limitFlags) change(set map[string]bool) admin.ProfileChange {
	var ch admin.ProfileChange
	if set["max-calls"] {
		ch.MaxCalls = f.maxCalls
	}
	if set["intl-per-minute"] {
		ch.IntlPerMinute = f.perMinute
	}
	if set["intl-per-hour"] {
		ch.IntlPerHour = f.perHour
	}
	if set["same-prefix"] {
		ch.SamePrefix = f.samePrefix
	}
	if set["distinct-per-hour"] {
		ch.DistinctPerHour = f.distinct
	}
	if set["daily-spend"] {
		ch.DailySpend = f.spend
	}
	return ch
}

func (f limitFlags) apply(set map[string]bool, l *policy.Limits) { f.change(set).ApplyLimits(l) }

func visited(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// profileCmd edits policy profiles: sekisho profile add|list|set|del.
func profileCmd(args []string, env Env) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: profile needs a subcommand: add, list, set or del", ErrUsage)
	}
	ctx := context.Background()
	var c common
	fs := newFlags("profile "+args[0], env)
	c.bind(fs)
	switch args[0] {
	case "list":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 0 {
			return fmt.Errorf("%w: profile list takes no arguments", ErrUsage)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			ps, err := st.Profiles(ctx)
			if err != nil {
				return err
			}
			if c.json {
				return printJSON(env.Stdout, ps)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tCLASS\tABROAD\tHOURS\tMAX-DURATION\tMAX-CALLS\tINTL/MIN\tINTL/HOUR\tSAME-PREFIX\tDISTINCT/HOUR\tDAILY-SPEND")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Class, orNone(p.Countries), orAlways(p.Hours),
					p.MaxDuration, lim(p.MaxCalls), lim(p.IntlPerMinute), lim(p.IntlPerHour), lim(p.SamePrefix), lim(p.DistinctPerHour), lim(int(p.DailySpend)))
			}
			return tw.Flush()
		})
	case "add", "set":
		class := fs.String("class", "", "class of service: internal, domestic, mobile or international")
		countries := fs.String("countries", "", "ISO 3166 regions it may call abroad, comma-separated (US,SL), or none")
		hours := fs.String("hours", "", `when international calls are allowed, e.g. "mon-fri 08:00-20:00, sat 09:00-13:00", always or never (local time)`)
		maxDur := fs.Duration("max-duration", 0, "longest answered outbound call; the PBX hangs up (0: only the PBX-wide limit)")
		lf := bindLimits(fs)
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: profile %s takes one NAME", ErrUsage, args[0])
		}
		set := visited(fs)
		ch := lf.change(set)
		if set["class"] {
			ch.Class = class
		}
		if set["countries"] {
			ch.Countries = countries
		}
		if set["hours"] {
			ch.Hours = hours
		}
		if set["max-duration"] {
			ch.MaxDuration = maxDur
		}
		return withStore(ctx, c, func(st *store.Store) error {
			p, err := admin.PutProfile(ctx, st, pos[0], ch, args[0] == "add")
			if err != nil {
				return flagError(err)
			}
			if c.json {
				return printJSON(env.Stdout, p)
			}
			fmt.Fprintf(env.Stdout, "profile %s: class %s, abroad %s, hours %s, max-duration %s, limits %s\n",
				p.Name, p.Class, orNone(p.Countries), orAlways(p.Hours), p.MaxDuration, limitsText(p.Limits))
			return nil
		})
	case "del":
		return deleteOne(ctx, env, &c, fs, args[1:], "profile", "NAME", "", func(st *store.Store, name string) error {
			return st.DeleteProfile(ctx, name)
		})
	}
	return fmt.Errorf("%w: unknown profile subcommand %q: use add, list, set or del", ErrUsage, args[0])
}

func lim(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

func orAlways(h string) string {
	if h == "" {
		return "always"
	}
	return h
}

func limitsText(l policy.Limits) string {
	return fmt.Sprintf("max-calls %s, intl-per-minute %s, intl-per-hour %s, same-prefix %s, distinct-per-hour %s, daily-spend %s",
		lim(l.MaxCalls), lim(l.IntlPerMinute), lim(l.IntlPerHour), lim(l.SamePrefix), lim(l.DistinctPerHour), lim(int(l.DailySpend)))
}

// deleteOne is the del subcommand of noun: one positional argument (what),
// removed by del, reported with note. c is the flags' target, read only
// after parsing.
func deleteOne(ctx context.Context, env Env, c *common, fs *flag.FlagSet, args []string, noun, what, note string, del func(*store.Store, string) error) error {
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: %s del takes one %s", ErrUsage, noun, what)
	}
	return withStore(ctx, *c, func(st *store.Store) error {
		if err := del(st, pos[0]); err != nil {
			return err
		}
		if c.json {
			return printJSON(env.Stdout, map[string]string{"deleted": pos[0]})
		}
		fmt.Fprintf(env.Stdout, "%s %s deleted%s\n", noun, pos[0], note)
		return nil
	})
}

func withStore(ctx context.Context, c common, fn func(*store.Store) error) error {
	st, err := openStore(ctx, c.data)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

// limitsCmd shows and edits the PBX's and the trunks' limits, and lifts a
// freeze: sekisho limits show|set|unfreeze.
func limitsCmd(args []string, env Env) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: limits needs a subcommand: show, set or unfreeze", ErrUsage)
	}
	ctx := context.Background()
	var c common
	fs := newFlags("limits "+args[0], env)
	c.bind(fs)
	switch args[0] {
	case "show":
		if pos, err := parse(fs, args[1:]); err != nil {
			return err
		} else if len(pos) != 0 {
			return fmt.Errorf("%w: limits show takes no arguments", ErrUsage)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			ls, err := st.ScopeLimits(ctx)
			if err != nil {
				return err
			}
			f, err := st.IntlFreeze(ctx)
			if err != nil {
				return err
			}
			if c.json {
				return printJSON(env.Stdout, map[string]any{"limits": ls, "intl_frozen": f.Reason})
			}
			for scope, l := range ls {
				fmt.Fprintf(env.Stdout, "%-16s %s\n", scope, limitsText(l))
			}
			if f.Reason != "" {
				fmt.Fprintf(env.Stdout, "international calls FROZEN: %s\n  lift with: sekisho limits unfreeze\n", f.Reason)
			} else {
				fmt.Fprintln(env.Stdout, "international calls not frozen")
			}
			return nil
		})
	case "set":
		trunkName := fs.String("trunk", "", "set this trunk's limits instead of the whole PBX's")
		lf := bindLimits(fs)
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 0 {
			return fmt.Errorf("%w: limits set takes flags only", ErrUsage)
		}
		set := visited(fs)
		return withStore(ctx, c, func(st *store.Store) error {
			scope := store.ScopePBX
			if *trunkName != "" {
				ts, err := st.Trunks(ctx)
				if err != nil {
					return err
				}
				found := false
				for _, t := range ts {
					found = found || t.Name == *trunkName
				}
				if !found {
					return fmt.Errorf("--trunk %s: no such trunk (see sekisho trunk list)", *trunkName)
				}
				scope = store.TrunkScope(*trunkName)
			}
			ls, err := st.ScopeLimits(ctx)
			if err != nil {
				return err
			}
			l := ls[scope]
			lf.apply(set, &l)
			if err := l.Validate(); err != nil {
				return fmt.Errorf("%w: %v", ErrUsage, err)
			}
			if err := st.SetScopeLimits(ctx, scope, l); err != nil {
				return err
			}
			if c.json {
				return printJSON(env.Stdout, map[string]any{"scope": scope, "limits": l})
			}
			fmt.Fprintf(env.Stdout, "%s: %s\n", scope, limitsText(l))
			return nil
		})
	case "unfreeze":
		if pos, err := parse(fs, args[1:]); err != nil {
			return err
		} else if len(pos) != 0 {
			return fmt.Errorf("%w: limits unfreeze takes no arguments", ErrUsage)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			f, err := st.IntlFreeze(ctx)
			if err != nil {
				return err
			}
			was, err := st.UnfreezeIntl(ctx, time.Now())
			if err != nil {
				return err
			}
			if c.json {
				return printJSON(env.Stdout, map[string]any{"was_frozen": was, "reason": f.Reason})
			}
			if !was {
				fmt.Fprintln(env.Stdout, "international calls were not frozen; the PBX-wide counters start afresh")
				return nil
			}
			fmt.Fprintf(env.Stdout, "international calls unfrozen (were frozen: %s)\n", f.Reason)
			return nil
		})
	}
	return fmt.Errorf("%w: unknown limits subcommand %q: use show, set or unfreeze", ErrUsage, args[0])
}

// rateCmd edits the rate table: sekisho rate list|set|del.
func rateCmd(args []string, env Env) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: rate needs a subcommand: list, set or del", ErrUsage)
	}
	ctx := context.Background()
	var c common
	fs := newFlags("rate "+args[0], env)
	c.bind(fs)
	switch args[0] {
	case "list":
		if pos, err := parse(fs, args[1:]); err != nil {
			return err
		} else if len(pos) != 0 {
			return fmt.Errorf("%w: rate list takes no arguments", ErrUsage)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			rs, err := st.Rates(ctx)
			if err != nil {
				return err
			}
			if c.json {
				return printJSON(env.Stdout, rs)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PREFIX\tPER-MINUTE\tNOTE")
			for _, r := range rs {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", r.Prefix, r.PerMinute, r.Note)
			}
			return tw.Flush()
		})
	case "set":
		note := fs.String("note", "", "what the prefix is")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 2 {
			return fmt.Errorf("%w: rate set takes PREFIX PER-MINUTE, such as +232 250", ErrUsage)
		}
		if err := policy.ValidPrefix(pos[0]); err != nil {
			return fmt.Errorf("%w: %v", ErrUsage, err)
		}
		v, err := strconv.ParseInt(pos[1], 10, 64)
		if err != nil || v < 0 {
			return fmt.Errorf("%w: PER-MINUTE %q: want a whole number, 0 or more", ErrUsage, pos[1])
		}
		return withStore(ctx, c, func(st *store.Store) error {
			r := policy.Rate{Prefix: pos[0], PerMinute: v, Note: *note}
			if err := st.SetRate(ctx, r); err != nil {
				return err
			}
			if c.json {
				return printJSON(env.Stdout, r)
			}
			fmt.Fprintf(env.Stdout, "rate %s: %d a minute\n", r.Prefix, r.PerMinute)
			return nil
		})
	case "del":
		return deleteOne(ctx, env, &c, fs, args[1:], "rate", "PREFIX", " (numbers under it now take the next shorter prefix)", func(st *store.Store, prefix string) error {
			return st.DeleteRate(ctx, prefix)
		})
	}
	return fmt.Errorf("%w: unknown rate subcommand %q: use list, set or del", ErrUsage, args[0])
}

// alertCmd lists alerts: sekisho alert list.
func alertCmd(args []string, env Env) error {
	if len(args) == 0 || args[0] != "list" {
		return fmt.Errorf("%w: alert takes the subcommand list", ErrUsage)
	}
	ctx := context.Background()
	var c common
	fs := newFlags("alert list", env)
	c.bind(fs)
	limit := fs.Int("limit", 50, "how many, newest first")
	if pos, err := parse(fs, args[1:]); err != nil {
		return err
	} else if len(pos) != 0 {
		return fmt.Errorf("%w: alert list takes no arguments", ErrUsage)
	}
	return withStore(ctx, c, func(st *store.Store) error {
		as, err := st.Alerts(ctx, *limit)
		if err != nil {
			return err
		}
		if c.json {
			if as == nil {
				as = []store.Alert{}
			}
			return printJSON(env.Stdout, as)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTIME\tKIND\tSUBJECT\tDELIVERED\tDETAIL")
		for _, a := range as {
			d := "no"
			if !a.Delivered.IsZero() {
				d = "yes"
			} else if a.LastError != "" {
				d = "failing"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.At.Format("2006-01-02 15:04:05"), a.Kind, a.Subject, d, a.Detail)
		}
		return tw.Flush()
	})
}
