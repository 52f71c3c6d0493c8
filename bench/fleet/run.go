package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sekisho/sekisho/internal/centre"
	"github.com/sekisho/sekisho/internal/fleet"
)

// result is what one run (one fleet size) measured.
type result struct {
	units   int
	err     string
	backend string

	// Enrolment: n fleet.Join over HTTP, -join-workers at a time.
	joinWall     time.Duration
	joinRetries  int
	joinCentre   procStatus // after the last join
	joinFDsMax   int        // the centre's open files during enrolment
	joinSelfFDs  int        // this process's, after the last join
	joinCentreCP time.Duration

	// Connection: every link started, until all are online.
	idle         procStatus // the restarted centre before any unit connects
	linksUp      time.Duration
	centreOnline time.Duration // every unit online in the centre's store
	connectCPU   time.Duration // the centre's CPU from the first link to all online
	connectFDMax int

	// The connected fleet idling for -idle.
	connected    procStatus
	idleWall     time.Duration
	idleCPU      time.Duration // the centre's
	idleSelfCPU  time.Duration // this process's (the simulated units)
	idleDropped  int           // links not online at the end of the idle window
	heapPerUnit  float64       // bytes of Go heap and stacks here per simulated unit
	selfRSSUnit  float64       // bytes of this process's RSS per simulated unit
	goroutines   int
	connectedLog int // "unit connected" lines in the centre's log before the push

	// The push.
	seq          uint64
	pushCLI      time.Duration
	appliedAll   time.Duration // the last simulated unit's ApplyFleetBundle
	unitLat      summary
	coverageAll  time.Duration    // first Coverage poll with every unit applied
	coverageAt   [3]time.Duration // ... with half, 90 % and 99 % of them
	coveragePoll summary          // how long one Coverage call took
	lastAck      time.Duration    // the latest ack in the acks table
	ackLat       summary
	refused      int
	pushCPU      time.Duration // the centre's, from the push to the last ack seen
	pushSelfCPU  time.Duration // this process's (the simulated units and the coverage polls)
	pushMachine  float64       // the whole machine's CPU busy, %
	sentLat      summary       // when the centre wrote the bundle to each stream (its log)
	pushPeak     procStatus    // the centre's highest RSS, threads and files during it

	// The centre's log over the whole run.
	logLines  map[string]int
	logSample []string
}

// summary is a distribution's percentiles.
type summary struct {
	n                  int
	p50, p90, p99, max time.Duration
}

func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	slices.Sort(ds)
	at := func(p float64) time.Duration {
		i := int(float64(len(ds))*p+0.999999) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return summary{n: len(ds), p50: at(0.50), p90: at(0.90), p99: at(0.99), max: ds[len(ds)-1]}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// sampler reads a process's status every period until stopped, keeping
// the highest of each figure.
type sampler struct {
	mu   sync.Mutex
	peak procStatus
	stop chan struct{}
	done chan struct{}
}

func sample(pid int, period time.Duration) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			if ps, err := procStatusOf(pid, false); err == nil {
				s.mu.Lock()
				s.peak.RSS, s.peak.HWM = max(s.peak.RSS, ps.RSS), max(s.peak.HWM, ps.HWM)
				s.peak.Threads, s.peak.FDs = max(s.peak.Threads, ps.Threads), max(s.peak.FDs, ps.FDs)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) end() procStatus {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// goHeap is the Go heap and goroutine stacks in use here, after a GC.
func goHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// runFleet is one run with n units in dir.
func runFleet(ctx context.Context, o options, n int, dir string) (r result, err error) {
	r.units = n
	data := filepath.Join(dir, "centre")
	unitsDir := filepath.Join(dir, "units")
	if err := os.MkdirAll(unitsDir, 0o700); err != nil {
		return r, err
	}
	addr, err := freeAddr()
	if err != nil {
		return r, err
	}
	logPath := filepath.Join(dir, "centre.log")
	defer func() { r.logLines, r.logSample = scanLog(logPath) }()
	if o.db != "" {
		// A schema of this run's own: each fleet size starts empty.
		dsn, drop, err := pgSchema(ctx, o.db, o.keep)
		if err != nil {
			return r, err
		}
		defer drop()
		o.db = dsn
	}

	progress("starting the centre on %s", addr)
	c, err := startCentre(ctx, o.bin, data, o.db, addr, logPath)
	if err != nil {
		return r, err
	}
	defer func() { c.stop() }()

	// The centre's store and keys, opened as `sekisho centre enrol-token`
	// opens them, to make the tokens.
	st, err := centre.OpenStore(ctx, data, o.db)
	if err != nil {
		return r, err
	}
	defer st.Close()
	r.backend = st.Backend()
	keys, err := centre.LoadKeys(data)
	if err != nil {
		return r, err
	}
	if us, err := st.Units(ctx); err != nil {
		return r, err
	} else if len(us) > 0 {
		return r, fmt.Errorf("the centre's database holds %d units already: give an empty database", len(us))
	}

	// Enrolment.
	dirs := make([]string, n)
	var pre []string
	if o.tokensFirst {
		progress("making %d enrolment tokens", n)
		for range n {
			tok, _, err := centre.NewToken(ctx, st, keys, "", time.Hour)
			if err != nil {
				return r, err
			}
			pre = append(pre, tok)
		}
	}
	progress("enrolling %d units, %d at a time", n, o.workers)
	joinSamp := sample(c.pid, 200*time.Millisecond)
	cpu0, _ := cpuTime(c.pid)
	t0 := time.Now()
	var (
		retries atomic.Int64
		joined  atomic.Int64
		firstMu sync.Mutex
		first   error
	)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range o.workers {
		wg.Go(func() {
			for i := range jobs {
				d := filepath.Join(unitsDir, fmt.Sprintf("%05d", i))
				if err := os.MkdirAll(d, 0o700); err != nil {
					firstMu.Lock()
					first = cmp(first, err)
					firstMu.Unlock()
					continue
				}
				var err error
				for attempt := range 3 {
					if ctx.Err() != nil {
						err = ctx.Err()
						break
					}
					var tok string
					if attempt == 0 && pre != nil {
						tok = pre[i]
					} else if tok, _, err = centre.NewToken(ctx, st, keys, "", time.Hour); err != nil {
						continue
					}
					jctx, cancel := context.WithTimeout(ctx, time.Minute)
					_, err = fleet.Join(jctx, d, c.url, tok, fmt.Sprintf("bench-%05d", i), "bench")
					cancel()
					if err == nil {
						break
					}
					retries.Add(1)
				}
				if err != nil {
					firstMu.Lock()
					first = cmp(first, fmt.Errorf("unit %d: %w", i, err))
					firstMu.Unlock()
					continue
				}
				dirs[i] = d
				if k := joined.Add(1); k%1000 == 0 {
					progress("  %d joined (%.0f /s)", k, float64(k)/time.Since(t0).Seconds())
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	r.joinWall = time.Since(t0)
	cpu1, _ := cpuTime(c.pid)
	r.joinCentreCP = cpu1 - cpu0
	r.joinRetries = int(retries.Load())
	r.joinFDsMax = joinSamp.end().FDs
	r.joinCentre, _ = readProcStatus(c.pid)
	if ps, err := readProcStatus(os.Getpid()); err == nil {
		r.joinSelfFDs = ps.FDs
	}
	if first != nil {
		return r, fmt.Errorf("enrolment: %w", first)
	}
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	progress("%d units enrolled in %v (%.0f /s); the centre holds %d open files", n, r.joinWall.Round(time.Millisecond),
		float64(n)/r.joinWall.Seconds(), r.joinCentre.FDs)

	// A fresh centre: its idle memory without the enrolments' garbage.
	progress("restarting the centre")
	c.stop()
	if c, err = startCentre(ctx, o.bin, data, o.db, addr, logPath); err != nil {
		return r, err
	}
	if err := sleep(ctx, 3*time.Second); err != nil {
		return r, err
	}
	if r.idle, err = readProcStatus(c.pid); err != nil {
		return r, err
	}
	heap0 := goHeap()
	self0, _ := readProcStatus(os.Getpid())

	// The fleet: the real link per unit, over an in-memory store.
	alog := newApplyLog(n)
	links := make([]*fleet.Link, n)
	for i := range n {
		l, err := fleet.New(fleet.Config{Dir: dirs[i], Store: newMemStore(alog.hook(i)), Version: "bench", StatusEvery: o.statusEvery})
		if err != nil {
			return r, fmt.Errorf("unit %d: %w", i, err)
		}
		links[i] = l
	}
	lctx, lcancel := context.WithCancel(ctx)
	var lwg sync.WaitGroup
	defer func() {
		lcancel()
		done := make(chan struct{})
		go func() { lwg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			progress("some links did not stop within 30 s")
		}
	}()
	online := func() int {
		k := 0
		for _, l := range links {
			if l.Online() {
				k++
			}
		}
		return k
	}
	centreOnline := func() (int, error) {
		us, err := st.Units(ctx)
		k := 0
		for _, u := range us {
			if u.Online {
				k++
			}
		}
		return k, err
	}
	progress("connecting %d units", n)
	connSamp := sample(c.pid, 200*time.Millisecond)
	cpu0, _ = cpuTime(c.pid)
	t0 = time.Now()
	go func() {
		for i, l := range links {
			if lctx.Err() != nil {
				return
			}
			lwg.Go(func() { l.Run(lctx) })
			if o.connectRate > 0 && (i+1)%max(1, o.connectRate/20) == 0 {
				// In steps of 50 ms.
				next := t0.Add(time.Duration(float64(i+1) / float64(o.connectRate) * float64(time.Second)))
				time.Sleep(time.Until(next))
			}
		}
	}()
	lastSay := time.Now()
	for r.linksUp == 0 || r.centreOnline == 0 {
		if !c.alive() {
			return r, fmt.Errorf("the centre exited while the units connected; see %s", logPath)
		}
		up := online()
		if up == n && r.linksUp == 0 {
			r.linksUp = time.Since(t0)
		}
		var inCentre int
		if r.linksUp != 0 || time.Since(lastSay) >= 2*time.Second {
			if inCentre, err = centreOnline(); err != nil {
				if ctx.Err() != nil {
					break
				}
				self, _ := procStatusOf(os.Getpid(), false)
				return r, fmt.Errorf("connecting: %d of %d links online; this program's own read of the centre's store failed "+
					"(it holds %d open files): %w", online(), n, self.FDs, err)
			}
			if inCentre == n && r.linksUp != 0 {
				r.centreOnline = time.Since(t0)
				break
			}
		}
		if time.Since(lastSay) >= 2*time.Second {
			progress("  online: %d links, %d in the centre's store", up, inCentre)
			lastSay = time.Now()
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return r, fmt.Errorf("connecting: %d of %d links online, %d in the centre's store, %v after the first was started: %w",
				online(), n, inCentre, time.Since(t0).Round(time.Second), err)
		}
	}
	cpu1, _ = cpuTime(c.pid)
	r.connectCPU = cpu1 - cpu0
	r.connectFDMax = connSamp.end().FDs
	progress("all %d online: links in %v, in the centre's store in %v", n, r.linksUp.Round(time.Millisecond), r.centreOnline.Round(time.Millisecond))

	// Idle, connected.
	progress("idling %v", o.idle)
	cpu0, _ = cpuTime(c.pid)
	s0 := selfCPU()
	t0 = time.Now()
	if err := sleep(ctx, o.idle); err != nil {
		return r, err
	}
	r.idleWall = time.Since(t0)
	cpu1, _ = cpuTime(c.pid)
	r.idleCPU, r.idleSelfCPU = cpu1-cpu0, selfCPU()-s0
	r.idleDropped = n - online()
	if r.connected, err = readProcStatus(c.pid); err != nil {
		return r, err
	}
	heap1 := goHeap()
	self1, _ := readProcStatus(os.Getpid())
	r.heapPerUnit = (float64(heap1) - float64(heap0)) / float64(n)
	r.selfRSSUnit = float64(self1.RSS-self0.RSS) / float64(n)
	r.goroutines = runtime.NumGoroutine()
	r.connectedLog = countLog(logPath, "centre: unit connected")
	progress("centre RSS %.1f MiB idle, %.1f MiB with %d units connected", mib(r.idle.RSS), mib(r.connected.RSS), n)

	// The push.
	head := uint64(0)
	if b, err := st.BundleBySeq(ctx, 0); err == nil {
		head = b.Seq
	} else if !errors.Is(err, centre.ErrNotFound) {
		return r, err
	}
	alog.want.Store(head + 1)
	args := []string{"centre", "push", "--block-international", "--note", "fleet benchmark", "--data", data, "--json"}
	if o.db != "" {
		args = append(args, "--db", o.db)
	}
	progress("pushing")
	pushSamp := sample(c.pid, 50*time.Millisecond)
	cpu0, _ = cpuTime(c.pid)
	s0 = selfCPU()
	busy0, total0 := machineCPU()
	pctx, pcancel := context.WithTimeout(ctx, time.Minute)
	t0 = time.Now()
	out, err := exec.CommandContext(pctx, o.bin, args...).Output()
	r.pushCLI = time.Since(t0)
	pcancel()
	if err != nil {
		pushSamp.end()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return r, fmt.Errorf("sekisho centre push: %w", err)
	}
	var pushed centre.Bundle
	if err := json.Unmarshal(out, &pushed); err != nil || pushed.Seq == 0 {
		pushSamp.end()
		return r, fmt.Errorf("sekisho centre push: unexpected output %q", out)
	}
	r.seq = pushed.Seq
	var polls []time.Duration
	for {
		p0 := time.Now()
		cv, err := st.Coverage(ctx, r.seq)
		polls = append(polls, time.Since(p0))
		if err != nil {
			pushSamp.end()
			return r, fmt.Errorf("coverage: %w", err)
		}
		done := cv.Applied + len(cv.Refused)
		for k, f := range []float64{0.5, 0.9, 0.99} {
			if r.coverageAt[k] == 0 && float64(done) >= f*float64(n) {
				r.coverageAt[k] = time.Since(t0)
			}
		}
		if time.Since(lastSay) >= 2*time.Second {
			progress("  coverage: %d of %d applied, %d in the units", done, n, alog.count.Load())
			lastSay = time.Now()
		}
		if done >= n {
			r.coverageAll = time.Since(t0)
			r.refused = len(cv.Refused)
			break
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			pushSamp.end()
			return r, fmt.Errorf("push: %d of %d applied by the centre's coverage when time ran out (%d in the units)", cv.Applied, n, alog.count.Load())
		}
	}
	cpu1, _ = cpuTime(c.pid)
	r.pushCPU, r.pushSelfCPU = cpu1-cpu0, selfCPU()-s0
	if busy1, total1 := machineCPU(); total1 > total0 {
		r.pushMachine = 100 * float64(busy1-busy0) / float64(total1-total0)
	}
	r.pushPeak = pushSamp.end()
	r.coveragePoll = summarize(polls)
	select {
	case <-alog.all:
	case <-ctx.Done():
		return r, fmt.Errorf("push: %d of %d units applied the bundle when time ran out", alog.count.Load(), n)
	}
	var lat []time.Duration
	for i := range alog.at {
		lat = append(lat, time.Duration(alog.at[i].Load()-t0.UnixNano()))
	}
	r.unitLat = summarize(lat)
	r.appliedAll = r.unitLat.max
	r.sentLat = summarize(sentTimes(logPath, r.seq, t0))
	acks, err := ackTimes(ctx, data, o.db, r.seq)
	if err != nil {
		return r, err
	}
	for i := range acks {
		acks[i] -= time.Duration(t0.UnixMilli()) * time.Millisecond
	}
	r.ackLat = summarize(acks)
	r.lastAck = r.ackLat.max
	progress("applied in all units after %v; all acknowledged in the centre's coverage after %v (last ack at %v)",
		r.appliedAll.Round(time.Millisecond), r.coverageAll.Round(time.Millisecond), r.lastAck)
	return r, nil
}

// pgSchema makes a schema of the run's own in the PostgreSQL database dsn
// names and returns dsn with its search_path set to it, and a function
// that drops it (unless keep).
func pgSchema(ctx context.Context, dsn string, keep bool) (string, func(), error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", nil, errors.New("-db: not a PostgreSQL URL")
	}
	schema := fmt.Sprintf("sekisho_fleet_bench_%d", time.Now().UnixNano())
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("-db: create schema: %w", err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		db.Close()
		return "", nil, errors.New("-db: not a PostgreSQL URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	drop := func() {
		defer db.Close()
		if keep {
			progress("schema %s kept", schema)
			return
		}
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(dctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			progress("drop schema %s: %v", schema, err)
		}
	}
	return u.String(), drop, nil
}

// sentTimes reads when the centre sent bundle seq to each stream, from
// its log ("centre: bundle sent", millisecond times), after t0.
func sentTimes(path string, seq uint64, t0 time.Time) []time.Duration {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var ds []time.Duration
	want := fmt.Sprintf(" seq=%d ", seq)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="centre: bundle sent"`) || !strings.Contains(line, want) {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, field(" "+line, "time="))
		if err != nil || at.Before(t0.Truncate(time.Millisecond)) {
			continue
		}
		ds = append(ds, at.Sub(t0))
	}
	return ds
}

// machineCPU reads the machine's busy and total CPU time (in ticks) from
// /proc/stat.
func machineCPU() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// cmp keeps the first error.
func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// ackTimes reads, from the centre's acks table, when each unit's
// acknowledgement of bundle seq was recorded, as Unix time.
func ackTimes(ctx context.Context, data, dsn string, seq uint64) ([]time.Duration, error) {
	var db *sql.DB
	var err error
	if dsn != "" {
		db, err = sql.Open("pgx", dsn)
	} else {
		db, err = sql.Open("sqlite", "file:"+filepath.Join(data, centre.DBFile)+"?_pragma=busy_timeout(10000)")
	}
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT at FROM acks WHERE seq = $1 AND ok = $2`, int64(seq), true)
	if err != nil {
		return nil, fmt.Errorf("read the acks: %w", err)
	}
	defer rows.Close()
	var ds []time.Duration
	for rows.Next() {
		var at int64
		if err := rows.Scan(&at); err != nil {
			return nil, err
		}
		ds = append(ds, time.Duration(at)*time.Millisecond)
	}
	return ds, rows.Err()
}

// countLog counts the lines of the centre's log holding s.
func countLog(path, s string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	k := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			k++
		}
	}
	return k
}

// unitID matches a unit's id in the centre's log.
var unitID = regexp.MustCompile(`u-[a-z2-7]{16}`)

// scanLog counts the centre's log lines by level, message and reason
// (the unit's id taken out), and lists the warnings and errors.
func scanLog(path string) (map[string]int, []string) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		level := field(line, "level=")
		if level == "" {
			continue
		}
		key := level + " " + field(line, "msg=")
		if why := field(line, "why=") + field(line, "err="); why != "" {
			key += ": " + unitID.ReplaceAllString(why, "u-…")
		}
		counts[key]++
	}
	var bad []string
	for k := range counts {
		if strings.HasPrefix(k, "WARN") || strings.HasPrefix(k, "ERROR") || strings.Contains(k, ": ") {
			bad = append(bad, k)
		}
	}
	slices.SortFunc(bad, func(a, b string) int { return counts[b] - counts[a] })
	return counts, bad
}

// field returns the value of key in a log/slog text line.
func field(line, key string) string {
	i := strings.Index(line, " "+key)
	if i < 0 {
		return ""
	}
	v := line[i+1+len(key):]
	if strings.HasPrefix(v, `"`) {
		end := 1
		for end < len(v) && (v[end] != '"' || v[end-1] == '\\') {
			end++
		}
		return v[1:min(end, len(v))]
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
