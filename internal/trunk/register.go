package trunk

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/store"
)

// Registration states shown by `sekisho trunk list`.
const (
	StateRegistering = "registering"
	StateRegistered  = "registered"
	StateFailed      = "failed"
)

// Registrations keeps sekisho registered (RFC 3261 section 10) with every
// carrier whose trunk asks for it: it refreshes before expiry and retries
// with growing backoff after a failure. Safe for concurrent use.
type Registrations struct {
	dir      *Directory
	client   *sipgo.Client
	st       *store.Store
	log      *slog.Logger
	host     string       // our advertised host for the Contact
	port     int          // our advertised port
	udpLocal *net.UDPAddr // send from the listening socket

	mu      sync.Mutex
	running map[string]context.CancelFunc // trunk fingerprint -> stop; guarded by mu
	wg      sync.WaitGroup
}

// NewRegistrations returns a manager; call Sync after each directory reload.
func NewRegistrations(dir *Directory, client *sipgo.Client, st *store.Store, log *slog.Logger, host string, port int, udpLocal *net.UDPAddr) *Registrations {
	return &Registrations{dir: dir, client: client, st: st, log: log, host: host, port: port, udpLocal: udpLocal, running: map[string]context.CancelFunc{}}
}

func fingerprint(t Trunk) string {
	return fmt.Sprintf("%s|%s|%s|%s|%x", t.Name, t.Peer, t.Transport, t.Username, t.PasswordSealed)
}

// Sync starts a registration loop for each trunk that wants one and stops
// loops of trunks that were removed or changed.
func (r *Registrations) Sync(ctx context.Context) {
	want := map[string]Trunk{}
	for _, t := range r.dir.All() {
		if t.Register {
			want[fingerprint(t)] = t
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for fp, stop := range r.running {
		if _, ok := want[fp]; !ok {
			stop()
			delete(r.running, fp)
		}
	}
	for fp, t := range want {
		if _, ok := r.running[fp]; ok {
			continue
		}
		lctx, stop := context.WithCancel(ctx)
		r.running[fp] = stop
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.loop(lctx, t)
		}()
	}
}

// Close stops every loop and waits for them.
func (r *Registrations) Close() {
	r.mu.Lock()
	for fp, stop := range r.running {
		stop()
		delete(r.running, fp)
	}
	r.mu.Unlock()
	r.wg.Wait()
}

const (
	askExpires = 3600 * time.Second
	minBackoff = 5 * time.Second
	maxBackoff = 5 * time.Minute
)

func (r *Registrations) loop(ctx context.Context, t Trunk) {
	backoff := minBackoff
	for {
		r.setState(t.Name, StateRegistering, "", time.Time{})
		granted, err := r.register(ctx, t)
		var wait time.Duration
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("trunk: registration failed", "trunk", t.Name, "err", err, "retry_in", backoff)
			r.setState(t.Name, StateFailed, err.Error(), time.Time{})
			wait, backoff = backoff, min(backoff*2, maxBackoff)
		} else {
			r.log.Info("trunk: registered", "trunk", t.Name, "expires", granted)
			r.setState(t.Name, StateRegistered, "", time.Now().Add(granted))
			backoff = minBackoff
			// Refresh well before the carrier forgets us.
			wait = max(granted*8/10, 10*time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// register sends one REGISTER, answering a digest challenge, and returns
// the lifetime the carrier granted.
func (r *Registrations) register(ctx context.Context, t Trunk) (time.Duration, error) {
	pw, err := r.dir.Password(t)
	if err != nil {
		return 0, err
	}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: t.Host, Port: t.Port})
	aor := sip.Uri{Scheme: "sip", User: t.Username, Host: t.Host}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: t.Username, Host: r.host, Port: r.port}})
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(askExpires/time.Second))))
	if t.Transport == "tcp" {
		req.SetTransport("TCP")
	} else if r.udpLocal != nil {
		// Register from the signalling socket: the carrier sends calls
		// back to where the registration came from.
		req.Laddr = sip.Addr{IP: r.udpLocal.IP, Port: r.udpLocal.Port}
	}
	rctx, cancel := context.WithTimeout(ctx, 32*time.Second)
	defer cancel()
	res, err := r.client.Do(rctx, req)
	if err != nil {
		return 0, fmt.Errorf("no answer from %s: %w", t.Peer, err)
	}
	if (res.StatusCode == 401 || res.StatusCode == 407) && t.Username != "" {
		res, err = r.client.DoDigestAuth(rctx, req, res, sipgo.DigestAuth{Username: t.Username, Password: pw})
		if err != nil {
			return 0, fmt.Errorf("no answer to authenticated REGISTER from %s: %w", t.Peer, err)
		}
	}
	if res.StatusCode != 200 {
		return 0, fmt.Errorf("carrier answered %d %s", res.StatusCode, res.Reason)
	}
	granted := askExpires
	if h := res.GetHeader("Expires"); h != nil {
		if v, err := strconv.Atoi(h.Value()); err == nil && v > 0 {
			granted = time.Duration(v) * time.Second
		}
	}
	if c := res.Contact(); c != nil {
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				granted = time.Duration(n) * time.Second
			}
		}
	}
	return granted, nil
}

func (r *Registrations) setState(name, state, detail string, expires time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.st.SetTrunkState(ctx, name, state, detail, expires); err != nil {
		r.log.Error("trunk: cannot record registration state", "trunk", name, "err", err)
	}
}
