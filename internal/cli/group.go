package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/store"
)

// groupCmd manages ring groups: sekisho group add|list|del. The server
// reads them on every call to a group's number.
func groupCmd(args []string, env Env) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: group needs a subcommand: add, list or del", ErrUsage)
	}
	ctx := context.Background()
	var c common
	fs := newFlags("group "+args[0], env)
	c.bind(fs)
	switch args[0] {
	case "add":
		members := fs.String("members", "", "the extensions it rings, comma-separated, in hunt order")
		name := fs.String("name", "", "a name for people")
		strategy := fs.String("strategy", store.RingAll, "ring-all (all at once) or hunt (one after another)")
		ring := fs.Duration("ring", 20*time.Second, "how long it rings (each member, for hunt) before moving on")
		overflow := fs.String("overflow", "", "a group to ring when nobody answers")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: group add takes one NUMBER: sekisho group add 600 --members 201,202", ErrUsage)
		}
		g := store.Group{Number: pos[0], Name: *name, Strategy: *strategy, Ring: *ring, Overflow: *overflow}
		for _, m := range strings.Split(*members, ",") {
			if m = strings.TrimSpace(m); m != "" {
				g.Members = append(g.Members, m)
			}
		}
		return withStore(ctx, c, func(st *store.Store) error {
			g, err := admin.AddGroup(ctx, st, g)
			if err != nil {
				return flagError(err)
			}
			if c.json {
				return printJSON(env.Stdout, g)
			}
			fmt.Fprintf(env.Stdout, "group %s (%s) rings %s\n", g.Number, g.Strategy, strings.Join(g.Members, ", "))
			return nil
		})
	case "list":
		if pos, err := parse(fs, args[1:]); err != nil {
			return err
		} else if len(pos) != 0 {
			return fmt.Errorf("%w: group list takes no arguments", ErrUsage)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			gs, err := st.Groups(ctx)
			if err != nil {
				return err
			}
			if c.json {
				return printJSON(env.Stdout, gs)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NUMBER\tNAME\tSTRATEGY\tRING\tMEMBERS\tOVERFLOW")
			for _, g := range gs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%ds\t%s\t%s\n", g.Number, g.Name, g.Strategy, g.RingSecs, strings.Join(g.Members, ","), g.Overflow)
			}
			return tw.Flush()
		})
	case "del":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: group del takes one NUMBER", ErrUsage)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			if err := st.DeleteGroup(ctx, pos[0]); err != nil {
				return err
			}
			if c.json {
				return printJSON(env.Stdout, map[string]string{"deleted": pos[0]})
			}
			fmt.Fprintf(env.Stdout, "group %s deleted\n", pos[0])
			return nil
		})
	}
	return fmt.Errorf("%w: unknown group subcommand %q: use add, list or del", ErrUsage, args[0])
}
