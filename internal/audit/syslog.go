package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// Collector is a syslog server that receives a copy of the evidence log.
type Collector struct {
	URL     string // as configured, e.g. tls://logs.example:6514
	Network string // "udp", "tcp" or "tls"
	Addr    string // host:port
}

// ParseCollectors parses a comma-separated list of udp://, tcp:// and
// tls:// URLs, naming the entry that is wrong.
func ParseCollectors(s string) ([]Collector, error) {
	var out []Collector
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		u, err := url.Parse(f)
		if err != nil || u.Host == "" || (u.Scheme != "udp" && u.Scheme != "tcp" && u.Scheme != "tls") {
			return nil, fmt.Errorf("entry %d %q: want udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT", i+1, f)
		}
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return nil, fmt.Errorf("entry %d %q: want a port, such as tls://logs.example:6514", i+1, f)
		}
		out = append(out, Collector{URL: f, Network: u.Scheme, Addr: u.Host})
	}
	return out, nil
}

// ExportStore is what an Exporter reads and where it keeps its place.
// *store.Store satisfies it.
type ExportStore interface {
	AuditRecords(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error)
	AuditCheckpoints(ctx context.Context) ([]store.AuditCheckpoint, error)
	Setting(ctx context.Context, key, def string) (string, error)
	SetSetting(ctx context.Context, key, value string) error
}

// Exporter copies the evidence log to one syslog collector as RFC 5424
// messages (RFC 5426 over UDP, RFC 6587 octet counting over TCP, RFC 5425
// over TLS), checkpoints included so the remote copy can prove what the
// box held. It keeps its place in the store: a collector that is down
// costs the PBX nothing, the backlog goes out when it is back, and the
// outage itself is a record.
type Exporter struct {
	c    Collector
	st   ExportStore
	rec  *Recorder
	pub  ed25519.PublicKey
	tls  *tls.Config
	log  *slog.Logger
	host string

	conn net.Conn
	down time.Time // when the collector went down; zero while it is up
}

// NewExporter returns an exporter to c. roots are the CAs trusted for a
// tls:// collector (nil: the system's).
func NewExporter(c Collector, st ExportStore, rec *Recorder, pub ed25519.PublicKey, roots *x509.CertPool, log *slog.Logger) *Exporter {
	host, _ := os.Hostname()
	if host == "" {
		host = "-"
	}
	sn, _, _ := net.SplitHostPort(c.Addr)
	return &Exporter{c: c, st: st, rec: rec, pub: pub, log: log.With("collector", c.URL), host: host,
		tls: &tls.Config{RootCAs: roots, ServerName: sn, MinVersion: tls.VersionTLS12}}
}

func (e *Exporter) key(what string) string { return "syslog-" + what + ":" + e.c.URL }

// Run sends new records and checkpoints every second until ctx ends,
// backing off (to 30 s) while the collector fails.
func (e *Exporter) Run(ctx context.Context) {
	wait := time.Second
	for {
		select {
		case <-ctx.Done():
			if e.conn != nil {
				e.conn.Close()
			}
			return
		case <-time.After(wait):
		}
		if err := e.send(ctx); err != nil {
			if e.conn != nil {
				e.conn.Close()
				e.conn = nil
			}
			if e.down.IsZero() {
				e.down = time.Now()
				e.log.Warn("audit: syslog collector unreachable; the backlog is kept", "err", err)
				e.rec.Record(Event{Type: ExportFailure, Source: "pbx", Target: e.c.URL, Detail: "collector unreachable: " + err.Error()})
			}
			wait = min(2*wait, 30*time.Second)
			continue
		}
		if !e.down.IsZero() {
			e.rec.Record(Event{Type: ExportFailure, Source: "pbx", Target: e.c.URL,
				Detail: fmt.Sprintf("collector back after %s; backlog delivered", time.Since(e.down).Round(time.Second))})
			e.log.Info("audit: syslog collector back")
			e.down = time.Time{}
		}
		wait = time.Second
	}
}

func (e *Exporter) send(ctx context.Context) error {
	sentS, err := e.st.Setting(ctx, e.key("sent"), "0")
	if err != nil {
		return err
	}
	sent, _ := strconv.ParseInt(sentS, 10, 64)
	recs, err := e.st.AuditRecords(ctx, store.AuditFilter{AfterSeq: sent, Limit: 500})
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := e.write(e.format(r)); err != nil {
			return err
		}
		sent = r.Seq
	}
	if len(recs) > 0 {
		if err := e.st.SetSetting(ctx, e.key("sent"), strconv.FormatInt(sent, 10)); err != nil {
			return err
		}
	}
	cpS, err := e.st.Setting(ctx, e.key("checkpoint"), "0")
	if err != nil {
		return err
	}
	cpSent, _ := strconv.ParseInt(cpS, 10, 64)
	cps, err := e.st.AuditCheckpoints(ctx)
	if err != nil {
		return err
	}
	for _, c := range cps {
		if c.Size <= cpSent || c.Size > sent {
			continue // sent already, or ahead of the records sent
		}
		if err := e.write(e.formatCheckpoint(c)); err != nil {
			return err
		}
		if err := e.st.SetSetting(ctx, e.key("checkpoint"), strconv.FormatInt(c.Size, 10)); err != nil {
			return err
		}
	}
	return nil
}

func (e *Exporter) dial() error {
	if e.conn != nil {
		return nil
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	var err error
	switch e.c.Network {
	case "udp":
		e.conn, err = d.Dial("udp", e.c.Addr)
	case "tcp":
		e.conn, err = d.Dial("tcp", e.c.Addr)
	case "tls":
		e.conn, err = tls.DialWithDialer(&d, "tcp", e.c.Addr, e.tls)
	default:
		err = errors.New("unknown network " + e.c.Network)
	}
	return err
}

func (e *Exporter) write(msg string) error {
	if err := e.dial(); err != nil {
		return err
	}
	e.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	var err error
	if e.c.Network == "udp" {
		_, err = e.conn.Write([]byte(msg))
	} else {
		_, err = fmt.Fprintf(e.conn, "%d %s", len(msg), msg)
	}
	return err
}

// Severity: warning for a state change that shuts someone out, notice
// for the rest; facility 13 (log audit).
func pri(typ string) int {
	switch typ {
	case Ban, Suspension, Freeze, AuditFailure, ExportFailure:
		return 13*8 + 4
	}
	return 13*8 + 5
}

// sdEscape escapes a structured-data parameter value (RFC 5424 6.3.3).
func sdEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(s)
}

const enterprise = "32473" // the documentation enterprise number (RFC 5612)

func (e *Exporter) format(r store.AuditRecord) string {
	detail := r.Detail
	if len(detail) > 4000 {
		detail = detail[:4000] + "..."
	}
	return fmt.Sprintf(`<%d>1 %s %s sekisho - %s [sekisho@%s seq="%d" count="%d" source="%s" target="%s" first="%s" last="%s" hash="%x"] %s`,
		pri(r.Type), r.At.UTC().Format("2006-01-02T15:04:05.000Z"), e.host, r.Type, enterprise, r.Seq, r.Count,
		sdEscape(r.Source), sdEscape(r.Target), r.First.UTC().Format(time.RFC3339Nano), r.Last.UTC().Format(time.RFC3339Nano), r.Hash, detail)
}

func (e *Exporter) formatCheckpoint(c store.AuditCheckpoint) string {
	return fmt.Sprintf(`<%d>1 %s %s sekisho - checkpoint [sekisho-checkpoint@%s size="%d" hash="%x" time="%d" sig="%x" key="%x"] signed checkpoint of the evidence log`,
		13*8+5, c.At.UTC().Format("2006-01-02T15:04:05.000Z"), e.host, enterprise, c.Size, c.Hash, c.At.UnixMilli(), c.Sig, []byte(e.pub))
}
