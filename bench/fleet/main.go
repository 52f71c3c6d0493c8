// Command fleet measures the vendor's centre with a fleet of simulated
// units: how long a policy bundle takes from `sekisho centre push` to the
// last unit's acknowledgement, and how much memory the centre needs per
// connected unit.
//
// For each fleet size in -units it starts a real `sekisho centre serve`
// on 127.0.0.1 with a fresh data directory (SQLite, or the PostgreSQL
// database -db names), enrols that many units over HTTP with the real
// fleet.Join (tokens are made through package centre, as `sekisho centre
// enrol-token` makes them, without 10,000 process starts), restarts the
// centre so that its idle memory is measured without the enrolments'
// garbage, and runs every unit as a goroutine with the real fleet.Link
// (fleet.New, Run): the very code a unit receives and applies bundles
// with, over an in-memory fleet.Store. Once every unit is online it runs
// `sekisho centre push --block-international` once and times, from the
// start of that command:
//
//   - applied in all units: the last simulated unit's ApplyFleetBundle;
//   - acknowledged in the centre: the first `Coverage` poll (every 50 ms)
//     showing every unit applied, and the last ack's time in the acks
//     table.
//
// The centre's memory is its resident set (/proc/PID/status VmRSS)
// before the units connect and after they all are, over the number of
// units. Everything stays on loopback and every phase is bounded by
// -timeout. The report is printed and written to
// bench/results/fleet-DATE.md.
//
// Usage:
//
//	go run ./bench/fleet -units 1000,10000
//	go run ./bench/fleet -units 1000 -db postgres://user:pw@127.0.0.1:5432/centre
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sekisho/sekisho/internal/centre"
)

// options are the command-line flags.
type options struct {
	units       []int
	db          string
	bin         string
	timeout     time.Duration
	statusEvery time.Duration
	workers     int
	connectRate int
	idle        time.Duration
	tokensFirst bool
	results     string
	keep        bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fleet bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	var o options
	var units string
	fs.StringVar(&units, "units", "1000", "fleet sizes, comma-separated: one run each, with a fresh centre")
	fs.StringVar(&o.db, "db", "", "PostgreSQL URL for the centre (an empty database); default: SQLite in the centre's data directory")
	fs.StringVar(&o.bin, "bin", "", "the sekisho binary (default: built from this checkout into a temporary directory)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound on each run (one fleet size), from start to finish")
	fs.DurationVar(&o.statusEvery, "status-every", 30*time.Second, "how often each simulated unit reports its figures (a real unit: 5 s; the centre ends a stream silent for 60 s)")
	fs.IntVar(&o.workers, "join-workers", 16, "enrolments in parallel")
	fs.IntVar(&o.connectRate, "connect-rate", 0, "units started per second; 0: all at once, as after the centre restarts")
	fs.DurationVar(&o.idle, "idle", 20*time.Second, "how long the connected fleet idles before memory is read and the push made (covers one 15 s ping round)")
	fs.BoolVar(&o.tokensFirst, "tokens-first", false, "make every enrolment token before the first join (as a vendor provisioning a batch would), not each just before its join")
	fs.StringVar(&o.results, "results", "", "directory of the report (default: bench/results of this checkout); - : print only")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (centre logs, data, unit identities)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, f := range strings.FieldsFunc(units, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 100000 {
			return fmt.Errorf("-units %q: want sizes from 1 to 100000, such as 1000,10000", units)
		}
		o.units = append(o.units, n)
	}
	switch {
	case len(o.units) == 0:
		return fmt.Errorf("-units: give at least one size")
	case o.db != "" && !centre.IsPostgres(o.db):
		return fmt.Errorf("-db: want postgres://user:password@host:5432/db")
	case o.workers < 1 || o.workers > 1000:
		return fmt.Errorf("-join-workers %d: want 1 to 1000", o.workers)
	case o.timeout < 30*time.Second:
		return fmt.Errorf("-timeout %v: want 30s or more", o.timeout)
	case o.statusEvery < time.Second || o.statusEvery >= time.Minute:
		// The centre ends a stream it has heard nothing on for four pings
		// (60 s): a unit with no alerts must report more often than that.
		return fmt.Errorf("-status-every %v: want 1s to under 1m (the centre ends a stream silent for 60 s)", o.statusEvery)
	case o.connectRate < 0:
		return fmt.Errorf("-connect-rate %d: want 0 (all at once) or more", o.connectRate)
	}

	root := repoRoot()
	maxUnits := 0
	for _, n := range o.units {
		maxUnits = max(maxUnits, n)
	}
	// Per unit, here: its stream's socket, and briefly its enrolment's;
	// the centre (which inherits the limit) holds the other ends.
	lim, limNote := fileLimit(uint64(4*maxUnits + 4096))

	tmp, err := os.MkdirTemp("", "sekisho-bench-fleet-")
	if err != nil {
		return err
	}
	if o.keep {
		defer fmt.Fprintf(os.Stderr, "kept: %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if o.bin == "" {
		o.bin = filepath.Join(tmp, "sekisho")
		fmt.Fprintln(os.Stderr, "building sekisho ...")
		build := exec.CommandContext(ctx, "go", "build", "-o", o.bin, "./cmd/sekisho")
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build sekisho: %w", err)
		}
	}

	rep := &report{opts: o, machine: machineInfo(root), limit: lim, limitNote: limNote}
	for _, n := range o.units {
		fmt.Fprintf(os.Stderr, "\n== %d units ==\n", n)
		rctx, cancel := context.WithTimeout(ctx, o.timeout)
		r, err := runFleet(rctx, o, n, filepath.Join(tmp, fmt.Sprintf("run-%d", n)))
		cancel()
		if err != nil {
			r.err = err.Error()
			fmt.Fprintf(os.Stderr, "%d units: %v\n", n, err)
		}
		rep.runs = append(rep.runs, r)
		if ctx.Err() != nil {
			break
		}
		runtime.GC()
	}
	text := rep.markdown()
	fmt.Fprint(out, text)
	if o.results != "-" {
		dir := o.results
		if dir == "" {
			dir = filepath.Join(root, "bench", "results")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		path := filepath.Join(dir, "fleet-"+time.Now().Format("20060102-150405")+".md")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "report written to %s\n", path)
	}
	for _, r := range rep.runs {
		if r.err != "" {
			return fmt.Errorf("%d units: %s", r.units, r.err)
		}
	}
	return nil
}

// repoRoot is the checkout's top directory, or the working directory.
func repoRoot() string {
	if b, err := exec.Command("git", "rev-parse", "--show-toplevel").Output(); err == nil {
		return strings.TrimSpace(string(b))
	}
	wd, _ := os.Getwd()
	return wd
}
