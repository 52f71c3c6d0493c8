// Command mediaload measures sekisho's media relay (internal/media) on this
// machine. It creates a Relay in this process on 127.0.0.1, opens -calls
// sessions, and gives each two fake phones (UDP sockets on 127.0.0.2 and
// 127.0.0.3) that send G.711-sized RTP through the relay both ways at -pps
// packets per second for -duration. Then it reports what arrived: loss,
// the jitter the path added, and the CPU the process used.
//
// Everything stays on loopback, and every loop is bounded in time: the
// senders stop after -duration, the receivers after a fixed drain. The
// addresses can be moved (-relay-ip, -caller-ip, -callee-ip) and the phones
// given fixed ports (-phone-port), so that a run keeps to an address and
// port range of its own (bench/run.sh does).
//
// The CPU figure is the whole process (getrusage: user + system), so it
// includes the fake phones, which make as many system calls as the relay
// itself; read it as an upper bound on the relay's cost.
//
// Usage:
//
//	go run ./bench/mediaload -calls 200 -duration 10s
//	go run ./bench/mediaload -header; go run ./bench/mediaload -calls 200 -row
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/rtp"

	"github.com/sekisho/sekisho/internal/media"
)

// The relay's and the phones' loopback addresses; flags may change them.
var (
	relayIP  = netip.MustParseAddr("127.0.0.1")
	callerIP = netip.MustParseAddr("127.0.0.2")
	calleeIP = netip.MustParseAddr("127.0.0.3")
)

// drain is how long receivers keep reading after the senders stop.
const drain = 500 * time.Millisecond

// options are the command-line flags.
type options struct {
	calls    int
	duration time.Duration
	pps      int
	payload  int
	portMin  int
	portMax  int
	// phonePort, when not 0, is the first of -calls consecutive ports the
	// phones bind (call i's phones on port phonePort+i of the caller and
	// callee addresses); 0 lets the system choose.
	phonePort int
	row       bool
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mediaload:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("mediaload", flag.ContinueOnError)
	var o options
	var ports string
	var header bool
	fs.IntVar(&o.calls, "calls", 100, "concurrent calls (sessions), each with two phones")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long the phones send")
	fs.IntVar(&o.pps, "pps", 50, "packets per second each phone sends (50 = 20 ms)")
	fs.IntVar(&o.payload, "payload", 160, "RTP payload bytes (160 = 20 ms of G.711; packets are 12 bytes more)")
	fs.StringVar(&ports, "ports", "20000-29999", "relay port range MIN-MAX on -relay-ip (4 ports per call)")
	fs.IntVar(&o.phonePort, "phone-port", 0, "first of -calls consecutive ports the phones bind on their addresses (0: any free port)")
	addrFlag(fs, &relayIP, "relay-ip", "loopback address the relay binds")
	addrFlag(fs, &callerIP, "caller-ip", "loopback address of the calling phones")
	addrFlag(fs, &calleeIP, "callee-ip", "loopback address of the called phones")
	fs.BoolVar(&o.row, "row", false, "print one markdown table row instead of a report")
	fs.BoolVar(&header, "header", false, "print the markdown table header and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if header {
		fmt.Fprintln(out, tableHeader)
		return nil
	}
	lo, hi, ok := strings.Cut(ports, "-")
	var err1, err2 error
	o.portMin, err1 = strconv.Atoi(lo)
	o.portMax, err2 = strconv.Atoi(hi)
	switch {
	case !ok || err1 != nil || err2 != nil:
		return fmt.Errorf("-ports %q: want MIN-MAX", ports)
	case o.calls < 1 || o.calls > 10000:
		return fmt.Errorf("-calls %d: want 1 to 10000", o.calls)
	case o.duration < time.Second || o.duration > 10*time.Minute:
		return fmt.Errorf("-duration %v: want 1s to 10m", o.duration)
	case o.pps < 1 || o.pps > 1000:
		return fmt.Errorf("-pps %d: want 1 to 1000", o.pps)
	case o.payload < 8 || o.payload > 1400:
		return fmt.Errorf("-payload %d: want 8 (the send timestamp) to 1400", o.payload)
	case o.phonePort != 0 && (o.phonePort < 1024 || o.phonePort+o.calls-1 > 65535):
		return fmt.Errorf("-phone-port %d: want 1024 to %d for %d calls", o.phonePort, 65536-o.calls, o.calls)
	case (o.portMax-o.portMin+1)/4 < o.calls:
		return fmt.Errorf("-ports %s holds %d calls, fewer than -calls %d", ports, (o.portMax-o.portMin+1)/4, o.calls)
	}
	res, err := load(o)
	if err != nil {
		return err
	}
	if o.row {
		fmt.Fprintln(out, res.row())
	} else {
		res.report(out)
	}
	return nil
}

// addrFlag defines flag NAME, which sets *addr to an IPv4 loopback address.
func addrFlag(fs *flag.FlagSet, addr *netip.Addr, name, usage string) {
	fs.Func(name, usage+" (default "+addr.String()+")", func(v string) error {
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() || !a.IsLoopback() {
			return errors.New("want an IPv4 loopback address such as 127.0.0.2")
		}
		*addr = a
		return nil
	})
}

// phone is one fake phone: it sends to its side of a session and receives
// what the other phone sent.
type phone struct {
	conn  *net.UDPConn
	dst   netip.AddrPort // the relay's port for this phone's side
	ssrc  uint32
	sent  atomic.Uint64
	recvd atomic.Uint64
	hist  histogram // owned by the receiving goroutine until it ends
}

// result is what one run measured.
type result struct {
	o            options
	sent, recvd  uint64
	target       uint64
	relayed      uint64
	dropped      uint64
	hist         histogram
	cpu          time.Duration // process user + system CPU while sending
	wall         time.Duration // time the phones sent
	sessionsOpen int
}

func load(o options) (*result, error) {
	relay, err := media.New(media.Config{
		BindIP:    net.IP(relayIP.AsSlice()),
		Advertise: net.IP(relayIP.AsSlice()),
		PortMin:   o.portMin,
		PortMax:   o.portMax,
		Log:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, err
	}
	defer relay.Close()

	sessions := make([]*media.Session, 0, o.calls)
	phones := make([][2]*phone, 0, o.calls)
	defer func() {
		for _, pp := range phones {
			pp[0].conn.Close()
			pp[1].conn.Close()
		}
	}()
	for range o.calls {
		s, err := relay.Open(nil)
		if err != nil {
			return nil, fmt.Errorf("opening session %d: %w", len(sessions)+1, err)
		}
		sessions = append(sessions, s)
		var pp [2]*phone
		port := 0
		if o.phonePort != 0 {
			port = o.phonePort + len(phones)
		}
		for side, ip := range []netip.Addr{callerIP, calleeIP} {
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
			if err != nil {
				return nil, err
			}
			pp[side] = &phone{
				conn: c,
				dst:  netip.AddrPortFrom(relayIP, uint16(s.Port(media.Side(side)))),
				ssrc: rand.Uint32(),
			}
			s.SetPeer(media.Side(side), c.LocalAddr().(*net.UDPAddr).AddrPort())
		}
		phones = append(phones, pp)
	}

	start := time.Now()
	var receivers sync.WaitGroup
	for _, pp := range phones {
		for _, p := range pp {
			receivers.Add(1)
			go func() {
				defer receivers.Done()
				p.receive(start, o.payload)
			}()
		}
	}

	interval := time.Second / time.Duration(o.pps)
	stop := make(chan struct{})
	var senders sync.WaitGroup
	cpu0 := processCPU()
	t0 := time.Now()
	for _, pp := range phones {
		senders.Add(1)
		go func() {
			defer senders.Done()
			sendCall(pp, start, interval, o.payload, stop)
		}()
	}
	time.Sleep(o.duration)
	close(stop)
	senders.Wait()
	wall := time.Since(t0)
	cpu := processCPU() - cpu0

	time.Sleep(drain)
	for _, pp := range phones {
		pp[0].conn.Close()
		pp[1].conn.Close()
	}
	receivers.Wait()

	res := &result{
		o:            o,
		cpu:          cpu,
		wall:         wall,
		target:       uint64(2 * o.calls * o.pps * int(o.duration/time.Millisecond) / 1000),
		sessionsOpen: relay.Active(),
	}
	for _, pp := range phones {
		for _, p := range pp {
			res.sent += p.sent.Load()
			res.recvd += p.recvd.Load()
			res.hist.merge(&p.hist)
		}
	}
	for _, s := range sessions {
		st := s.Stats()
		res.relayed += st.AtoB + st.BtoA
		res.dropped += st.Dropped
	}
	return res, nil
}

// sendCall paces one call's two phones: a packet from each every interval,
// starting at a random phase so that the calls do not send in lockstep.
func sendCall(pp [2]*phone, start time.Time, interval time.Duration, payload int, stop <-chan struct{}) {
	select {
	case <-time.After(rand.N(interval)):
	case <-stop:
		return
	}
	var bufs [2][]byte
	for i := range bufs {
		bufs[i] = make([]byte, 12+payload)
		for j := 12 + 8; j < len(bufs[i]); j++ {
			bufs[i][j] = 0xff // G.711 mu-law silence
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for seq := uint16(rand.Uint32()); ; seq++ {
		for i, p := range pp {
			h := rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq,
				Timestamp: uint32(seq) * uint32(payload), SSRC: p.ssrc}
			if _, err := h.MarshalTo(bufs[i]); err != nil {
				panic(err) // the buffer always holds the 12-byte header
			}
			binary.BigEndian.PutUint64(bufs[i][12:], uint64(time.Since(start)))
			if _, err := p.conn.WriteToUDPAddrPort(bufs[i], p.dst); err == nil {
				p.sent.Add(1)
			}
		}
		select {
		case <-t.C:
		case <-stop:
			return
		}
	}
}

// receive reads until the socket is closed, counting packets and the
// deviation between consecutive packets' transit times (RFC 3550 section
// 6.4.1, D(i,j)): the jitter the path added, whatever the sender's pacing.
func (p *phone) receive(start time.Time, payload int) {
	buf := make([]byte, 2048)
	var prev time.Duration
	first := true
	for {
		n, _, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n != 12+payload {
			continue
		}
		transit := time.Since(start) - time.Duration(binary.BigEndian.Uint64(buf[12:]))
		p.recvd.Add(1)
		if !first {
			d := transit - prev
			if d < 0 {
				d = -d
			}
			p.hist.add(d)
		}
		prev, first = transit, false
	}
}

// histogram counts durations: 10 µs buckets below 10 ms, 1 ms buckets up
// to 1 s, and one bucket beyond.
type histogram struct {
	b [2001]uint32
	n uint64
}

func bucket(d time.Duration) int {
	us := int(d / time.Microsecond)
	if us < 10000 {
		return us / 10
	}
	return min(1000+(us-10000)/1000, 2000)
}

// upper returns the upper bound of bucket i.
func upper(i int) time.Duration {
	if i < 1000 {
		return time.Duration(i+1) * 10 * time.Microsecond
	}
	return 10*time.Millisecond + time.Duration(i-999)*time.Millisecond
}

func (h *histogram) add(d time.Duration) { h.b[bucket(d)]++; h.n++ }

func (h *histogram) merge(o *histogram) {
	for i, c := range o.b {
		h.b[i] += c
	}
	h.n += o.n
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	want := uint64(q*float64(h.n) + 0.5)
	var seen uint64
	for i, c := range h.b {
		seen += uint64(c)
		if seen >= want && seen > 0 {
			return upper(i)
		}
	}
	return upper(len(h.b) - 1)
}

// processCPU returns the user plus system CPU time of this process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const tableHeader = "| calls | sent | received | loss % | sent of target % | relayed | relay dropped | jitter p50 ms | jitter p99 ms | process CPU % | process CPU s per 10k pkt/s |\n" +
	"|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"

func (r *result) lossPct() float64 {
	if r.sent == 0 {
		return 100
	}
	return 100 * float64(r.sent-min(r.recvd, r.sent)) / float64(r.sent)
}

// cpuPer10k is the CPU the process spent per 10,000 relayed packets per
// second: CPU seconds per wall second, over relayed packets per second /
// 10,000. It equals CPU seconds per 10,000 relayed packets.
func (r *result) cpuPer10k() float64 {
	if r.relayed == 0 {
		return 0
	}
	return r.cpu.Seconds() * 10000 / float64(r.relayed)
}

func ms(d time.Duration) string { return strconv.FormatFloat(d.Seconds()*1000, 'f', 2, 64) }

func (r *result) row() string {
	return fmt.Sprintf("| %d | %d | %d | %.3f | %.1f | %d | %d | %s | %s | %.0f | %.3f |",
		r.o.calls, r.sent, r.recvd, r.lossPct(), 100*float64(r.sent)/float64(max(r.target, 1)),
		r.relayed, r.dropped, ms(r.hist.quantile(0.5)), ms(r.hist.quantile(0.99)),
		100*r.cpu.Seconds()/r.wall.Seconds(), r.cpuPer10k())
}

func (r *result) report(out io.Writer) {
	fmt.Fprintf(out, "calls (sessions open):   %d (%d)\n", r.o.calls, r.sessionsOpen)
	fmt.Fprintf(out, "phones sent:             %d packets of %d bytes in %.1f s (%.1f%% of the %d the pacing asked for)\n",
		r.sent, 12+r.o.payload, r.wall.Seconds(), 100*float64(r.sent)/float64(max(r.target, 1)), r.target)
	fmt.Fprintf(out, "phones received:         %d (loss %.3f%%)\n", r.recvd, r.lossPct())
	fmt.Fprintf(out, "relay relayed, dropped:  %d, %d\n", r.relayed, r.dropped)
	fmt.Fprintf(out, "jitter added p50, p99:   %s ms, %s ms (deviation of consecutive transit times)\n",
		ms(r.hist.quantile(0.5)), ms(r.hist.quantile(0.99)))
	fmt.Fprintf(out, "process CPU:             %.2f s, %.0f%% of one core; %.3f s per 10k relayed packets/s (includes the phones)\n",
		r.cpu.Seconds(), 100*r.cpu.Seconds()/r.wall.Seconds(), r.cpuPer10k())
}
