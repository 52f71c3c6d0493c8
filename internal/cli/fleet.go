package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/fleet"
	"github.com/sekisho/sekisho/internal/pbx"
	"github.com/sekisho/sekisho/internal/store"
)

// fleetCmd joins this unit to the vendor's centre, shows the link, or
// leaves: sekisho fleet join URL TOKEN | status | leave.
func fleetCmd(args []string, env Env) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: fleet needs a subcommand: join, status or leave", ErrUsage)
	}
	var c common
	fs := newFlags("fleet "+args[0], env)
	c.bind(fs)
	ctx := context.Background()
	switch args[0] {
	case "join":
		name := fs.String("name", "", "this unit's name as the centre shows it (default: the host name)")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 2 {
			return fmt.Errorf("%w: fleet join takes the centre's URL and the one-time TOKEN from `sekisho centre enrol-token`", ErrUsage)
		}
		if *name == "" {
			*name, _ = os.Hostname()
		}
		if err := os.MkdirAll(c.data, 0o700); err != nil {
			return fmt.Errorf("--data: %w", err)
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		j, err := fleet.Join(ctx, c.data, pos[0], pos[1], *name, pbx.Version)
		if err != nil {
			return err
		}
		// The token is not written down: it is spent, and a record
		// needs only who joined which centre as which unit.
		if err := fleetRecord(ctx, c, "fleet join", fmt.Sprintf("joined the fleet of %s as unit %s (%s)", j.Centre, j.UnitID, *name)); err != nil {
			return err
		}
		if c.json {
			return printJSON(env.Stdout, map[string]string{"centre": j.Centre, "unit_id": j.UnitID})
		}
		fmt.Fprintf(env.Stdout, "joined %s as unit %s\nThe running server connects at its next start (restart it); the centre's CA and bundle key are pinned.\n", j.Centre, j.UnitID)
		return nil
	case "status":
		if _, err := parse(fs, args[1:]); err != nil {
			return err
		}
		j, _, err := fleet.Load(c.data)
		if errors.Is(err, fleet.ErrNotJoined) {
			if c.json {
				return printJSON(env.Stdout, map[string]any{"joined": false})
			}
			fmt.Fprintln(env.Stdout, "not in a fleet")
			return nil
		}
		if err != nil {
			return err
		}
		return withStore(ctx, c, func(st *store.Store) error {
			b, err := st.FleetBundle(ctx)
			if err != nil {
				return err
			}
			if c.json {
				return printJSON(env.Stdout, map[string]any{"joined": true, "centre": j.Centre, "unit_id": j.UnitID,
					"bundle_seq": b.Seq, "bundle_hash": b.Hash, "block_international": b.BlockIntl, "applied": b.Applied})
			}
			fmt.Fprintf(env.Stdout, "centre  %s\nunit    %s\nbundle  %d", j.Centre, j.UnitID, b.Seq)
			if b.Seq > 0 {
				fmt.Fprintf(env.Stdout, " (hash %s, applied %s, international blocked: %v)", b.Hash, b.Applied.Format(time.RFC3339), b.BlockIntl)
			}
			fmt.Fprintln(env.Stdout)
			return nil
		})
	case "leave":
		if _, err := parse(fs, args[1:]); err != nil {
			return err
		}
		j, _, _ := fleet.Load(c.data)
		if err := fleet.Leave(c.data); err != nil {
			return err
		}
		if err := fleetRecord(ctx, c, "fleet leave", "left the fleet of "+j.Centre+" (unit "+j.UnitID+"); the last bundle stays in force"); err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, "left the fleet; the last bundle applied stays in force")
		return nil
	}
	return fmt.Errorf("%w: unknown fleet subcommand %q: use join, status or leave", ErrUsage, args[0])
}

func fleetRecord(ctx context.Context, c common, target, detail string) error {
	return withStore(ctx, c, func(st *store.Store) error {
		who := "unknown"
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
		now := time.Now()
		_, err := st.AppendAudit(ctx, []store.AuditRecord{{At: now, Type: audit.ConfigChange, Source: "cli:" + who, Target: target,
			Count: 1, First: now, Last: now, Detail: detail}}, audit.Hash)
		return err
	})
}
