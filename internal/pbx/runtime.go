package pbx

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/config"
)

// applyMemoryLimit sets the Go runtime's soft memory limit from
// --memory-limit and returns it (0: none). With "auto", $GOMEMLIMIT
// wins when set (the runtime has applied it already); otherwise the
// limit is half of the memory this process may use: the machine's, or
// its cgroup's when that is smaller. Near the limit the collector runs
// more often rather than letting the heap double, which is what keeps a
// flood's garbage from growing the process towards the OOM killer; the
// bounded caches and transaction lifetimes bound the live heap itself.
func applyMemoryLimit(cfg config.Config, log *slog.Logger) int64 {
	n, auto, _ := cfg.MemoryLimitBytes() // validated by Run
	if auto {
		if v := os.Getenv("GOMEMLIMIT"); v != "" {
			cur := debug.SetMemoryLimit(-1)
			log.Info("pbx: memory limit from GOMEMLIMIT", "limit_mib", cur>>20)
			return cur
		}
		total := availableMemory()
		if total <= 0 {
			log.Warn("pbx: memory limit: could not tell how much memory the machine has; none set (use --memory-limit)")
			return 0
		}
		n = max(total/2, config.MinMemoryLimit)
	}
	if n == 0 {
		debug.SetMemoryLimit(1<<63 - 1) // off
		return 0
	}
	debug.SetMemoryLimit(n)
	log.Info("pbx: memory limit", "limit_mib", n>>20, "auto", auto)
	return n
}

// availableMemory is the physical memory, or the cgroup v2 limit when
// that is lower; 0 when neither can be read.
func availableMemory() int64 {
	var total int64
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				if err == nil {
					total = kb << 10
				}
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 && (total == 0 || v < total) {
			total = v
		}
	}
	return total
}

// startPprof serves net/http/pprof on addr, which config validation has
// already confined to loopback (profiles reveal internals and cost CPU to
// make; they must not be reachable from the network). It returns a
// function that stops the listener.
func startPprof(addr string, log *slog.Logger) (func(), error) {
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		// Checked again here so no caller can bypass Validate.
		return nil, fmt.Errorf("pbx: pprof-listen %s: not a loopback address", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pbx: listen pprof-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pbx: pprof listener stopped", "err", err)
		}
	}()
	log.Warn("pbx: serving Go profiles; turn --pprof-listen off when done", "addr", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
