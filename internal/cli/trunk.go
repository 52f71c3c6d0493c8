package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sekisho/sekisho/internal/dialplan"
	"github.com/sekisho/sekisho/internal/store"
	trunkpkg "github.com/sekisho/sekisho/internal/trunk"
	"github.com/sekisho/sekisho/internal/vault"
)

var (
	trunkName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
	// A number presented to or received from a carrier: digits, with an
	// optional leading + for E.164. Nothing else, so no symbol can ride on it.
	carrierNumber = regexp.MustCompile(`^\+?[0-9]{2,15}$`)
	sipUser       = regexp.MustCompile(`^[A-Za-z0-9._~+-]{1,64}$`)
)

type trunkJSON struct {
	Name        string `json:"name"`
	Peer        string `json:"peer"`
	Transport   string `json:"transport"`
	Username    string `json:"username,omitempty"`
	HasPassword bool   `json:"has_password"`
	Register    bool   `json:"register"`
	CallerID    string `json:"caller_id,omitempty"`
	NumberFmt   string `json:"number_format"`
	RegState    string `json:"reg_state,omitempty"`
	RegDetail   string `json:"reg_detail,omitempty"`
	RegExpires  string `json:"reg_expires,omitempty"`
}

func trunk(args []string, env Env) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: trunk needs a subcommand: add, list or del", ErrUsage)
	}
	ctx := context.Background()
	var c common
	fs := newFlags("trunk "+args[0], env)
	c.bind(fs)
	switch args[0] {
	case "add":
		peer := fs.String("peer", "", "the carrier's SIP server, HOST:PORT (required)")
		transport := fs.String("transport", "udp", "udp or tcp")
		user := fs.String("username", "", "user name for the carrier's digest challenges")
		pwFile := fs.String("password-file", "", "file whose first line is the carrier password (required with --username)")
		register := fs.Bool("register", false, "register to the carrier (needs --username)")
		callerID := fs.String("caller-id", "", "number presented on outbound calls (digits, optional leading +)")
		format := fs.String("number-format", "mixed", "how the carrier wants numbers: mixed (0312345678, +23276123456), national (0312345678, 01023276123456) or e164 (+81312345678)")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: trunk add takes one NAME", ErrUsage)
		}
		t := store.Trunk{Name: pos[0], Peer: *peer, Transport: strings.ToLower(*transport), Username: *user, Register: *register, CallerID: *callerID, NumberFormat: *format}
		if err := dialplan.ValidFormat(t.NumberFormat); err != nil {
			return fmt.Errorf("%w: --number-format: %v", ErrUsage, err)
		}
		if err := checkTrunk(t, *pwFile); err != nil {
			return err
		}
		return trunkAdd(ctx, env, c, t, *pwFile)
	case "list":
		if pos, err := parse(fs, args[1:]); err != nil {
			return err
		} else if len(pos) != 0 {
			return fmt.Errorf("%w: trunk list takes no arguments", ErrUsage)
		}
		return trunkList(ctx, env, c)
	case "del":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: trunk del takes one NAME", ErrUsage)
		}
		st, err := openStore(ctx, c.data)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.DeleteTrunk(ctx, pos[0]); err != nil {
			return err
		}
		if c.json {
			return printJSON(env.Stdout, map[string]string{"deleted": pos[0]})
		}
		fmt.Fprintf(env.Stdout, "trunk %s deleted\n", pos[0])
		return nil
	}
	return fmt.Errorf("%w: unknown trunk subcommand %q: use add, list or del", ErrUsage, args[0])
}

func checkTrunk(t store.Trunk, pwFile string) error {
	if !trunkName.MatchString(t.Name) {
		return fmt.Errorf("%w: trunk name %q: use 1-32 lower-case letters, digits, - or _", ErrUsage, t.Name)
	}
	host, port, err := net.SplitHostPort(t.Peer)
	if err != nil || host == "" {
		return fmt.Errorf("%w: --peer %q: want HOST:PORT such as sip.carrier.example:5060", ErrUsage, t.Peer)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%w: --peer %q: port must be 1-65535", ErrUsage, t.Peer)
	}
	if t.Transport != "udp" && t.Transport != "tcp" {
		return fmt.Errorf("%w: --transport %q: use udp or tcp", ErrUsage, t.Transport)
	}
	if t.Username != "" && !sipUser.MatchString(t.Username) {
		return fmt.Errorf("%w: --username %q: letters, digits and ._~+- only", ErrUsage, t.Username)
	}
	if (t.Username == "") != (pwFile == "") {
		return fmt.Errorf("%w: --username and --password-file go together", ErrUsage)
	}
	if t.Register && t.Username == "" {
		return fmt.Errorf("%w: --register needs --username and --password-file", ErrUsage)
	}
	if t.CallerID != "" && !carrierNumber.MatchString(t.CallerID) {
		return fmt.Errorf("%w: --caller-id %q: digits only, optional leading +", ErrUsage, t.CallerID)
	}
	return nil
}

func trunkAdd(ctx context.Context, env Env, c common, t store.Trunk, pwFile string) error {
	st, err := openStore(ctx, c.data)
	if err != nil {
		return err
	}
	defer st.Close()
	if pwFile != "" {
		pw, err := readSecretFile(pwFile)
		if err != nil {
			return err
		}
		v, err := vault.Open(c.data)
		if err != nil {
			return err
		}
		if t.PasswordSealed, err = v.Seal(trunkpkg.Label(t.Name), []byte(pw)); err != nil {
			return err
		}
	}
	if err := st.AddTrunk(ctx, t); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("trunk %s already exists: `sekisho trunk del %s` first", t.Name, t.Name)
		}
		return err
	}
	if c.json {
		return printJSON(env.Stdout, toTrunkJSON(t))
	}
	fmt.Fprintf(env.Stdout, "trunk %s added: %s over %s\n", t.Name, t.Peer, t.Transport)
	return nil
}

func toTrunkJSON(t store.Trunk) trunkJSON {
	j := trunkJSON{Name: t.Name, Peer: t.Peer, Transport: t.Transport, Username: t.Username, HasPassword: len(t.PasswordSealed) > 0,
		Register: t.Register, CallerID: t.CallerID, NumberFmt: t.NumberFormat, RegState: t.RegState, RegDetail: t.RegDetail}
	if !t.RegExpires.IsZero() {
		j.RegExpires = t.RegExpires.UTC().Format(time.RFC3339)
	}
	return j
}

func trunkList(ctx context.Context, env Env, c common) error {
	st, err := openStore(ctx, c.data)
	if err != nil {
		return err
	}
	defer st.Close()
	ts, err := st.Trunks(ctx)
	if err != nil {
		return err
	}
	if c.json {
		out := make([]trunkJSON, 0, len(ts))
		for _, t := range ts {
			out = append(out, toTrunkJSON(t))
		}
		return printJSON(env.Stdout, out)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPEER\tTRANSPORT\tUSER\tCALLER-ID\tFORMAT\tREGISTER\tSTATE")
	for _, t := range ts {
		state := "-"
		if t.Register {
			state = t.RegState
			if t.RegDetail != "" {
				state += " (" + t.RegDetail + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\t%s\n", t.Name, t.Peer, t.Transport, t.Username, t.CallerID, t.NumberFormat, t.Register, state)
	}
	return tw.Flush()
}

func did(args []string, env Env) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: did needs a subcommand: add, list or del", ErrUsage)
	}
	ctx := context.Background()
	var c common
	fs := newFlags("did "+args[0], env)
	c.bind(fs)
	ext := fs.String("ext", "", "extension the number rings (did add)")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	st, err := openStore(ctx, c.data)
	if err != nil {
		return err
	}
	defer st.Close()
	switch args[0] {
	case "add":
		if len(pos) != 1 || *ext == "" {
			return fmt.Errorf("%w: did add takes NUMBER --ext EXT", ErrUsage)
		}
		if !carrierNumber.MatchString(pos[0]) {
			return fmt.Errorf("%w: did number %q: digits only, optional leading +, as the carrier sends it", ErrUsage, pos[0])
		}
		if _, err := st.Extension(ctx, *ext); err != nil {
			if _, gerr := st.Group(ctx, *ext); gerr != nil {
				return fmt.Errorf("--ext %s: %w: create it first with `sekisho ext add %s` (or `sekisho group add %s`)", *ext, err, *ext, *ext)
			}
		}
		if err := st.AddDID(ctx, store.DID{Number: pos[0], Extension: *ext}); err != nil {
			return err
		}
		if c.json {
			return printJSON(env.Stdout, map[string]string{"number": pos[0], "ext": *ext})
		}
		fmt.Fprintf(env.Stdout, "did %s rings extension %s\n", pos[0], *ext)
		return nil
	case "del":
		if len(pos) != 1 {
			return fmt.Errorf("%w: did del takes one NUMBER", ErrUsage)
		}
		if err := st.DeleteDID(ctx, pos[0]); err != nil {
			return err
		}
		if c.json {
			return printJSON(env.Stdout, map[string]string{"deleted": pos[0]})
		}
		fmt.Fprintf(env.Stdout, "did %s deleted\n", pos[0])
		return nil
	case "list":
		ds, err := st.DIDs(ctx)
		if err != nil {
			return err
		}
		if c.json {
			out := make([]map[string]string, 0, len(ds))
			for _, d := range ds {
				out = append(out, map[string]string{"number": d.Number, "ext": d.Extension})
			}
			return printJSON(env.Stdout, out)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NUMBER\tEXTENSION")
		for _, d := range ds {
			fmt.Fprintf(tw, "%s\t%s\n", d.Number, d.Extension)
		}
		return tw.Flush()
	}
	return fmt.Errorf("%w: unknown did subcommand %q: use add, list or del", ErrUsage, args[0])
}
