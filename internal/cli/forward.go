package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/store"
)

// forwardCmd sets, clears and lists call forwarding:
// sekisho forward set EXT --to NUMBER [--when always|busy|noanswer],
// sekisho forward clear EXT [--when ...], sekisho forward list [EXT].
// A forward the toll gate would refuse the extension is refused here,
// with the gate's reasons; the server reads forwards on every call.
func forwardCmd(args []string, env Env) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: forward needs a subcommand: set, clear or list", ErrUsage)
	}
	ctx := context.Background()
	var c common
	fs := newFlags("forward "+args[0], env)
	c.bind(fs)
	switch args[0] {
	case "set":
		to := fs.String("to", "", "the number to forward to, as the extension would dial it")
		when := fs.String("when", store.ForwardAlways, "always, busy or noanswer (no answer, or not registered)")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: forward set takes one extension: sekisho forward set EXT --to NUMBER", ErrUsage)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			chk, err := admin.SetForward(ctx, st, pos[0], *when, *to, time.Now())
			if err != nil {
				return flagError(err)
			}
			if c.json {
				return printJSON(env.Stdout, map[string]any{"ext": pos[0], "when": *when, "to": *to, "check": chk})
			}
			fmt.Fprintf(env.Stdout, "%s forwards to %s (%s), %s: %s\n", pos[0], *to, *when, chk.Kind, orDash(chk.E164, chk.Number))
			return nil
		})
	case "clear":
		when := fs.String("when", "", "always, busy or noanswer (default: all of them)")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: forward clear takes one extension", ErrUsage)
		}
		switch *when {
		case "", store.ForwardAlways, store.ForwardBusy, store.ForwardNoAnswer:
		default:
			return fmt.Errorf("%w: --when %q: want always, busy or noanswer", ErrUsage, *when)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			n, err := st.ClearForward(ctx, pos[0], *when)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("%s has no such forward", pos[0])
			}
			if c.json {
				return printJSON(env.Stdout, map[string]any{"ext": pos[0], "cleared": n})
			}
			fmt.Fprintf(env.Stdout, "%s: %d forward(s) cleared\n", pos[0], n)
			return nil
		})
	case "list":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) > 1 {
			return fmt.Errorf("%w: forward list takes at most one extension", ErrUsage)
		}
		ext := ""
		if len(pos) == 1 {
			ext = pos[0]
		}
		return withStore(ctx, c, func(st *store.Store) error {
			fw, err := st.Forwards(ctx, ext)
			if err != nil {
				return err
			}
			if c.json {
				return printJSON(env.Stdout, fw)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "EXT\tWHEN\tTO\tSET")
			for _, f := range fw {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Ext, f.When, f.To, f.Created.Local().Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		})
	}
	return fmt.Errorf("%w: unknown forward subcommand %q: use set, clear or list", ErrUsage, args[0])
}

func orDash(a, b string) string {
	if a != "" {
		return a
	}
	if b != "" {
		return b
	}
	return "-"
}
