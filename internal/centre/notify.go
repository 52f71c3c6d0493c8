package centre

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/mail"
	"net/smtp"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sekisho/sekisho/internal/alert"
)

// Mail is where alerts are emailed: all three set, or none.
type Mail struct {
	Addr string   // host:port of the relay
	From string   // envelope and header sender
	To   []string // recipients
}

func (m Mail) enabled() bool { return m.Addr != "" }

// Payload is the JSON body of an alert webhook POST, signed in the
// X-Sekisho-Signature header as a unit's own alert webhooks are.
type Payload struct {
	ID       int64     `json:"id"`
	Unit     string    `json:"unit"`
	UnitName string    `json:"unit_name"`
	UnitSeq  int64     `json:"unit_seq"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Subject  string    `json:"subject"`
	Detail   string    `json:"detail"`
	Count    int64     `json:"count"`
}

// Notifier forwards each new alert to the webhooks and by email,
// retrying with backoff (1 s doubling to 5 min) until every one has it.
// What is pending is the store's (alerts not yet delivered), so a
// restart loses nothing. Safe for concurrent use.
type Notifier struct {
	st     *Store
	hooks  []string
	key    []byte
	mail   Mail
	client *http.Client
	log    *slog.Logger
	wake   chan struct{}

	mu   sync.Mutex
	done map[int64]map[string]bool // per alert, the targets that took it
}

// NewNotifier checks the targets and returns a notifier for them.
func NewNotifier(st *Store, key []byte, hooks []string, m Mail, log *slog.Logger) (*Notifier, error) {
	for _, h := range hooks {
		u, err := url.Parse(h)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("centre: --alert-webhooks: %s is not an http(s) URL", alert.Where(h))
		}
	}
	if m.Addr != "" || m.From != "" || len(m.To) > 0 {
		if _, _, err := net.SplitHostPort(m.Addr); err != nil {
			return nil, errors.New("centre: --smtp: want HOST:PORT of the mail relay, with --smtp-from and --alert-email")
		}
		if _, err := mail.ParseAddress(m.From); err != nil {
			return nil, fmt.Errorf("centre: --smtp-from %q: not a mail address", m.From)
		}
		if len(m.To) == 0 {
			return nil, errors.New("centre: --alert-email: give at least one address to mail alerts to (or leave out --smtp)")
		}
		for _, to := range m.To {
			if _, err := mail.ParseAddress(to); err != nil {
				return nil, fmt.Errorf("centre: --alert-email %q: not a mail address", to)
			}
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{st: st, hooks: hooks, key: key, mail: m, log: log, wake: make(chan struct{}, 1),
		done: map[int64]map[string]bool{},
		client: &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			// A redirect could carry the alert and its signature to
			// someone else: deliver only where configured.
			return http.ErrUseLastResponse
		}}}, nil
}

// Wake starts a delivery round now.
func (n *Notifier) Wake() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// sweepEvery is how often the store is looked at for pending alerts
// without a wake: alerts stored by a centre that stopped before
// delivering them (another replica, or this one before a restart).
const sweepEvery = 30 * time.Second

// Run delivers until ctx ends. With no targets it returns at once (the
// alerts stay in the store, for `sekisho centre alerts`).
func (n *Notifier) Run(ctx context.Context) {
	if len(n.hooks) == 0 && !n.mail.enabled() {
		return
	}
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	backoff := time.Duration(0)
	n.Wake() // what a previous run left pending
	for {
		var wait <-chan time.Time
		if backoff > 0 {
			wait = time.After(backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-wait:
		case <-sweep.C:
			if backoff > 0 {
				continue // failing already: the backoff decides
			}
		}
		if n.deliver(ctx) {
			backoff = 0
		} else {
			backoff = min(max(2*backoff, time.Second), 5*time.Minute)
		}
	}
}

// deliver sends every pending alert to every target that has not taken
// it yet; it reports whether all went out.
func (n *Notifier) deliver(ctx context.Context) bool {
	pending, err := n.st.PendingAlerts(ctx, 100)
	if err != nil {
		if ctx.Err() == nil {
			n.log.Error("centre: read pending alerts", "err", err)
		}
		return false
	}
	ok := true
	for _, a := range pending {
		var failed []string
		for _, t := range n.targets() {
			if n.took(a.ID, t) {
				continue
			}
			var err error
			if t == "mail" {
				err = n.send(ctx, a)
			} else {
				err = n.post(ctx, t, a)
			}
			if err != nil {
				failed = append(failed, err.Error())
				continue
			}
			n.mark(a.ID, t)
		}
		if len(failed) > 0 {
			ok = false
			reason := strings.Join(failed, "; ")
			n.log.Warn("centre: alert delivery failed; will retry", "id", a.ID, "err", reason)
			if err := n.st.AlertFailed(ctx, a.ID, reason); err != nil {
				n.log.Error("centre: record alert failure", "err", err)
			}
			continue
		}
		if err := n.st.AlertDelivered(ctx, a.ID, time.Now()); err != nil {
			n.log.Error("centre: record alert delivery", "err", err)
			return false
		}
		n.mu.Lock()
		delete(n.done, a.ID)
		n.mu.Unlock()
	}
	return ok
}

func (n *Notifier) targets() []string {
	t := append([]string(nil), n.hooks...)
	if n.mail.enabled() {
		t = append(t, "mail")
	}
	return t
}

func (n *Notifier) took(id int64, target string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.done[id][target]
}

func (n *Notifier) mark(id int64, target string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done[id] == nil {
		n.done[id] = map[string]bool{}
	}
	n.done[id][target] = true
}

func payload(a Alert) Payload {
	return Payload{ID: a.ID, Unit: a.UnitID, UnitName: a.UnitName, UnitSeq: a.UnitSeq, Time: a.At.UTC(),
		Kind: a.Kind, Subject: a.Subject, Detail: a.Detail, Count: a.Count}
}

// post sends one alert to one webhook. Errors and logs name the webhook
// by scheme and host only: its path is often its secret.
func (n *Notifier) post(ctx context.Context, hook string, a Alert) error {
	body, err := json.Marshal(payload(a))
	if err != nil {
		return fmt.Errorf("webhook %s: encode: %w", alert.Where(hook), err)
	}
	return alert.Post(ctx, n.client, hook, n.key, a.ID, body)
}

// send mails one alert through the relay, with STARTTLS when the relay
// offers it.
func (n *Notifier) send(ctx context.Context, a Alert) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	host, _, _ := net.SplitHostPort(n.mail.Addr)
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", n.mail.Addr)
	if err != nil {
		return fmt.Errorf("mail %s: %w", n.mail.Addr, err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	c, err := smtp.NewClient(nc, host)
	if err != nil {
		return fmt.Errorf("mail %s: %w", n.mail.Addr, err)
	}
	defer c.Close()
	if err := c.Hello("sekisho-centre"); err != nil {
		return fmt.Errorf("mail %s: HELO: %w", n.mail.Addr, err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("mail %s: STARTTLS: %w", n.mail.Addr, err)
		}
	}
	from, _ := mail.ParseAddress(n.mail.From)
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("mail %s: MAIL FROM: %w", n.mail.Addr, err)
	}
	var to []string
	for _, t := range n.mail.To {
		ta, _ := mail.ParseAddress(t)
		if err := c.Rcpt(ta.Address); err != nil {
			return fmt.Errorf("mail %s: RCPT TO %s: %w", n.mail.Addr, ta.Address, err)
		}
		to = append(to, ta.String())
	}
	wc, err := c.Data()
	if err != nil {
		return fmt.Errorf("mail %s: DATA: %w", n.mail.Addr, err)
	}
	if _, err := wc.Write(message(from.String(), to, a)); err != nil {
		wc.Close()
		return fmt.Errorf("mail %s: %w", n.mail.Addr, err)
	}
	if err := wc.Close(); err != nil {
		return fmt.Errorf("mail %s: %w", n.mail.Addr, err)
	}
	return c.Quit()
}

// message is the alert as a plain-text mail. Every text from the unit
// has been through cleanText (no CR or LF), so none can add a header.
func message(from string, to []string, a Alert) []byte {
	name := a.UnitName
	if name == "" {
		name = a.UnitID
	}
	subject := cleanText(fmt.Sprintf("[sekisho] %s: %s %s", name, a.Kind, a.Subject), 200)
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(to, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	fmt.Fprintf(&b, "Unit:    %s (%s)\r\n", name, a.UnitID)
	fmt.Fprintf(&b, "Time:    %s\r\n", a.At.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Kind:    %s\r\n", a.Kind)
	fmt.Fprintf(&b, "Subject: %s\r\n", a.Subject)
	if a.Count > 1 {
		fmt.Fprintf(&b, "Count:   %d\r\n", a.Count)
	}
	fmt.Fprintf(&b, "\r\n%s\r\n\r\nAlert %d (the unit's record %d). See: sekisho centre alerts\r\n", a.Detail, a.ID, a.UnitSeq)
	return []byte(b.String())
}
