package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sekisho/sekisho/internal/centre"
)

// centreOperator runs sekisho centre operator add|list|del: the fleet
// dashboard's operators. There is no default account: the first admin
// is made here, on the centre, and sets its password and second factor
// through the link printed.
func centreOperator(args []string, env Env) error {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, centreUsage)
		return fmt.Errorf("%w: centre operator needs add, list or del", ErrUsage)
	}
	var c centreCommon
	fs := newFlags("centre operator "+args[0], env)
	c.bind(fs)
	switch args[0] {
	case "add":
		return operatorAdd(args[1:], env, fs, &c)
	case "list":
		return operatorList(args[1:], env, fs, &c)
	case "del":
		return operatorDel(args[1:], env, fs, &c)
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, centreUsage)
		return nil
	}
	fmt.Fprint(env.Stderr, centreUsage)
	return fmt.Errorf("%w: unknown centre operator subcommand %q: want add, list or del", ErrUsage, args[0])
}

// operatorName parses the flags and the one NAME argument.
func operatorName(fs *flag.FlagSet, args []string, c *centreCommon) (string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", fmt.Errorf("%w: %s takes one operator NAME, got %d arguments", ErrUsage, fs.Name(), len(pos))
	}
	return pos[0], c.check()
}

// logCLI appends what the person at the shell did to the operators'
// log, where the dashboard's /log shows it beside the operators' own.
func logCLI(ctx context.Context, st *centre.Store, action, target, detail string) error {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	return st.AppendLog(ctx, centre.LogEntry{At: time.Now().UTC(), Operator: "cli:" + who, Action: action, Target: target, Detail: detail})
}

func operatorAdd(args []string, env Env, fs *flag.FlagSet, c *centreCommon) error {
	role := fs.String("role", "", "admin (push bundles, revoke units, open maintenance sessions, add operators) or viewer (see only)")
	name, err := operatorName(fs, args, c)
	if err != nil {
		return err
	}
	if *role == "" {
		return fmt.Errorf("%w: --role: give admin (push bundles, revoke units, open maintenance sessions, add operators) or viewer (see only)", ErrUsage)
	}
	ctx := context.Background()
	st, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	// The link names where `centre serve` last served the dashboard.
	host, err := st.Setting(ctx, centre.SettingConsoleListen, "")
	if err != nil {
		return err
	}
	off := host == ""
	if off {
		host = centre.DefaultConsoleListen
	}
	link, expires, err := centre.NewOperator(ctx, st, name, *role, host, time.Now())
	if err != nil {
		if errors.Is(err, centre.ErrOperatorExists) {
			return fmt.Errorf("NAME: %s exists: sekisho centre operator del %s first, then add it again for a new setup link", name, name)
		}
		return flagError(err)
	}
	if err := logCLI(ctx, st, "operator-add", "operator "+name, "role "+*role+"; setup link valid until "+expires.UTC().Format(time.RFC3339)); err != nil {
		return fmt.Errorf("operator %s added, but the operators' log could not be written: %w", name, err)
	}
	if c.json {
		return printJSON(env.Stdout, map[string]any{"name": name, "role": *role, "setup_url": link, "expires": expires.UTC()})
	}
	fmt.Fprintln(env.Stdout, link)
	fmt.Fprintf(env.Stderr, "operator %s (%s) added: open the link once, before %s, to set a password and a second factor; send it by a channel you trust\n",
		name, *role, expires.Local().Format("2006-01-02 15:04"))
	if off {
		fmt.Fprintf(env.Stderr, "note: no `sekisho centre serve` has served the dashboard yet; the link assumes --console-listen %s (replace the address if you serve it elsewhere)\n", host)
	}
	return nil
}

func operatorList(args []string, env Env, fs *flag.FlagSet, c *centreCommon) error {
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: centre operator list takes no arguments, got %q", ErrUsage, strings.Join(pos, " "))
	}
	if err := c.check(); err != nil {
		return err
	}
	ctx := context.Background()
	st, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	ops, err := st.Operators(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(env.Stdout, ops)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tSTATE\tADDED\tLAST LOGIN")
	now := time.Now()
	for _, o := range ops {
		state := "active"
		switch {
		case !o.SetUp && now.After(o.SetupExpires):
			state = "setup link expired (del and add again)"
		case !o.SetUp:
			state = "waiting for setup until " + when(o.SetupExpires)
		case now.Before(o.LockedUntil):
			state = "locked until " + when(o.LockedUntil)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Name, o.Role, state, when(o.Created), when(o.LastLogin))
	}
	return tw.Flush()
}

func operatorDel(args []string, env Env, fs *flag.FlagSet, c *centreCommon) error {
	name, err := operatorName(fs, args, c)
	if err != nil {
		return err
	}
	ctx := context.Background()
	st, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.DeleteOperator(ctx, name); err != nil {
		if errors.Is(err, centre.ErrNotFound) {
			return fmt.Errorf("NAME: no operator %s (see: sekisho centre operator list)", name)
		}
		return err
	}
	if err := logCLI(ctx, st, "operator-delete", "operator "+name, "deleted with the CLI"); err != nil {
		return fmt.Errorf("operator %s deleted, but the operators' log could not be written: %w", name, err)
	}
	if c.json {
		return printJSON(env.Stdout, map[string]string{"deleted": name})
	}
	fmt.Fprintf(env.Stdout, "operator %s deleted; its dashboard sessions have ended\n", name)
	return nil
}
