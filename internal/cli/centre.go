package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sekisho/sekisho/internal/centre"
	"github.com/sekisho/sekisho/internal/config"
	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/wire"
)

// Environment variables for the centre's defaults.
const (
	centreDataEnv = "SEKISHO_CENTRE_DATA"
	centreDBEnv   = "SEKISHO_CENTRE_DB"
)

const centreUsage = `sekisho centre - the vendor's maintenance centre for a fleet of units

  sekisho centre serve [--listen 127.0.0.1:7443] [--name HOST] [--alert-webhooks URL,...]
                       [--smtp HOST:PORT --smtp-from ADDR --alert-email ADDR,...]
                       [--console-listen 127.0.0.1:7444] [--admin-networks CIDR,...]
  sekisho centre enrol-token [--group G] [--for 24h]   a one-time token for: sekisho fleet join
  sekisho centre push (--block-international | --allow-international) [--rates FILE.json]
                      [--group G] [--note TEXT]        sign and send a policy bundle
  sekisho centre coverage [--seq N]                    how many units applied a bundle; who has not
  sekisho centre units
  sekisho centre revoke UNIT                           its certificate opens no stream again
  sekisho centre alerts [--limit N]
  sekisho centre operator add NAME --role admin|viewer  a fleet dashboard operator: prints
                                                       a one-time setup link (1 hour)
  sekisho centre operator list
  sekisho centre operator del NAME

Every centre command takes --data DIR (default $SEKISHO_CENTRE_DATA or
./sekisho-centre: the centre's keys, and its database unless --db is
given), --db postgres://... (default $SEKISHO_CENTRE_DB: PostgreSQL shared
by several centres) and --json.
`

// centreCommon are the flags of every centre command.
type centreCommon struct {
	data, db string
	json     bool
}

func (c *centreCommon) bind(fs *flag.FlagSet) {
	data := os.Getenv(centreDataEnv)
	if data == "" {
		data = "./sekisho-centre"
	}
	fs.StringVar(&c.data, "data", data, "the centre's data directory: its keys (keep them private), and centre.db without --db")
	fs.StringVar(&c.db, "db", os.Getenv(centreDBEnv), "PostgreSQL URL postgres://user:password@host:5432/db (default: SQLite in --data)")
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *centreCommon) check() error {
	if c.db != "" && !centre.IsPostgres(c.db) {
		return fmt.Errorf("%w: --db: want postgres://user:password@host:5432/db (or no --db for SQLite in --data)", ErrUsage)
	}
	return nil
}

func (c *centreCommon) open(ctx context.Context) (*centre.Store, error) {
	return centre.OpenStore(ctx, c.data, c.db)
}

// centreCmd runs sekisho centre SUBCOMMAND.
func centreCmd(args []string, env Env) error {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, centreUsage)
		return fmt.Errorf("%w: centre needs a subcommand: serve, enrol-token, push, coverage, units, revoke, alerts or operator", ErrUsage)
	}
	var c centreCommon
	fs := newFlags("centre "+args[0], env)
	c.bind(fs)
	switch args[0] {
	case "serve":
		return centreServe(args[1:], env, fs, &c)
	case "enrol-token":
		return centreToken(args[1:], env, fs, &c)
	case "push":
		return centrePush(args[1:], env, fs, &c)
	case "coverage":
		return centreCoverage(args[1:], env, fs, &c)
	case "units":
		return centreUnits(args[1:], env, fs, &c)
	case "revoke":
		return centreRevoke(args[1:], env, fs, &c)
	case "alerts":
		return centreAlerts(args[1:], env, fs, &c)
	case "operator":
		return centreOperator(args[1:], env)
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, centreUsage)
		return nil
	}
	fmt.Fprint(env.Stderr, centreUsage)
	return fmt.Errorf("%w: unknown centre subcommand %q", ErrUsage, args[0])
}

// parseNone parses flags for a subcommand that takes no arguments.
func parseNone(fs *flag.FlagSet, args []string, c *centreCommon) error {
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: centre %s takes no arguments, got %q", ErrUsage, fs.Name()[len("centre "):], strings.Join(pos, " "))
	}
	return c.check()
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func centreServe(args []string, env Env, fs *flag.FlagSet, c *centreCommon) error {
	listen := fs.String("listen", centre.DefaultListen, "HOST:PORT of the TLS listener units connect to")
	name := fs.String("name", "", "host name (or IP) units reach the centre by; put in its TLS certificate")
	hooks := fs.String("alert-webhooks", "", "comma-separated URLs each new alert is POSTed to, signed with DATA/webhook.key")
	smtpAddr := fs.String("smtp", "", "HOST:PORT of a mail relay to mail alerts through (STARTTLS when offered)")
	from := fs.String("smtp-from", "", "sender address of alert mails")
	to := fs.String("alert-email", "", "comma-separated addresses alert mails go to")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	consoleListen := fs.String("console-listen", centre.DefaultConsoleListen, "HOST:PORT of the fleet dashboard (plain HTTP): loopback, or an address in --admin-networks other than --listen's; \"\": no dashboard")
	adminNets := fs.String("admin-networks", "", "CIDR prefixes besides loopback that may reach the dashboard, comma-separated")
	if err := parseNone(fs, args, c); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("%w: --listen %q: want HOST:PORT such as 0.0.0.0:7443", ErrUsage, *listen)
	}
	if ip := net.ParseIP(host); (host == "" || ip != nil && ip.IsUnspecified()) && *name == "" {
		return fmt.Errorf("%w: --name: listening on all addresses (--listen %s), give the host name or IP units reach the centre by, for its certificate", ErrUsage, *listen)
	}
	nets, err := config.ParseNetworks(*adminNets)
	if err != nil {
		return fmt.Errorf("%w: --admin-networks: %v", ErrUsage, err)
	}
	if err := centre.CheckConsoleListen(*consoleListen, *listen, nets); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, strings.TrimPrefix(err.Error(), "centre: "))
	}
	set := 0
	for _, v := range []string{*smtpAddr, *from, *to} {
		if v != "" {
			set++
		}
	}
	if set != 0 && set != 3 {
		return fmt.Errorf("%w: --smtp, --smtp-from and --alert-email go together: give all three to mail alerts, or none", ErrUsage)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", ErrUsage, *level)
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: lv}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return centre.Run(ctx, centre.Config{Data: c.data, DSN: c.db, Listen: *listen, Name: *name,
		ConsoleListen: *consoleListen, AdminNetworks: nets,
		Webhooks: splitList(*hooks), SMTP: *smtpAddr, SMTPFrom: *from, AlertEmail: splitList(*to), Log: log})
}

func centreToken(args []string, env Env, fs *flag.FlagSet, c *centreCommon) error {
	group := fs.String("group", "", "the group the unit joins (bundles pushed with --group G reach only it); none: every-unit bundles only")
	valid := fs.Duration("for", 24*time.Hour, "how long the token may be used (once)")
	if err := parseNone(fs, args, c); err != nil {
		return err
	}
	if *valid <= 0 || *valid > 30*24*time.Hour {
		return fmt.Errorf("%w: --for %v: want a duration from 1m to 720h, such as 24h", ErrUsage, *valid)
	}
	ctx := context.Background()
	st, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := centre.LoadKeys(c.data)
	if err != nil {
		return err
	}
	tok, expires, err := centre.NewToken(ctx, st, keys, *group, *valid)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(env.Stdout, map[string]any{"token": tok, "expires": expires.UTC(), "group": *group, "ca_fingerprint": keys.CAFingerprint()})
	}
	fmt.Fprintln(env.Stdout, tok)
	fmt.Fprintf(env.Stderr, "one-time token, valid until %s; on the unit: sekisho fleet join https://HOST:PORT TOKEN\n", expires.Local().Format("2006-01-02 15:04"))
	return nil
}

func centrePush(args []string, env Env, fs *flag.FlagSet, c *centreCommon) error {
	block := fs.Bool("block-international", false, "refuse every call abroad on the units until a newer bundle lifts it")
	allow := fs.Bool("allow-international", false, "lift a block of calls abroad (each unit's own limits still apply)")
	ratesFile := fs.String("rates", "", "JSON file of the rate table the units take: [{\"prefix\": \"+232\", \"per_minute\": 250}]")
	group := fs.String("group", "", "only the units of this group (default: every unit)")
	note := fs.String("note", "", "why, shown on the units and in their evidence logs")
	if err := parseNone(fs, args, c); err != nil {
		return err
	}
	if *block == *allow {
		return fmt.Errorf("%w: push: give exactly one of --block-international or --allow-international (each bundle is the whole policy)", ErrUsage)
	}
	var rates []policy.Rate
	if *ratesFile != "" {
		var err error
		if rates, err = centre.ReadRates(*ratesFile); err != nil {
			return fmt.Errorf("%w: %v", ErrUsage, err)
		}
	}
	ctx := context.Background()
	st, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := centre.LoadKeys(c.data)
	if err != nil {
		return err
	}
	b, err := centre.Push(ctx, st, keys, wire.Bundle{Group: *group, Note: *note, BlockInternational: *block, Rates: rates})
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(env.Stdout, b)
	}
	target := "every unit"
	if b.Group != "" {
		target = "group " + b.Group
	}
	fmt.Fprintf(env.Stdout, "bundle %d pushed to %s: hash %s\n", b.Seq, target, b.Hash)
	fmt.Fprintf(env.Stdout, "connected units get it within a second, the others when they reconnect; see: sekisho centre coverage --seq %d\n", b.Seq)
	return nil
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func centreCoverage(args []string, env Env, fs *flag.FlagSet, c *centreCommon) error {
	seq := fs.Uint64("seq", 0, "the bundle (default: the newest)")
	if err := parseNone(fs, args, c); err != nil {
		return err
	}
	ctx := context.Background()
	st, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	cv, err := st.Coverage(ctx, *seq)
	if errors.Is(err, centre.ErrNotFound) {
		if *seq == 0 {
			return errors.New("no bundle has been pushed yet (see: sekisho centre push)")
		}
		return fmt.Errorf("--seq %d: no such bundle (the newest is what coverage shows without --seq)", *seq)
	}
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(env.Stdout, cv)
	}
	target := "every unit"
	if cv.Group != "" {
		target = "group " + cv.Group
	}
	fmt.Fprintf(env.Stdout, "bundle %d (%s, %s): %d of %d applied\n", cv.Seq, target, when(cv.Created), cv.Applied, cv.Total)
	if len(cv.Stragglers) > 0 {
		fmt.Fprintln(env.Stdout, "\nnot applied yet:")
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "UNIT\tNAME\tLAST SEEN\tAPPLIED\tONLINE")
		for _, s := range cv.Stragglers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%v\n", s.UnitID, s.Name, when(s.LastSeen), s.Applied, s.Online)
		}
		tw.Flush()
	}
	if len(cv.Refused) > 0 {
		fmt.Fprintln(env.Stdout, "\nrefused:")
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "UNIT\tNAME\tAT\tERROR")
		for _, r := range cv.Refused {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.UnitID, r.Name, when(r.At), r.Error)
		}
		tw.Flush()
	}
	return nil
}

func centreUnits(args []string, env Env, fs *flag.FlagSet, c *centreCommon) error {
	if err := parseNone(fs, args, c); err != nil {
		return err
	}
	ctx := context.Background()
	st, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	us, err := st.Units(ctx)
	if err != nil {
		return err
	}
	if c.json {
		if us == nil {
			us = []centre.Unit{}
		}
		return printJSON(env.Stdout, us)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "UNIT\tNAME\tGROUP\tONLINE\tLAST SEEN\tVERSION\tAPPLIED\tREVOKED")
	for _, u := range us {
		revoked := ""
		if !u.Revoked.IsZero() {
			revoked = when(u.Revoked)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%d\t%s\n", u.ID, u.Name, u.Group, u.Online, when(u.LastSeen), u.Version, u.Applied, revoked)
	}
	return tw.Flush()
}

func centreRevoke(args []string, env Env, fs *flag.FlagSet, c *centreCommon) error {
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: centre revoke takes one UNIT id (see: sekisho centre units)", ErrUsage)
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
	if err := st.RevokeUnit(ctx, pos[0], time.Now()); err != nil {
		if errors.Is(err, centre.ErrNotFound) {
			return fmt.Errorf("%w (see: sekisho centre units)", err)
		}
		return err
	}
	if c.json {
		return printJSON(env.Stdout, map[string]string{"revoked": pos[0]})
	}
	fmt.Fprintf(env.Stdout, "unit %s revoked: its certificate opens no stream again; if connected, its stream ends within a second\n", pos[0])
	return nil
}

func centreAlerts(args []string, env Env, fs *flag.FlagSet, c *centreCommon) error {
	limit := fs.Int("limit", 50, "how many, newest first")
	if err := parseNone(fs, args, c); err != nil {
		return err
	}
	if *limit <= 0 {
		return fmt.Errorf("%w: --limit %d: want 1 or more", ErrUsage, *limit)
	}
	ctx := context.Background()
	st, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	as, err := st.Alerts(ctx, *limit)
	if err != nil {
		return err
	}
	if c.json {
		if as == nil {
			as = []centre.Alert{}
		}
		return printJSON(env.Stdout, as)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tUNIT\tKIND\tSUBJECT\tDETAIL\tSENT")
	for _, a := range as {
		unit := a.UnitName
		if unit == "" {
			unit = a.UnitID
		}
		sent := "yes"
		if a.Delivered.IsZero() {
			sent = "no"
			if a.LastError != "" {
				sent = "no: " + a.LastError
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, when(a.At), unit, a.Kind, a.Subject, a.Detail, sent)
	}
	return tw.Flush()
}
