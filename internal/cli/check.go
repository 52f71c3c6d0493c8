package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/store"
)

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
	return withStore(ctx, c, func(st *store.Store) error {
		out, err := admin.CheckNumber(ctx, st, *from, pos[0])
		if err != nil {
			return flagError(err)
		}
		return printCheck(env, c, out)
	})
}

func printCheck(env Env, c common, out admin.Check) error {
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

// positional are the fields the CLI takes as arguments, not flags.
var positional = map[string]string{"number": "NUMBER", "dialled": "STRING", "name": "NAME"}

// flagError turns an admin.FieldError into the CLI's words: the flag (or
// argument) and the fix. A refused value is a usage error (exit 2); a
// missing or existing thing is an ordinary error (exit 1).
func flagError(err error) error {
	var fe *admin.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	name := "--" + fe.Field
	if p, ok := positional[fe.Field]; ok {
		name = p
	}
	if fe.Err != nil {
		return fmt.Errorf("%s: %s: %w", name, fe.Msg, fe.Err)
	}
	return fmt.Errorf("%w: %s: %s", ErrUsage, name, fe.Msg)
}
