// Package cli is sekisho's command line: `serve` and the administration
// commands that edit the store while the server runs. Each command takes
// --data DIR and --json. Errors name the flag or field and the fix.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sekisho/sekisho/internal/config"
	"github.com/sekisho/sekisho/internal/pbx"
)

// Env is what a command may touch: its streams. No globals.
type Env struct {
	Stdout, Stderr io.Writer
}

// ErrUsage marks a command-line mistake; main exits 2 for it.
var ErrUsage = errors.New("usage")

const usage = `sekisho - an IP-PBX that toll fraud cannot get through

Commands:
  sekisho serve [--data DIR] [--config FILE] [flags]   run the PBX (see: sekisho serve --help)
  sekisho ext add NUMBER [--name NAME] [--digest md5|sha256|both]
  sekisho ext list
  sekisho ext del NUMBER
  sekisho ext passwd NUMBER [--password-file FILE]
  sekisho ext set NUMBER [--profile NAME] [--class internal|domestic|mobile|international] [--countries US,SL]
                         [--networks CIDR,...]
  sekisho ext unlock NUMBER                       lift a suspension after a limit was breached
  sekisho trunk add NAME --peer HOST:PORT [--transport udp|tcp] [--username U --password-file F]
                         [--register] [--caller-id NUMBER]
  sekisho trunk list
  sekisho trunk del NAME
  sekisho did add NUMBER --ext EXT
  sekisho did list
  sekisho did del NUMBER
  sekisho cdr list [--limit N] [--since DURATION]
  sekisho check-number --from EXT STRING          what the gate would do with a dialled STRING
  sekisho profile list
  sekisho profile add|set NAME [--class C] [--countries L] [--hours SPEC] [--max-duration D] [LIMITS]
  sekisho profile del NAME
  sekisho limits show
  sekisho limits set [--trunk NAME] [LIMITS]      the whole PBX's (or a trunk's) limits
  sekisho limits unfreeze                         lift a PBX-wide freeze of international calls
  sekisho rate list
  sekisho rate set PREFIX PER-MINUTE [--note TEXT] estimated price a minute, such as: rate set +232 250
  sekisho rate del PREFIX
  sekisho alert list [--limit N]
  sekisho ban list [--all]
  sekisho ban add ADDRESS [--for DURATION] [--reason TEXT]
  sekisho ban del ADDRESS
  sekisho audit list [--type T] [--source S] [--since D] [--limit N]
  sekisho audit show SEQ
  sekisho audit verify [--against EXPORT]        check the evidence log's chain and signed checkpoints
  sekisho audit export [--out FILE]
  sekisho fleet join URL TOKEN [--name NAME]     join the vendor's centre (outbound only; pins its CA and bundle key)
  sekisho fleet status
  sekisho fleet leave
  sekisho group add NUMBER --members EXT,EXT [--strategy ring-all|hunt] [--ring 20s]
                         [--overflow GROUP] [--name NAME]   a ring group; a DID can ring it
  sekisho group list
  sekisho group del NUMBER
  sekisho forward set EXT --to NUMBER [--when always|busy|noanswer]
                         forward EXT's calls; refused with the toll gate's reasons when
                         EXT may not dial NUMBER (checked again on every forwarded call)
  sekisho forward clear EXT [--when ...]
  sekisho forward list [EXT]
  sekisho voicemail enable EXT [--email ADDR]   a mailbox for EXT; prints its random PIN once
  sekisho voicemail pin EXT                      a new random PIN (lifts a PIN lock)
  sekisho voicemail greeting EXT FILE.wav | EXT --clear   its own greeting (8000 Hz mono 16-bit)
  sekisho voicemail disable EXT | list [EXT] | del EXT ID
                         calls EXT does not answer go to its mailbox; EXT dials *97 to listen
  sekisho maintenance on|off|show
                         the office's switch for the vendor's access: console logins and
                         the centre's maintenance sessions
  sekisho vpn add-peer NAME --pubkey KEY [--endpoint HOST:PORT]
                         a vendor's peer of the console's VPN; prints its wg-quick configuration
  sekisho vpn list
  sekisho vpn del NAME
  sekisho centre serve [--listen HOST:PORT] [--name HOST] [--alert-webhooks URL,...]
                         [--smtp HOST:PORT --smtp-from ADDR --alert-email ADDR,...]
                         [--console-listen 127.0.0.1:7444] [--admin-networks CIDR,...]
                         the vendor's maintenance centre for a fleet of units, and its dashboard
  sekisho centre enrol-token [--group G] [--for 24h]   a one-time token for sekisho fleet join
  sekisho centre push (--block-international | --allow-international) [--rates FILE.json]
                         [--group G] [--note TEXT]     sign a policy bundle and send it to the units
  sekisho centre coverage [--seq N]               how many units applied a bundle; who has not
  sekisho centre units
  sekisho centre revoke UNIT
  sekisho centre alerts [--limit N]
  sekisho centre operator add NAME --role admin|viewer   a dashboard operator; prints a one-time setup link
  sekisho centre operator list
  sekisho centre operator del NAME
                         centre commands take --data DIR (default $SEKISHO_CENTRE_DATA or
                         ./sekisho-centre) and --db postgres://... (default $SEKISHO_CENTRE_DB)

LIMITS are --max-calls N --intl-per-minute N --intl-per-hour N --same-prefix N
--distinct-per-hour N --daily-spend N (0: no limit).

Every command takes --data DIR (default $SEKISHO_DATA or ./sekisho-data)
and --json for machine-readable output.
`

// Main runs the command in args (without the program name) and returns
// the process exit code.
func Main(args []string, env Env) int {
	before := snapshotBefore(args)
	err := run(args, env)
	if err == nil {
		// A change that cannot be written down is reported, not hidden.
		if aerr := recordChange(args, before); aerr != nil {
			err = fmt.Errorf("the change was made but could not be written to the evidence log: %w", aerr)
		}
	}
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0 // --help printed the usage it was asked for
	}
	fmt.Fprintln(env.Stderr, "sekisho:", err)
	if errors.Is(err, ErrUsage) {
		return 2
	}
	return 1
}

func run(args []string, env Env) error {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return fmt.Errorf("%w: no command given", ErrUsage)
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], env)
	case "ext":
		return ext(args[1:], env)
	case "cdr":
		return cdrCmd(args[1:], env)
	case "trunk":
		return trunk(args[1:], env)
	case "did":
		return did(args[1:], env)
	case "check-number":
		return checkNumber(args[1:], env)
	case "profile":
		return profileCmd(args[1:], env)
	case "limits":
		return limitsCmd(args[1:], env)
	case "rate":
		return rateCmd(args[1:], env)
	case "alert":
		return alertCmd(args[1:], env)
	case "ban":
		return banCmd(args[1:], env)
	case "audit":
		return auditCmd(args[1:], env)
	case "vpn":
		return vpnCmd(args[1:], env)
	case "maintenance":
		return maintenanceCmd(args[1:], env)
	case "forward":
		return forwardCmd(args[1:], env)
	case "group":
		return groupCmd(args[1:], env)
	case "voicemail":
		return voicemailCmd(args[1:], env)
	case "centre":
		return centreCmd(args[1:], env)
	case "fleet":
		return fleetCmd(args[1:], env)
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
		return nil
	}
	fmt.Fprint(env.Stderr, usage)
	return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
}

// parse parses flags that may come before, between or after positional
// arguments (`ext add 201 --json` and `ext add --json 201` both work).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", ErrUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newFlags(name string, env Env) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// common are the flags every administration command takes.
type common struct {
	data string
	json bool
}

func (c *common) bind(fs *flag.FlagSet) {
	fs.StringVar(&c.data, "data", config.DefaultData(), "data directory")
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func serve(args []string, env Env) error {
	cfg := config.Default()
	fs := newFlags("serve", env)
	var file string
	fs.StringVar(&file, "config", "", "JSON config file; its keys are these flags' names, and flags given here override it")
	cfg.Bind(fs)
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: sekisho serve [--data DIR] [--config FILE] [flags]\n\nRuns the PBX. Flags (each overrides the config file's key of the same name):")
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: serve takes no arguments, got %q", ErrUsage, strings.Join(pos, " "))
	}
	if file != "" {
		// Config file first, then re-apply the flags given explicitly so
		// that every flag overrides its key.
		set := map[string]string{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
		if err := cfg.Load(file); err != nil {
			return err
		}
		fs2 := newFlags("serve", env)
		cfg.Bind(fs2)
		for k, v := range set {
			if k == "config" {
				continue
			}
			if err := fs2.Set(k, v); err != nil {
				return fmt.Errorf("%w: --%s: %v", ErrUsage, k, err)
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	level, _ := cfg.Level()
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return pbx.Run(ctx, cfg, log)
}
