// Package config is sekisho's server configuration: defaults, an optional
// JSON file, and command-line flags that override any key. Validation
// names the field and says how to fix it.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the `sekisho serve` configuration. JSON keys match flag names.
type Config struct {
	Data            string   `json:"data"`
	SIPUDP          string   `json:"sip-udp"`
	SIPTCP          string   `json:"sip-tcp"`
	SIPTLS          string   `json:"sip-tls"`
	TLSCert         string   `json:"tls-cert"`
	TLSKey          string   `json:"tls-key"`
	Advertise       string   `json:"advertise"`
	RTPPorts        string   `json:"rtp-ports"`
	Region          string   `json:"region"`
	OutsidePrefix   string   `json:"outside-prefix"`
	Realm           string   `json:"realm"`
	RingTimeout     Duration `json:"ring-timeout"`
	MediaTimeout    Duration `json:"media-timeout"`
	HoldMusic       string   `json:"hold-music"`
	MaxCallDuration Duration `json:"max-call-duration"`
	Grace           Duration `json:"grace"`
	UDPBuffer       int      `json:"udp-buffer"`
	LogLevel        string   `json:"log-level"`
	// MemoryLimit is the Go runtime's soft memory limit: "auto", "off"
	// or a size such as "1536MiB" or "2GiB". See MemoryLimitBytes.
	MemoryLimit string `json:"memory-limit"`
	// PprofListen is a loopback host:port serving net/http/pprof, for
	// profiling; "" (the default) serves nothing.
	PprofListen string `json:"pprof-listen"`
	// AlertWebhooks are URLs that every alert is POSTed to, comma-separated.
	AlertWebhooks string `json:"alert-webhooks"`

	// Intrusion prevention.
	PhoneNetworks string   `json:"phone-networks"`
	DigestOffer   string   `json:"digest-offer"`
	BanAfter      int      `json:"ban-after"`
	BanWindow     Duration `json:"ban-window"`
	BanTime       Duration `json:"ban-time"`
	ScannerBan    bool     `json:"scanner-ban"`
	SourceRate    int      `json:"source-rate"`
	TLSOutside    bool     `json:"tls-outside"`

	// Evidence export.
	Syslog          string   `json:"syslog"`
	SyslogCA        string   `json:"syslog-ca"`
	AuditCheckpoint Duration `json:"audit-checkpoint"`
	AuditKeep       Duration `json:"audit-keep"`
	AuditMaxMB      int      `json:"audit-max-mb"`

	// The console.
	Console       string `json:"console"`
	AdminNetworks string `json:"admin-networks"`
	Maintenance   bool   `json:"maintenance"`
	// The console's WireGuard interface: VPNListen is its UDP address
	// ("" for none), VPNNet the unit's tunnel address and prefix.
	VPNListen string `json:"vpn-listen"`
	VPNNet    string `json:"vpn-net"`
}

// Duration is a time.Duration written as "30s" in JSON.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`want a duration string such as "30s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf(`want a duration string such as "30s": %w`, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// DataEnv is the environment variable that sets the default data directory.
const DataEnv = "SEKISHO_DATA"

// DefaultData returns $SEKISHO_DATA or ./sekisho-data.
func DefaultData() string {
	if d := os.Getenv(DataEnv); d != "" {
		return d
	}
	return "./sekisho-data"
}

// Default returns the configuration used when no file or flag says
// otherwise: SIP on UDP and TCP port 5060 on all addresses, region JP.
func Default() Config {
	return Config{
		Data:            DefaultData(),
		SIPUDP:          "0.0.0.0:5060",
		SIPTCP:          "0.0.0.0:5060",
		SIPTLS:          "0.0.0.0:5061",
		RTPPorts:        "10000-20000",
		Region:          "JP",
		OutsidePrefix:   "0",
		Realm:           "sekisho",
		RingTimeout:     Duration(60 * time.Second),
		MediaTimeout:    Duration(60 * time.Second),
		MaxCallDuration: Duration(3 * time.Hour),
		Grace:           Duration(30 * time.Second),
		UDPBuffer:       16 << 20,
		LogLevel:        "info",
		MemoryLimit:     "auto",
		PhoneNetworks:   "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,127.0.0.0/8,fc00::/7,::1/128",
		DigestOffer:     "md5",
		BanAfter:        10,
		BanWindow:       Duration(10 * time.Minute),
		BanTime:         Duration(15 * time.Minute),
		ScannerBan:      true,
		SourceRate:      50,
		TLSOutside:      true,
		AuditCheckpoint: Duration(time.Minute),
		AuditKeep:       Duration(90 * 24 * time.Hour),
		AuditMaxMB:      256,
		Console:         "127.0.0.1:8080",
		VPNListen:       ":51820",
		VPNNet:          "10.77.0.1/24",
	}
}

// Bind registers a flag for every key on fs, writing into c.
func (c *Config) Bind(fs *flag.FlagSet) {
	fs.StringVar(&c.Data, "data", c.Data, "data directory (embedded SQLite store); default $"+DataEnv+" or ./sekisho-data")
	fs.StringVar(&c.SIPUDP, "sip-udp", c.SIPUDP, "SIP UDP listen address host:port (empty: no UDP)")
	fs.StringVar(&c.SIPTCP, "sip-tcp", c.SIPTCP, "SIP TCP listen address host:port (empty: no TCP)")
	fs.StringVar(&c.SIPTLS, "sip-tls", c.SIPTLS, "SIP over TLS listen address host:port (empty: no TLS)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate for SIP over TLS (default: DATA/tls.crt, made on first start)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key for --tls-cert")
	fs.StringVar(&c.Advertise, "advertise", c.Advertise, "host or IP to put in Contact and Via (default: the listen IP, or this host's first non-loopback IPv4)")
	fs.StringVar(&c.RTPPorts, "rtp-ports", c.RTPPorts, "RTP port range LOW-HIGH for relayed media")
	fs.StringVar(&c.Region, "region", c.Region, "ISO 3166 region whose dialling habits apply: JP, US, CA or GB")
	fs.StringVar(&c.OutsidePrefix, "outside-prefix", c.OutsidePrefix, "digits dialled before a public number to get an outside line (0 in Japan)")
	fs.StringVar(&c.Realm, "realm", c.Realm, "digest realm; changing it invalidates every extension's stored hashes")
	fs.Var((*durationFlag)(&c.RingTimeout), "ring-timeout", "how long a callee may ring before the caller gets 480")
	fs.StringVar(&c.HoldMusic, "hold-music", c.HoldMusic, "music on hold: a WAV file (8000 Hz mono 16-bit PCM), empty for the built-in tone, or off (the hold is passed to the other phone)")
	fs.Var((*durationFlag)(&c.MediaTimeout), "media-timeout", "hang up an answered call when no RTP or RTCP arrives from either side for this long (0: never)")
	fs.Var((*durationFlag)(&c.MaxCallDuration), "max-call-duration", "the PBX hangs up an answered outbound call after this long (a cap on what one stolen call can cost)")
	fs.Var((*durationFlag)(&c.Grace), "grace", "on SIGTERM, how long calls in progress may continue before they are hung up")
	fs.IntVar(&c.UDPBuffer, "udp-buffer", c.UDPBuffer, "UDP socket receive buffer in bytes")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.MemoryLimit, "memory-limit", c.MemoryLimit, "soft memory limit of the Go runtime: auto ($GOMEMLIMIT if set, else half of the machine's or the cgroup's memory), off, or a size such as 1536MiB or 2GiB")
	fs.StringVar(&c.PprofListen, "pprof-listen", c.PprofListen, "loopback host:port serving Go profiles (net/http/pprof) for performance work, such as 127.0.0.1:6060; empty: none")
	fs.StringVar(&c.PhoneNetworks, "phone-networks", c.PhoneNetworks, "CIDR prefixes phones may register and call from (an extension's own --networks overrides); others are refused like a wrong password")
	fs.StringVar(&c.DigestOffer, "digest-offer", c.DigestOffer, "digest algorithms every challenge offers: md5, sha256 or both (the same for every user, so a challenge reveals no extension)")
	fs.IntVar(&c.BanAfter, "ban-after", c.BanAfter, "failed authentications from one source within --ban-window that ban it")
	fs.Var((*durationFlag)(&c.BanWindow), "ban-window", "window in which failed authentications are counted")
	fs.Var((*durationFlag)(&c.BanTime), "ban-time", "first ban; it doubles for each further offence, up to 30 days")
	fs.BoolVar(&c.ScannerBan, "scanner-ban", c.ScannerBan, "ban a source on its first request from a known scanner User-Agent (DATA/scanners.txt)")
	fs.IntVar(&c.SourceRate, "source-rate", c.SourceRate, "requests a second one source may send (burst 4x); trunk peers get 40x")
	fs.BoolVar(&c.TLSOutside, "tls-outside", c.TLSOutside, "require TLS from phones outside --phone-networks (allowed by an extension's own --networks)")
	fs.StringVar(&c.Syslog, "syslog", c.Syslog, "syslog collectors that receive a copy of the evidence log: comma-separated udp://, tcp:// or tls:// HOST:PORT (RFC 5424)")
	fs.Var((*durationFlag)(&c.AuditCheckpoint), "audit-checkpoint", "sign a checkpoint of the evidence log this often while it grows")
	fs.Var((*durationFlag)(&c.AuditKeep), "audit-keep", "evidence records older than this are pruned into daily summaries (2160h = 90 days)")
	fs.IntVar(&c.AuditMaxMB, "audit-max-mb", c.AuditMaxMB, "prune the oldest evidence records into daily summaries while the log is larger than this")
	fs.StringVar(&c.Console, "console", c.Console, "console (web API) listen address: loopback, or an address in --admin-networks that SIP does not use; empty: no console")
	fs.StringVar(&c.AdminNetworks, "admin-networks", c.AdminNetworks, "CIDR prefixes besides loopback that may reach the console")
	fs.BoolVar(&c.Maintenance, "maintenance", c.Maintenance, "let the vendor's maintenance accounts log in to the console")
	fs.StringVar(&c.VPNListen, "vpn-listen", c.VPNListen, "UDP host:port of the console's WireGuard interface; the console answers inside it at https://VPN-NET-ADDRESS/ (empty: no VPN)")
	fs.StringVar(&c.VPNNet, "vpn-net", c.VPNNet, "the unit's address and prefix inside the console's VPN; peers get the next free addresses in it")
	fs.StringVar(&c.SyslogCA, "syslog-ca", c.SyslogCA, "PEM CA certificates trusted for tls:// collectors (default: the system's)")
	fs.StringVar(&c.AlertWebhooks, "alert-webhooks", c.AlertWebhooks, "comma-separated http(s) URLs that alerts (suspensions, freezes) are POSTed to, signed with DATA/webhook.key")
}

type durationFlag Duration

func (d *durationFlag) String() string { return time.Duration(*d).String() }
func (d *durationFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New(`want a duration such as "30s"`)
	}
	*d = durationFlag(v)
	return nil
}

// Load reads a JSON config file over c. Unknown keys are errors, so a typo
// is reported instead of silently ignored.
func (c *Config) Load(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return fmt.Errorf("config %s: field %q: want a %s", path, ute.Field, ute.Type)
		}
		return fmt.Errorf("config %s: %w (keys are the serve flag names, e.g. \"sip-udp\")", path, err)
	}
	return nil
}

// Validate checks every field and names the first bad one with its fix.
func (c *Config) Validate() error {
	if c.Data == "" {
		return errors.New("config: data: empty; set --data DIR or " + DataEnv)
	}
	if c.SIPUDP == "" && c.SIPTCP == "" {
		return errors.New("config: sip-udp and sip-tcp are both empty; set at least one listen address")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("config: tls-cert and tls-key: give both, or neither for a certificate made on first start")
	}
	for name, v := range map[string]string{"sip-udp": c.SIPUDP, "sip-tcp": c.SIPTCP, "sip-tls": c.SIPTLS} {
		if v == "" {
			continue
		}
		if _, _, err := SplitHostPort(v); err != nil {
			return fmt.Errorf("config: %s: %q: %v; want host:port such as 0.0.0.0:5060", name, v, err)
		}
	}
	if _, _, err := c.RTPRange(); err != nil {
		return err
	}
	if len(c.Region) != 2 || strings.ToUpper(c.Region) != c.Region {
		return fmt.Errorf("config: region: %q: want a two-letter upper-case ISO 3166 code such as JP", c.Region)
	}
	if len(c.OutsidePrefix) > 2 || strings.Trim(c.OutsidePrefix, "0123456789") != "" {
		return fmt.Errorf("config: outside-prefix: %q: want zero to two digits, such as 0", c.OutsidePrefix)
	}
	if c.Realm == "" || strings.ContainsAny(c.Realm, "\"\\\r\n") {
		return fmt.Errorf("config: realm: %q: want a non-empty name without quotes or backslashes", c.Realm)
	}
	if c.RingTimeout <= 0 {
		return errors.New("config: ring-timeout: must be positive, such as 60s")
	}
	if c.MaxCallDuration <= 0 {
		return errors.New("config: max-call-duration: must be positive, such as 3h")
	}
	if c.MediaTimeout < 0 {
		return errors.New("config: media-timeout: must not be negative (0 disables it)")
	}
	if c.Grace < 0 {
		return errors.New("config: grace: must not be negative")
	}
	if c.UDPBuffer < 64<<10 {
		return fmt.Errorf("config: udp-buffer: %d is too small; want at least 65536 bytes", c.UDPBuffer)
	}
	if _, err := c.Level(); err != nil {
		return err
	}
	if _, _, err := c.MemoryLimitBytes(); err != nil {
		return err
	}
	if err := c.checkPprof(); err != nil {
		return err
	}
	if _, err := c.Webhooks(); err != nil {
		return err
	}
	if _, err := c.Networks(); err != nil {
		return err
	}
	if _, err := ParseNetworks(c.AdminNetworks); err != nil {
		return fmt.Errorf("config: admin-networks: %w", err)
	}
	if c.VPNListen != "" {
		if _, _, err := SplitHostPort(c.VPNListen); err != nil {
			return fmt.Errorf("config: vpn-listen: %q: %v; want host:port such as :51820, or empty for no VPN", c.VPNListen, err)
		}
	}
	if _, err := c.VPNPrefix(); err != nil {
		return err
	}
	switch c.DigestOffer {
	case "md5", "sha256", "both":
	default:
		return fmt.Errorf("config: digest-offer: %q: want md5, sha256 or both", c.DigestOffer)
	}
	if c.BanAfter < 1 {
		return errors.New("config: ban-after: must be 1 or more, such as 10")
	}
	if c.BanWindow <= 0 || c.BanTime <= 0 {
		return errors.New("config: ban-window and ban-time: must be positive, such as 10m and 15m")
	}
	if time.Duration(c.AuditKeep) < time.Hour || c.AuditMaxMB < 1 {
		return errors.New("config: audit-keep and audit-max-mb: keep at least 1h and 1 MB, such as 2160h and 256")
	}
	if time.Duration(c.AuditCheckpoint) < time.Second {
		return errors.New("config: audit-checkpoint: must be at least 1s, such as 1m")
	}
	if c.SourceRate < 1 {
		return errors.New("config: source-rate: must be 1 or more requests a second, such as 50")
	}
	return nil
}

// VPNPrefix parses VPNNet: the unit's own IPv4 address in the tunnel
// with the prefix its peers' addresses come from, such as 10.77.0.1/24.
func (c *Config) VPNPrefix() (netip.Prefix, error) {
	const want = "want the unit's IPv4 address with a prefix length, such as 10.77.0.1/24"
	p, err := netip.ParsePrefix(c.VPNNet)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("config: vpn-net: %q: %s", c.VPNNet, want)
	}
	a := p.Addr()
	switch {
	case !a.Is4():
		return netip.Prefix{}, fmt.Errorf("config: vpn-net: %s: IPv6 is not supported; %s", p, want)
	case !a.IsGlobalUnicast():
		return netip.Prefix{}, fmt.Errorf("config: vpn-net: %s is not a unicast range; use a private one such as 10.77.0.1/24", p)
	case p.Bits() > 30:
		return netip.Prefix{}, fmt.Errorf("config: vpn-net: %s leaves no address for a peer; use /30 or shorter, such as 10.77.0.1/24", p)
	case a == p.Masked().Addr():
		return netip.Prefix{}, fmt.Errorf("config: vpn-net: %s is the network's own address, not a host's; %s", p, want)
	case a == lastAddr(p):
		return netip.Prefix{}, fmt.Errorf("config: vpn-net: %s is the broadcast address, not a host's; %s", p, want)
	}
	return p, nil
}

// lastAddr is the highest address of p (IPv4).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Networks parses PhoneNetworks.
func (c *Config) Networks() ([]netip.Prefix, error) {
	n, err := ParseNetworks(c.PhoneNetworks)
	if err != nil {
		return nil, fmt.Errorf("config: phone-networks: %w", err)
	}
	return n, nil
}

// ParseNetworks parses a comma-separated list of CIDR prefixes or single
// addresses ("" is none), naming the bad entry.
func ParseNetworks(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("network %q: want CIDR prefixes such as 192.168.1.0/24, comma-separated", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Webhooks parses AlertWebhooks. Errors do not repeat the URL: its path
// may be a secret.
func (c *Config) Webhooks() ([]string, error) {
	var out []string
	for i, u := range strings.Split(c.AlertWebhooks, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("config: alert-webhooks: entry %d is not an http:// or https:// URL with a host", i+1)
		}
		out = append(out, u)
	}
	return out, nil
}

// RTPRange parses RTPPorts.
func (c *Config) RTPRange() (int, int, error) {
	lo, hi, ok := strings.Cut(c.RTPPorts, "-")
	l, err1 := strconv.Atoi(lo)
	h, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || l < 1024 || h > 65535 || l >= h || l%2 != 0 {
		return 0, 0, fmt.Errorf("config: rtp-ports: %q: want LOW-HIGH with an even LOW >= 1024, HIGH <= 65535, e.g. 10000-20000", c.RTPPorts)
	}
	return l, h, nil
}

// Level parses LogLevel.
func (c *Config) Level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("config: log-level: %q: want debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// SplitHostPort splits and checks a listen address.
func SplitHostPort(a string) (string, int, error) {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if h != "" && net.ParseIP(h) == nil {
		return "", 0, fmt.Errorf("host %q is not an IP address", h)
	}
	return h, port, nil
}

// MinMemoryLimit is the smallest memory limit accepted: below it the
// garbage collector would run almost continuously for a PBX's live heap.
const MinMemoryLimit = 128 << 20

// MemoryLimitBytes parses MemoryLimit. auto is true for "auto" (the
// caller works the limit out from the environment and the machine);
// otherwise n is the limit in bytes, 0 for "off".
func (c *Config) MemoryLimitBytes() (n int64, auto bool, err error) {
	const want = `want auto, off, or a size such as 1536MiB or 2GiB (at least 128MiB)`
	s := strings.TrimSpace(c.MemoryLimit)
	switch s {
	case "auto", "":
		return 0, true, nil
	case "off":
		return 0, false, nil
	}
	unit := int64(0)
	switch {
	case strings.HasSuffix(s, "MiB"):
		unit, s = 1<<20, strings.TrimSuffix(s, "MiB")
	case strings.HasSuffix(s, "GiB"):
		unit, s = 1<<30, strings.TrimSuffix(s, "GiB")
	}
	v, perr := strconv.ParseInt(s, 10, 64)
	if unit == 0 || perr != nil || v <= 0 || v > (1<<50)/unit {
		return 0, false, fmt.Errorf("config: memory-limit: %q: %s", c.MemoryLimit, want)
	}
	if v*unit < MinMemoryLimit {
		return 0, false, fmt.Errorf("config: memory-limit: %q is too small: %s", c.MemoryLimit, want)
	}
	return v * unit, false, nil
}

// checkPprof allows PprofListen only on a loopback address. The profiles
// show internals (stack traces with call and extension data, heap
// contents, timings) and cost CPU to produce: served on any other
// address, they would expose those to the network and give anyone who
// can reach the port a cheap way to slow the PBX down.
func (c *Config) checkPprof() error {
	if c.PprofListen == "" {
		return nil
	}
	h, _, err := SplitHostPort(c.PprofListen)
	if err != nil {
		return fmt.Errorf("config: pprof-listen: %q: %v; want a loopback host:port such as 127.0.0.1:6060", c.PprofListen, err)
	}
	if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("config: pprof-listen: %q is not a loopback address; profiles must not be reachable from the network: use 127.0.0.1:6060 or [::1]:6060", c.PprofListen)
	}
	return nil
}
