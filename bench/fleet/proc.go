package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// centreProc is a running `sekisho centre serve` on loopback.
type centreProc struct {
	cmd  *exec.Cmd
	pid  int
	url  string
	done chan struct{}
	err  error
}

// startCentre starts the centre on addr and waits until its health
// answers. Its output goes to logPath.
func startCentre(ctx context.Context, bin, data, dsn, addr, logPath string) (*centreProc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	args := []string{"centre", "serve", "--data", data, "--listen", addr, "--name", "127.0.0.1"}
	if dsn != "" {
		args = append(args, "--db", dsn)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Ends with this program, even if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start the centre: %w", err)
	}
	c := &centreProc{cmd: cmd, pid: cmd.Process.Pid, url: "https://" + addr, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		lf.Close()
		close(c.done)
	}()
	// A readiness probe only: the units pin the CA through their tokens.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	probe := &http.Client{Timeout: time.Second, Transport: tr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := probe.Get(c.url + "/v1/health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("the centre exited at start (%v); see %s", c.err, logPath)
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("the centre is not ready after 30 s (%v); see %s", err, logPath)
		}
	}
}

// alive tells whether the centre is still running.
func (c *centreProc) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// stop asks the centre to stop (SIGINT, as Ctrl-C), and kills it, by its
// own PID, if it has not stopped within 20 s.
func (c *centreProc) stop() {
	if !c.alive() {
		return
	}
	c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// procStatus is what /proc says of a process's memory, threads and files.
type procStatus struct {
	RSS, HWM int64 // bytes
	Threads  int
	FDs      int
	// With detail: how many of the open files are sockets, and how many
	// the database (an SQLite connection holds the file and its -wal).
	Sockets, DBFiles int
}

func readProcStatus(pid int) (procStatus, error) { return procStatusOf(pid, true) }

// procStatusOf reads pid's status; detail reads where each open file
// points, which takes a while with thousands.
func procStatusOf(pid int, detail bool) (procStatus, error) {
	var ps procStatus
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			ps.RSS = n << 10
		case "VmHWM":
			ps.HWM = n << 10
		case "Threads":
			ps.Threads = int(n)
		}
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	if ents, err := os.ReadDir(dir); err == nil {
		ps.FDs = len(ents)
		for _, e := range ents {
			if !detail {
				break
			}
			to, err := os.Readlink(dir + "/" + e.Name())
			switch {
			case err != nil:
			case strings.HasPrefix(to, "socket:"):
				ps.Sockets++
			case strings.Contains(to, ".db"):
				ps.DBFiles++
			}
		}
	}
	return ps, nil
}

// clkTck is the unit of /proc/PID/stat's CPU times; 100 on Linux.
const clkTck = 100

// cpuTime is a process's user + system CPU time so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("/proc/PID/stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("/proc/PID/stat: too few fields")
	}
	// Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * time.Second / clkTck, nil
}

// selfCPU is this process's user + system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fileLimit raises RLIMIT_NOFILE as far as allowed (both ends of every
// simulated unit's connection live on this machine; the centre, started
// from here, inherits the limit) and returns what it got.
func fileLimit(want uint64) (got syscall.Rlimit, note string) {
	var cur syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && want > n {
			want = n
		}
	}
	if want > cur.Max {
		try := syscall.Rlimit{Cur: want, Max: want}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &try); err == nil {
			syscall.Getrlimit(syscall.RLIMIT_NOFILE, &got)
			return got, "raised soft and hard limits"
		} else {
			note = fmt.Sprintf("could not raise the hard limit %d to %d (%v); ", cur.Max, want, err)
		}
	}
	try := syscall.Rlimit{Cur: min(want, cur.Max), Max: cur.Max}
	if try.Cur < cur.Cur {
		try.Cur = cur.Cur
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &try); err != nil {
		note += fmt.Sprintf("could not raise the soft limit (%v)", err)
	} else {
		note += "soft limit raised to the hard limit"
	}
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &got)
	return got, note
}

// freeAddr returns a free TCP address on 127.0.0.1.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
