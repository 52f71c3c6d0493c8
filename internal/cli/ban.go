package cli

import (
	"context"
	"fmt"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// banCmd shows and edits the ban list: sekisho ban list|add|del. The
// running server picks changes up within 2 seconds.
func banCmd(args []string, env Env) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: ban needs a subcommand: list, add or del", ErrUsage)
	}
	ctx := context.Background()
	var c common
	fs := newFlags("ban "+args[0], env)
	c.bind(fs)
	switch args[0] {
	case "list":
		all := fs.Bool("all", false, "include bans that have ended (they still count for the next ban's length)")
		if pos, err := parse(fs, args[1:]); err != nil {
			return err
		} else if len(pos) != 0 {
			return fmt.Errorf("%w: ban list takes no arguments", ErrUsage)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			rows, err := st.Bans(ctx)
			if err != nil {
				return err
			}
			now := time.Now()
			out := []store.Ban{}
			for _, b := range rows {
				if *all || b.Active(now) {
					out = append(out, b)
				}
			}
			if c.json {
				return printJSON(env.Stdout, out)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDRESS\tUNTIL\tOFFENCES\tBY\tREASON")
			for _, b := range out {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", b.Address, b.Until.Format("2006-01-02 15:04:05"), b.Offences, b.By, b.Reason)
			}
			return tw.Flush()
		})
	case "add":
		d := fs.Duration("for", 24*time.Hour, "how long")
		reason := fs.String("reason", "banned by an administrator", "why, for the record")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: ban add takes one ADDRESS", ErrUsage)
		}
		a, err := netip.ParseAddr(pos[0])
		if err != nil {
			return fmt.Errorf("%w: ADDRESS %q: want an IP address such as 203.0.113.7", ErrUsage, pos[0])
		}
		if *d <= 0 {
			return fmt.Errorf("%w: --for: must be positive, such as 24h", ErrUsage)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			now := time.Now()
			b := store.Ban{Address: a.Unmap().String(), Until: now.Add(*d), Reason: *reason, Offences: 1, Created: now, By: "admin"}
			rows, err := st.Bans(ctx)
			if err != nil {
				return err
			}
			for _, r := range rows {
				if r.Address == b.Address {
					b.Offences = r.Offences + 1
				}
			}
			if err := st.PutBan(ctx, b); err != nil {
				return err
			}
			if c.json {
				return printJSON(env.Stdout, b)
			}
			fmt.Fprintf(env.Stdout, "%s banned until %s\n", b.Address, b.Until.Format(time.RFC3339))
			return nil
		})
	case "del":
		return deleteOne(ctx, env, &c, fs, args[1:], "ban", "ADDRESS", " (its offences still count if it comes back)", func(st *store.Store, addr string) error {
			a, err := netip.ParseAddr(addr)
			if err != nil {
				return fmt.Errorf("%w: ADDRESS %q: want an IP address", ErrUsage, addr)
			}
			return st.Unban(ctx, a.Unmap().String(), time.Now())
		})
	}
	return fmt.Errorf("%w: unknown ban subcommand %q: use list, add or del", ErrUsage, args[0])
}
