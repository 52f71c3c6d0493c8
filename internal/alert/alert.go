// Package alert tells people what needs them: a suspended extension, a
// PBX-wide freeze of international calls. Every alert is written to the
// store first and only then delivered, as a signed JSON POST to each
// configured webhook; delivery is retried with backoff until every
// webhook has taken it, so a receiver that is down loses nothing.
package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// KeyFile is the webhook signing key's file in the data directory.
const KeyFile = "webhook.key"

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body
// under the key in KeyFile, so a receiver can refuse forged alerts (an
// attacker who could fake "all clear" could hide a fraud run).
const SignatureHeader = "X-Sekisho-Signature"

// LoadKey reads the signing key from dir, creating it (mode 0600) on first
// use.
func LoadKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k := make([]byte, 32)
		rand.Read(k)
		enc := hex.EncodeToString(k) + "\n"
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("alert: create %s: %w", path, err)
		}
		if _, err := f.WriteString(enc); err != nil {
			f.Close()
			return nil, fmt.Errorf("alert: write %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("alert: write %s: %w", path, err)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("alert: read %s: %w", path, err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) < 16 {
		return nil, fmt.Errorf("alert: %s is not a hex key of at least 16 bytes: delete it to have a new one made", path)
	}
	return k, nil
}

// Sign returns the signature header value of body under key.
func Sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Store is where alerts are kept. *store.Store satisfies it.
type Store interface {
	AddAlert(ctx context.Context, a store.Alert) (int64, error)
	UndeliveredAlerts(ctx context.Context, limit int) ([]store.Alert, error)
	AlertDelivered(ctx context.Context, id int64, at time.Time) error
	AlertFailed(ctx context.Context, id int64, reason string) error
}

// Notifier records and delivers alerts. Safe for concurrent use.
type Notifier struct {
	st     Store
	hooks  []string
	key    []byte
	client *http.Client
	log    *slog.Logger
	unit   string // which PBX this is, in every payload
	wake   chan struct{}
}

// New returns a notifier posting to hooks (none: alerts are only
// recorded) signed with key. unit names this PBX in payloads.
func New(st Store, hooks []string, key []byte, unit string, log *slog.Logger) *Notifier {
	return &Notifier{st: st, hooks: hooks, key: key, unit: unit, log: log,
		client: &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			// A redirect could send the alert (and its signature) to
			// someone else: deliver only where configured.
			return http.ErrUseLastResponse
		}},
		wake: make(chan struct{}, 1)}
}

// Raise records an alert and wakes delivery. The record is the alert: it
// returns an error only if that could not be written.
func (n *Notifier) Raise(ctx context.Context, kind, subject, detail string) error {
	a := store.Alert{At: time.Now(), Kind: kind, Subject: subject, Detail: detail}
	id, err := n.st.AddAlert(ctx, a)
	n.log.Warn("alert", "kind", kind, "subject", subject, "detail", detail, "id", id)
	if err != nil {
		return err
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
	return nil
}

// Payload is the JSON body of a webhook POST.
type Payload struct {
	ID      int64     `json:"id"`
	Unit    string    `json:"unit"`
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	Detail  string    `json:"detail"`
}

// Run delivers alerts until ctx ends: at once when raised, and pending
// ones again with backoff (1 s doubling to 5 min) while a webhook fails.
func (n *Notifier) Run(ctx context.Context) {
	if len(n.hooks) == 0 {
		return
	}
	backoff := time.Duration(0)
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
		}
		if n.deliver(ctx) {
			backoff = 0
		} else {
			backoff = min(max(2*backoff, time.Second), 5*time.Minute)
		}
	}
}

// deliver sends every pending alert; it reports whether all went out.
func (n *Notifier) deliver(ctx context.Context) bool {
	pending, err := n.st.UndeliveredAlerts(ctx, 100)
	if err != nil {
		n.log.Error("alert: read pending", "err", err)
		return false
	}
	for _, a := range pending {
		body, _ := json.Marshal(Payload{ID: a.ID, Unit: n.unit, Time: a.At.UTC(), Kind: a.Kind, Subject: a.Subject, Detail: a.Detail})
		var failed []string
		for _, h := range n.hooks {
			if err := n.post(ctx, h, a.ID, body); err != nil {
				failed = append(failed, err.Error())
			}
		}
		if len(failed) > 0 {
			reason := strings.Join(failed, "; ")
			n.log.Warn("alert: webhook delivery failed; will retry", "id", a.ID, "err", reason)
			if err := n.st.AlertFailed(ctx, a.ID, reason); err != nil {
				n.log.Error("alert: record failure", "err", err)
			}
			return false
		}
		if err := n.st.AlertDelivered(ctx, a.ID, time.Now()); err != nil {
			n.log.Error("alert: record delivery", "err", err)
			return false
		}
	}
	return true
}

// Where names a webhook for logs by scheme and host only: a webhook's
// path or query often is its secret (chat services put the token there).
func Where(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "(unparsable webhook URL)"
	}
	return p.Scheme + "://" + p.Host
}

func (n *Notifier) post(ctx context.Context, hook string, id int64, body []byte) error {
	return Post(ctx, n.client, hook, n.key, id, body)
}

// Post delivers one alert body to a webhook, signed with key (so a
// receiver can refuse a forged alert, or a forged all-clear that would
// hide a fraud run) and carrying its id (so a receiver can drop a copy).
// Errors name the webhook by scheme and host only: its path is often its
// secret.
func Post(ctx context.Context, client *http.Client, hook string, key []byte, id int64, body []byte) error {
	where := Where(hook)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: cannot build request", where)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, Sign(key, body))
	req.Header.Set("X-Sekisho-Alert-Id", fmt.Sprint(id))
	res, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the whole URL
		}
		return fmt.Errorf("webhook %s: %w", where, err)
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s: HTTP %d", where, res.StatusCode)
	}
	return nil
}
