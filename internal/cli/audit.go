package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/sekisho/sekisho/internal/admin"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/config"
	"github.com/sekisho/sekisho/internal/console"
	"github.com/sekisho/sekisho/internal/store"
)

// mutating are the commands whose successful runs are config changes for
// the evidence log ("ext list" and the like are not).
var mutating = map[string]bool{
	"ext add": true, "ext del": true, "ext set": true, "ext passwd": true, "ext unlock": true,
	"trunk add": true, "trunk del": true, "did add": true, "did del": true,
	"profile add": true, "profile set": true, "profile del": true,
	"limits set": true, "limits unfreeze": true, "rate set": true, "rate del": true,
	"ban add": true, "ban del": true,
	"maintenance on": true, "maintenance off": true,
	"forward set": true, "forward clear": true,
	"group add": true, "group del": true,
	"voicemail enable": true, "voicemail pin": true, "voicemail greeting": true, "voicemail disable": true, "voicemail del": true,
}

// recordChange writes a config-change record for a CLI command that
// succeeded: who ran it (the OS user), the whole command line (in which no
// secret ever appears: passwords come from files or are generated), and
// the thing changed as it was before and after. before is what
// snapshotBefore took.
func recordChange(args []string, before any) error {
	if len(args) < 2 || !mutating[args[0]+" "+args[1]] {
		return nil
	}
	// The change is made: its record must be written too. A server busy
	// writing under a flood can hold the log's lock past one attempt's
	// timeout, so keep trying for two minutes before reporting it lost.
	deadline := time.Now().Add(recordFor)
	for {
		err := onChangeStore(args, func(ctx context.Context, st *store.Store) error {
			return appendChange(ctx, st, args, before)
		})
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// recordFor bounds how long a command keeps trying to write the record
// of the change it made.
const recordFor = 2 * time.Minute

func appendChange(ctx context.Context, st *store.Store, args []string, before any) error {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	typ := audit.ConfigChange
	switch args[0] + " " + args[1] {
	case "ext unlock":
		typ = audit.Unlock
	case "limits unfreeze":
		typ = audit.Unfreeze
	case "ban del":
		typ = audit.Unban
	case "ban add":
		typ = audit.Ban
	}
	detail, _ := json.Marshal(struct {
		Command string `json:"command"`
		Before  any    `json:"before"`
		After   any    `json:"after"`
	}{"sekisho " + strings.Join(args, " "), before, snapshot(ctx, st, args)})
	now := time.Now()
	_, err := st.AppendAudit(ctx, []store.AuditRecord{{At: now, Type: typ, Source: "cli:" + who, Target: args[0] + " " + args[1],
		Count: 1, First: now, Last: now, Detail: string(detail)}}, audit.Hash)
	return err
}

// snapshotBefore takes the state a mutating command is about to change,
// for its config-change record; nil for other commands.
func snapshotBefore(args []string) any {
	if len(args) < 2 || !mutating[args[0]+" "+args[1]] {
		return nil
	}
	var v any
	onChangeStore(args, func(ctx context.Context, st *store.Store) error {
		v = snapshot(ctx, st, args)
		return nil
	})
	return v
}

// onChangeStore runs fn on the store a command's --data names.
func onChangeStore(args []string, fn func(context.Context, *store.Store) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), cliBusy+10*time.Second)
	defer cancel()
	st, err := openStore(ctx, findData(args))
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(ctx, st)
}

// extView is an extension as a change record shows it: never its hashes.
type extView struct {
	Number, Name, Digest, Class, Countries, Profile, Networks, Suspended string
	PasswordSet                                                          time.Time
}

// snapshot returns the thing args changes, as it is now (nil if absent).
func snapshot(ctx context.Context, st *store.Store, args []string) any {
	arg := ""
	for _, a := range args[2:] {
		if !strings.HasPrefix(a, "-") {
			arg = a
			break
		}
	}
	switch args[0] {
	case "ext":
		e, err := st.Extension(ctx, arg)
		if err != nil {
			return nil
		}
		v := extView{Number: e.Number, Name: e.Name, Digest: e.Digest, Class: e.Class, Countries: e.Countries,
			Profile: e.Profile, Networks: e.Networks, Suspended: e.SuspendReason, PasswordSet: e.Updated.UTC()}
		return v
	case "profile":
		if p, err := st.Profile(ctx, arg); err == nil {
			return p
		}
	case "limits":
		ls, _ := st.ScopeLimits(ctx)
		f, _ := st.IntlFreeze(ctx)
		return map[string]any{"limits": ls, "intl_frozen": f.Reason}
	case "rate":
		rs, _ := st.Rates(ctx)
		for _, r := range rs {
			if r.Prefix == arg {
				return r
			}
		}
	case "ban":
		bs, _ := st.Bans(ctx)
		for _, b := range bs {
			if b.Address == arg {
				return b
			}
		}
	case "trunk":
		ts, _ := st.Trunks(ctx)
		for _, t := range ts {
			if t.Name == arg {
				return toTrunkJSON(t) // no password, only whether there is one
			}
		}
	case "did":
		if d, err := st.LookupDID(ctx, arg); err == nil {
			return d
		}
	case "forward":
		if fw, err := st.Forwards(ctx, arg); err == nil {
			return fw
		}
	case "group":
		if g, err := st.Group(ctx, arg); err == nil {
			return g
		}
	case "maintenance":
		v, _ := st.Setting(ctx, console.SettingMaintenance, "")
		return map[string]string{"maintenance": v}
	}
	return nil
}

// findData returns the --data value in args, or the default.
func findData(args []string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--data="); ok {
			return v
		}
		if (a == "--data" || a == "-data") && i+1 < len(args) {
			return args[i+1]
		}
	}
	return config.DefaultData()
}

// auditCmd reads and checks the evidence log: sekisho audit list|show|verify|export.
func auditCmd(args []string, env Env) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: audit needs a subcommand: list, show, verify or export", ErrUsage)
	}
	ctx := context.Background()
	var c common
	fs := newFlags("audit "+args[0], env)
	c.bind(fs)
	switch args[0] {
	case "list":
		typ := fs.String("type", "", "only this event type (auth-failure, ban, policy-denial, ...)")
		source := fs.String("source", "", "only this source")
		since := fs.Duration("since", 0, "only records written in this last duration, such as 24h")
		limit := fs.Int("limit", 100, "how many, newest first (0: all)")
		if pos, err := parse(fs, args[1:]); err != nil {
			return err
		} else if len(pos) != 0 {
			return fmt.Errorf("%w: audit list takes flags only", ErrUsage)
		}
		f := store.AuditFilter{Type: *typ, Source: *source, Limit: *limit, Newest: true}
		if *since > 0 {
			f.Since = time.Now().Add(-*since)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			rs, err := st.AuditRecords(ctx, f)
			if err != nil {
				return err
			}
			if c.json {
				if rs == nil {
					rs = []store.AuditRecord{}
				}
				return printJSON(env.Stdout, rs)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tTYPE\tSOURCE\tTARGET\tCOUNT\tFIRST\tLAST\tDETAIL")
			for _, r := range rs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Seq, r.At.Format("01-02 15:04:05"), r.Type, r.Source, r.Target,
					r.Count, r.First.Format("15:04:05"), r.Last.Format("15:04:05"), r.Detail)
			}
			return tw.Flush()
		})
	case "show":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		var seq int64
		if len(pos) != 1 {
			return fmt.Errorf("%w: audit show takes one record number", ErrUsage)
		}
		if _, err := fmt.Sscan(pos[0], &seq); err != nil || seq < 1 {
			return fmt.Errorf("%w: audit show: %q is not a record number", ErrUsage, pos[0])
		}
		return withStore(ctx, c, func(st *store.Store) error {
			rs, err := st.AuditRecords(ctx, store.AuditFilter{AfterSeq: seq - 1, Limit: 1})
			if err != nil {
				return err
			}
			if len(rs) == 0 || rs[0].Seq != seq {
				return fmt.Errorf("audit record %d: %w", seq, store.ErrNotFound)
			}
			r := rs[0]
			if c.json {
				return printJSON(env.Stdout, r)
			}
			fmt.Fprintf(env.Stdout, "record  %d\nwritten %s\ntype    %s\nsource  %s\ntarget  %s\ncount   %d\nfirst   %s\nlast    %s\ndetail  %s\nhash    %x\n",
				r.Seq, r.At.Format(time.RFC3339Nano), r.Type, r.Source, r.Target, r.Count,
				r.First.Format(time.RFC3339Nano), r.Last.Format(time.RFC3339Nano), r.Detail, r.Hash)
			return nil
		})
	case "verify":
		against := fs.String("against", "", "also check the log against the checkpoints in an export kept elsewhere")
		if pos, err := parse(fs, args[1:]); err != nil {
			return err
		} else if len(pos) != 0 {
			return fmt.Errorf("%w: audit verify takes flags only", ErrUsage)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			l, err := admin.LoadLog(ctx, st)
			if err != nil {
				return err
			}
			var ext *exportFile
			if *against != "" {
				b, err := os.ReadFile(*against)
				if err != nil {
					return fmt.Errorf("--against: %w", err)
				}
				ext = &exportFile{}
				if err := json.Unmarshal(b, ext); err != nil {
					return fmt.Errorf("--against %s: not a sekisho audit export: %w", *against, err)
				}
			}
			return verifyOut(env, c, l, ext)
		})
	case "export":
		out := fs.String("out", "", "write to FILE (default: standard output)")
		if pos, err := parse(fs, args[1:]); err != nil {
			return err
		} else if len(pos) != 0 {
			return fmt.Errorf("%w: audit export takes flags only", ErrUsage)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			return exportAudit(ctx, env, st, *out)
		})
	}
	return fmt.Errorf("%w: unknown audit subcommand %q: use list, show, verify or export", ErrUsage, args[0])
}

// exportFile is what `audit export` writes: the records, the checkpoints
// and the public key that signed them. Kept off the box, it lets a later
// `audit verify --against` catch a rewrite made with the local key.
type exportFile struct {
	PublicKey   string                  `json:"public_key"`
	Exported    time.Time               `json:"exported"`
	Records     []store.AuditRecord     `json:"records"`
	Checkpoints []store.AuditCheckpoint `json:"checkpoints"`
}

func exportAudit(ctx context.Context, env Env, st *store.Store, out string) error {
	l, err := admin.LoadLog(ctx, st)
	if err != nil {
		return err
	}
	if l.Key == nil {
		return audit.ErrNoKey
	}
	f := exportFile{PublicKey: hex.EncodeToString(l.Key.Public().(ed25519.PublicKey)), Exported: time.Now().UTC(), Records: l.Records, Checkpoints: l.Checkpoints}
	if f.Records == nil {
		f.Records = []store.AuditRecord{}
	}
	if out == "" {
		return printJSON(env.Stdout, f)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	fmt.Fprintf(env.Stdout, "exported %d records and %d checkpoints to %s\n", len(l.Records), len(l.Checkpoints), out)
	return nil
}

// verifyOut checks the chain and the local checkpoints, then the export's
// checkpoints (signed by the key in the export) against the local chain.
// A failed check is an error (exit 1) after the report is printed.
func verifyOut(env Env, c common, l admin.Log, ext *exportFile) error {
	var extra []store.AuditCheckpoint
	var pub ed25519.PublicKey
	if ext != nil {
		b, err := hex.DecodeString(ext.PublicKey)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return fmt.Errorf("--against: the export has no valid public key")
		}
		extra, pub = ext.Checkpoints, ed25519.PublicKey(b)
	}
	out := l.Verify(extra, pub)
	if c.json {
		if perr := printJSON(env.Stdout, out); perr != nil {
			return perr
		}
	} else if out.OK {
		fmt.Fprintf(env.Stdout, "ok: %d records chained, %d checkpoints verified\n", out.Records, out.Checkpoints)
	} else {
		fmt.Fprintf(env.Stdout, "FAILED: %s\n", out)
	}
	if !out.OK {
		return fmt.Errorf("audit verify: %s", out)
	}
	return nil
}
