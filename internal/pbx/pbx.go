// Package pbx wires sekisho together: configuration, store, SIP
// transport (sipgo), registrar, the call chain and the B2BUA. Only cmd/
// imports it. Everything here is assembly; decisions live in the stage
// packages and the one order they run in is in chain.go.
package pbx

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/alert"
	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/auth"
	"github.com/sekisho/sekisho/internal/b2bua"
	"github.com/sekisho/sekisho/internal/cdr"
	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/config"
	"github.com/sekisho/sekisho/internal/console"
	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/dialplan"
	"github.com/sekisho/sekisho/internal/digest"
	"github.com/sekisho/sekisho/internal/fleet"
	"github.com/sekisho/sekisho/internal/guard"
	"github.com/sekisho/sekisho/internal/limits"
	"github.com/sekisho/sekisho/internal/media"
	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/registrar"
	"github.com/sekisho/sekisho/internal/retrans"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/trunk"
	"github.com/sekisho/sekisho/internal/vault"
	"github.com/sekisho/sekisho/internal/voicemail"
)

// Server is a running PBX.
type Server struct {
	cfg    config.Config
	log    *slog.Logger
	store  *store.Store
	vault  *vault.Vault
	trunks *trunk.Directory
	reg    *registrar.Registrar
	auth   *auth.Authenticator
	plan   *dialplan.Plan
	chain  *chain.Chain
	b2b    *b2bua.B2BUA
	cdrs   *cdr.Writer
	book   *policy.Book
	audit  *audit.Recorder
	mail   *voicemail.Service
	// host and port are the advertised SIP address; udpLocal the UDP
	// listener's, which requests to phones are sent from.
	host     string
	port     int
	udpLocal *net.UDPAddr
	guard    *guard.Guard
	// phoneNets are where phones may come from (--phone-networks).
	phoneNets []netip.Prefix
	// sources remembers the (extension, address) pairs already in the
	// store, "201|192.0.2.7" -> struct{}.
	sources sync.Map
	keeper  *limits.Keeper
	alerts  *alert.Notifier
	fleet   *fleet.Link // nil when the unit has not joined a fleet
	// answers holds the final responses to REGISTERs over UDP, so their
	// transactions can end at once (see package retrans).
	answers *retrans.Cache
	// registering counts REGISTERs being handled; shed those answered
	// 503 because too many were (see door).
	registering atomic.Int64
	shed        atomic.Uint64
	shedLogged  atomic.Uint64 // shed as last logged by countDrops

	ua     *sipgo.UserAgent
	sip    *sipgo.Server
	client *sipgo.Client

	// attempts counts INVITEs between chain start and final response, so
	// shutdown can wait for them too.
	attempts sync.WaitGroup
	draining chan struct{}
}

// Run starts the PBX with cfg and serves until ctx is cancelled, then shuts
// down gracefully: no new calls, calls in progress get cfg.Grace to end,
// records are flushed. It returns nil after a clean shutdown.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if !dialplan.Supported(cfg.Region) {
		// Fail closed: without the region's habits sekisho would not
		// know its emergency numbers or its international prefix.
		return fmt.Errorf("config: region: %s: sekisho knows the dialling habits of %s only; set one of them", cfg.Region, strings.Join(dialplan.Regions(), ", "))
	}
	adminNets, _ := config.ParseNetworks(cfg.AdminNetworks) // validated above
	if cfg.Console != "" {
		if err := console.CheckListen(cfg.Console, adminNets, []string{cfg.SIPUDP, cfg.SIPTCP, cfg.SIPTLS}); err != nil {
			return err
		}
	}
	collectors, err := audit.ParseCollectors(cfg.Syslog)
	if err != nil {
		return fmt.Errorf("config: syslog: %w", err)
	}
	var syslogRoots *x509.CertPool
	if cfg.SyslogCA != "" {
		pem, err := os.ReadFile(cfg.SyslogCA)
		if err != nil {
			return fmt.Errorf("config: syslog-ca: %w", err)
		}
		syslogRoots = x509.NewCertPool()
		if !syslogRoots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("config: syslog-ca: %s holds no PEM certificate", cfg.SyslogCA)
		}
	}
	applyMemoryLimit(cfg, log)
	if cfg.PprofListen != "" {
		stopPprof, err := startPprof(cfg.PprofListen, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	st, err := store.Open(ctx, cfg.Data)
	if err != nil {
		return err
	}
	defer st.Close()
	if n, err := st.MarkInterrupted(ctx, time.Now()); err != nil {
		return err
	} else if n > 0 {
		log.Warn("pbx: call records left active by a previous run marked interrupted", "count", n)
	}

	// The CLI hashes new passwords for the realm the server uses.
	if old, err := st.Setting(ctx, store.SettingRealm, cfg.Realm); err != nil {
		return err
	} else if old != cfg.Realm {
		log.Warn("pbx: realm changed; extensions hashed for the old realm cannot authenticate until `sekisho ext passwd`", "old", old, "new", cfg.Realm)
	}
	if err := st.SetSetting(ctx, store.SettingRealm, cfg.Realm); err != nil {
		return err
	}
	if err := st.SetSetting(ctx, store.SettingRegion, cfg.Region); err != nil {
		return err
	}
	if err := st.SetSetting(ctx, store.SettingOutsidePrefix, cfg.OutsidePrefix); err != nil {
		return err
	}

	v, err := vault.Open(cfg.Data)
	if err != nil {
		return err
	}
	s := &Server{cfg: cfg, log: log, store: st, vault: v, draining: make(chan struct{})}
	s.trunks = trunk.NewDirectory(st, v, log)
	if _, err := s.trunks.Reload(ctx); err != nil {
		return err
	}
	ver, err := digest.New(cfg.Realm, 0)
	if err != nil {
		return err
	}
	s.reg = registrar.New(registrar.Limits{})
	s.plan = dialplan.New(cfg.Region).WithOutsidePrefix(cfg.OutsidePrefix)
	s.book = policy.NewBook(st)
	if err := s.book.Reload(ctx); err != nil {
		return err
	}
	s.keeper = limits.NewKeeper(s.book, time.Duration(cfg.MaxCallDuration), nil)
	// Restarting must not reset the limits: count today's calls again.
	day, err := st.ListCDRs(ctx, store.CDRFilter{Since: time.Now().Add(-24 * time.Hour), Direction: "outbound", Limit: 1 << 20})
	if err != nil {
		return err
	}
	s.keeper.Load(day)
	hooks, _ := cfg.Webhooks() // validated above
	key, err := alert.LoadKey(cfg.Data)
	if err != nil {
		return err
	}
	s.alerts = alert.New(st, hooks, key, cfg.Realm, log)
	scanners, err := loadScanners(cfg.Data)
	if err != nil {
		return fmt.Errorf("pbx: scanner list: %w", err)
	}
	gcfg := guard.DefaultConfig()
	gcfg.BanAfter, gcfg.Window, gcfg.BanTime = cfg.BanAfter, time.Duration(cfg.BanWindow), time.Duration(cfg.BanTime)
	gcfg.ScannerBan = cfg.ScannerBan
	gcfg.Rate, gcfg.Burst = float64(cfg.SourceRate), float64(4*cfg.SourceRate)
	gcfg.TrunkRate, gcfg.TrunkBurst = float64(40*cfg.SourceRate), float64(160*cfg.SourceRate)
	akey, err := audit.LoadKey(cfg.Data)
	if err != nil {
		return err
	}
	s.audit = audit.New(audit.Config{CheckpointEvery: time.Duration(cfg.AuditCheckpoint)}, st, akey, s.alerts, log)
	gcfg.OnBan = func(b store.Ban) {
		s.audit.Record(audit.Event{Type: audit.Ban, Source: b.Address, Target: "pbx",
			Detail: fmt.Sprintf("until %s, offence %d, by %s: %s", b.Until.UTC().Format(time.RFC3339), b.Offences, b.By, b.Reason)})
	}
	if s.guard, err = guard.New(ctx, gcfg, st, s.alerts, s.trunks.IsPeer, scanners, log); err != nil {
		return err
	}
	nets, _ := cfg.Networks() // validated above
	s.phoneNets = nets
	// Extension lookups come from memory, emptied within 250 ms of any
	// change to the extensions table (see auth.Cache).
	s.auth = auth.New(ver, auth.NewCache(st, auth.DefaultRecheck), auth.Config{
		Offer: credential.Offer(cfg.DigestOffer), PhoneNetworks: nets, TLSOutside: cfg.TLSOutside,
		OnFailure: func(ctx context.Context, src netip.Addr, user, reason string) {
			s.log.Info("auth: failed", "source", src, "user", user, "reason", reason)
			s.audit.Note(audit.Event{Type: audit.AuthFailure, Source: src.String(), Detail: reason, Sample: user})
			s.guard.Failure(ctx, src, user)
		},
	}, log)
	if err := s.joinFleet(); err != nil {
		return err
	}
	s.chain = newChain(s)
	s.cdrs = cdr.NewWriter(st, log)

	// Listen first: the advertised address may come from the socket.
	var udp net.PacketConn
	var tcp net.Listener
	if cfg.SIPUDP != "" {
		if udp, err = listenUDP(ctx, cfg.SIPUDP, cfg.UDPBuffer); err != nil {
			return fmt.Errorf("pbx: listen sip-udp %s: %w", cfg.SIPUDP, err)
		}
		s.answers = retrans.New(retrans.DefaultTTL, retrans.DefaultMaxBytes)
		udp = guardedConn{PacketConn: udp, g: s.guard, answers: s.answers}
	}
	if cfg.SIPTCP != "" {
		if tcp, err = net.Listen("tcp", cfg.SIPTCP); err != nil {
			if udp != nil {
				udp.Close()
			}
			return fmt.Errorf("pbx: listen sip-tcp %s: %w", cfg.SIPTCP, err)
		}
		tcp = guardedListener{Listener: tcp, g: s.guard, idle: tcpIdle}
	}
	host, port := advertise(cfg.Advertise, udp, tcp)
	var tlsL net.Listener
	if cfg.SIPTLS != "" {
		cert, err := serverCert(cfg.Data, cfg.TLSCert, cfg.TLSKey, host)
		if err != nil {
			return err
		}
		raw, err := net.Listen("tcp", cfg.SIPTLS)
		if err != nil {
			return fmt.Errorf("pbx: listen sip-tls %s: %w", cfg.SIPTLS, err)
		}
		tlsL = tls.NewListener(guardedListener{Listener: raw, g: s.guard, idle: tcpIdle}, tlsConfig(cert))
	}

	sip.SetDefaultLogger(log.With("component", "sipgo"))
	s.ua, err = sipgo.NewUA(sipgo.WithUserAgent("sekisho"), sipgo.WithUserAgentHostname(host))
	if err != nil {
		return fmt.Errorf("pbx: sip user agent: %w", err)
	}
	defer s.ua.Close()
	s.sip, err = sipgo.NewServer(s.ua, sipgo.WithServerLogger(log.With("component", "sipgo")))
	if err != nil {
		return fmt.Errorf("pbx: sip server: %w", err)
	}
	s.client, err = sipgo.NewClient(s.ua, sipgo.WithClientHostname(host), sipgo.WithClientLogger(log.With("component", "sipgo")))
	if err != nil {
		return fmt.Errorf("pbx: sip client: %w", err)
	}
	relay, mediaAddr, err := newRelay(cfg, udp, host, log)
	if err != nil {
		return err
	}
	defer relay.Close()
	bcfg := b2bua.Config{
		Client: s.client, Host: host, Port: port,
		RingTimeout: time.Duration(cfg.RingTimeout), Log: log, Trunks: s.trunks,
		Media: relay, MediaAddr: mediaAddr, MaxOutbound: time.Duration(cfg.MaxCallDuration),
		Gate: s.gate, Place: s.place, Forward: s.forwardLeg,
	}
	if relay != nil {
		switch cfg.HoldMusic {
		case "off":
		case "":
			bcfg.HoldMusic = media.HoldTone()
		default:
			if bcfg.HoldMusic, err = media.LoadWAV(cfg.HoldMusic); err != nil {
				return fmt.Errorf("config: hold-music: %w (convert it, use \"\" for the built-in tone, or off)", err)
			}
		}
	}
	if udp != nil {
		bcfg.UDPLocal = udp.LocalAddr().(*net.UDPAddr)
	}
	s.host, s.port, s.udpLocal = host, port, bcfg.UDPLocal
	s.mail = &voicemail.Service{Store: st, Dir: filepath.Join(cfg.Data, "voicemail"), Log: log.With("component", "voicemail"),
		Audit: s.audit, Notify: s.mwi}
	bcfg.Voicemail = mailboxes{s.mail}
	s.b2b = b2bua.New(bcfg)
	regs := trunk.NewRegistrations(s.trunks, s.client, st, log, host, port, bcfg.UDPLocal)
	defer regs.Close()
	s.routes()

	if cfg.Console != "" {
		stopConsole, err := s.startConsole(adminNets)
		if err != nil {
			return err
		}
		defer stopConsole()
	}

	cdrCtx, stopCDR := context.WithCancel(context.Background())
	cdrDone := make(chan struct{})
	go func() { s.cdrs.Run(cdrCtx); close(cdrDone) }()

	serveErr := make(chan error, 2)
	if udp != nil {
		go func() { serveErr <- s.sip.ServeUDP(udp) }()
	}
	if tcp != nil {
		go func() { serveErr <- s.sip.ServeTCP(tcp) }()
	}
	if tlsL != nil {
		go func() { serveErr <- s.sip.ServeTLS(tlsL) }()
	}
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	go s.sweep(sweepCtx)
	go s.guard.Run(sweepCtx) // writes bans down, retrying while the store is busy
	if s.fleet != nil {
		go s.fleet.Run(sweepCtx)
	}
	regs.Sync(sweepCtx)
	go s.watchTrunks(sweepCtx, regs)
	go every(sweepCtx, trunkReload, func() {
		// Policy edited with the CLI (profiles, limits, rates, a lifted
		// freeze) reaches the running server at the same pace as trunks.
		if err := s.book.Reload(sweepCtx); err != nil && sweepCtx.Err() == nil {
			log.Error("pbx: policy reload failed; the previous policy stays in force", "err", err)
		}
		// Bans added or lifted with the CLI.
		if err := s.guard.Reload(sweepCtx); err != nil && sweepCtx.Err() == nil {
			log.Error("pbx: ban reload failed; the previous bans stay in force", "err", err)
		}
	})
	go s.alerts.Run(sweepCtx)
	auditCtx, stopAudit := context.WithCancel(context.Background())
	auditDone := make(chan struct{})
	go func() { s.audit.Run(auditCtx); close(auditDone) }()
	go every(sweepCtx, time.Hour, func() { s.prune(sweepCtx) })
	go every(sweepCtx, 5*time.Second, s.countDrops)
	for _, c := range collectors {
		go audit.NewExporter(c, st, s.audit, akey.Public().(ed25519.PublicKey), syslogRoots, log).Run(sweepCtx)
	}

	log.Info("sekisho ready", "udp", addrOf(udp), "tcp", addrOfL(tcp), "tls", addrOfL(tlsL), "advertise", net.JoinHostPort(host, strconv.Itoa(port)),
		"region", cfg.Region, "data", cfg.Data, "chain", s.chain.Names())

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("pbx: sip listener stopped: %w", err)
	}

	// Shutdown: refuse new calls, let calls in progress finish within the
	// grace period, hang up the rest, then flush every record.
	log.Info("pbx: shutting down", "grace", time.Duration(cfg.Grace).String(), "calls", s.b2b.Active())
	close(s.draining)
	graceCtx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.Grace))
	waitAttempts(graceCtx, &s.attempts)
	ended := s.b2b.Close(graceCtx)
	cancel()
	// Attempts that were ringing when grace ran out end with 487/480
	// from their own ring timers; give them a bounded moment.
	endCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	waitAttempts(endCtx, &s.attempts)
	cancel()
	stopSweep()
	if udp != nil {
		udp.Close()
	}
	if tcp != nil {
		tcp.Close()
	}
	if tlsL != nil {
		tlsL.Close()
	}
	stopCDR()
	<-cdrDone
	flushCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	left := s.cdrs.Flush(flushCtx)
	if n := s.guard.Flush(flushCtx); n > 0 {
		runErr = errors.Join(runErr, fmt.Errorf("pbx: %d bans could not be stored; they end with this run (see errors above)", n))
	}
	s.countDrops()
	stopAudit()
	<-auditDone
	if n := s.audit.Flush(flushCtx); n > 0 {
		runErr = errors.Join(runErr, fmt.Errorf("pbx: %d evidence records could not be written (see errors above)", n))
	}
	cancel()
	if left > 0 {
		return errors.Join(runErr, fmt.Errorf("pbx: %d call record writes could not be committed (see errors above)", left))
	}
	hits := uint64(0)
	if s.answers != nil {
		_, _, hits = s.answers.Stats()
	}
	log.Info("pbx: stopped", "calls_hung_up", ended, "guard_dropped", s.guard.Dropped(), "register_shed", s.shed.Load(), "retransmissions_answered", hits)
	return runErr
}

// newRelay starts the media relay on the SIP UDP listener's address (all
// addresses if that is unspecified) and advertises the SIP host.
func newRelay(cfg config.Config, udp net.PacketConn, host string, log *slog.Logger) (*media.Relay, netip.Addr, error) {
	lo, hi, err := cfg.RTPRange()
	if err != nil {
		return nil, netip.Addr{}, err
	}
	adv, err := netip.ParseAddr(host)
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("pbx: advertise %q: the media relay needs an IP address to put in SDP: set --advertise to this host's IP", host)
	}
	bind := net.IPv4zero
	if udp != nil {
		if ip := udp.LocalAddr().(*net.UDPAddr).IP; !ip.IsUnspecified() {
			bind = ip
		}
	}
	relay, err := media.New(media.Config{
		BindIP: bind, Advertise: net.IP(adv.AsSlice()), PortMin: lo, PortMax: hi,
		IdleTimeout: time.Duration(cfg.MediaTimeout), Log: log.With("component", "media"),
	})
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("pbx: media relay: %w", err)
	}
	return relay, adv, nil
}

// trunkReload is how often trunk changes made with the CLI are picked up.
const trunkReload = 2 * time.Second

// watchTrunks reloads the trunk directory so that `sekisho trunk add/del`
// takes effect without a restart, and keeps carrier registrations in step.
func (s *Server) watchTrunks(ctx context.Context, regs *trunk.Registrations) {
	every(ctx, trunkReload, func() {
		changed, err := s.trunks.Reload(ctx)
		if err != nil {
			s.log.Error("pbx: trunk reload failed", "err", err)
			return
		}
		if changed {
			regs.Sync(ctx)
		}
	})
}

// every runs fn each period until ctx is done.
func every(ctx context.Context, period time.Duration, fn func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

func waitAttempts(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// countDrops moves the guard's drop counts into the evidence log: how
// often each banned or throttled source kept sending, exactly.
func (s *Server) countDrops() {
	now := time.Now()
	if n := s.shed.Load(); n > 0 {
		if prev := s.shedLogged.Swap(n); n > prev {
			s.log.Warn("pbx: overloaded: REGISTERs answered 503 Retry-After instead of queued", "count", n-prev, "since_start", n)
		}
	}
	for k, n := range s.guard.DrainDrops() {
		src, why := k.Addr.String(), "over its rate"
		if !k.Addr.IsValid() {
			src = "*"
		}
		if k.Banned {
			why = "banned"
		}
		s.audit.Add(audit.Event{Type: audit.Dropped, Source: src, Target: why, At: now, Detail: "packets dropped before parsing"}, int64(n))
	}
}

// prune ages the evidence log out by --audit-keep and --audit-max-mb,
// into daily summaries.
func (s *Server) prune(ctx context.Context) {
	n, err := s.audit.Prune(ctx, s.store, time.Duration(s.cfg.AuditKeep), int64(s.cfg.AuditMaxMB)<<20)
	if err != nil {
		s.log.Error("audit: prune failed", "err", err)
	} else if n > 0 {
		s.log.Info("audit: pruned into daily summaries", "up_to", n)
	}
}

// sweep drops expired registrations once a minute.
func (s *Server) sweep(ctx context.Context) { every(ctx, time.Minute, s.reg.Sweep) }

func (s *Server) isDraining() bool {
	select {
	case <-s.draining:
		return true
	default:
		return false
	}
}

// advertise picks the host and port to put in our URIs.
func advertise(configured string, udp net.PacketConn, tcp net.Listener) (string, int) {
	var ip net.IP
	port := 5060
	if udp != nil {
		a := udp.LocalAddr().(*net.UDPAddr)
		ip, port = a.IP, a.Port
	} else if tcp != nil {
		a := tcp.Addr().(*net.TCPAddr)
		ip, port = a.IP, a.Port
	}
	if configured != "" {
		return configured, port
	}
	if ip != nil && !ip.IsUnspecified() {
		return ip.String(), port
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
				return n.IP.String(), port
			}
		}
	}
	return "127.0.0.1", port
}

func addrOf(c net.PacketConn) string {
	if c == nil {
		return ""
	}
	return c.LocalAddr().String()
}

func addrOfL(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}
