// Package console is sekisho's web API for the people who run it: the
// office (admin, operator) and, when the office allows it, the vendor
// (maintenance). It listens apart from SIP, on loopback or on networks an
// administrator named, and has no default credential: the first account
// is made with a one-time setup token printed at first start.
//
// Accounts' passwords are argon2id hashes; sessions are random tokens in
// HttpOnly, Secure, SameSite=Strict cookies, stored only as SHA-256, with
// idle and absolute timeouts; cross-origin requests are refused; logins
// fail with growing delays; every change is an evidence record naming the
// account that made it.
package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/vault"
)

// Roles.
const (
	RoleAdmin       = "admin"       // everything
	RoleOperator    = "operator"    // view, unlock, unban
	RoleMaintenance = "maintenance" // the vendor; refused while the office has it switched off
)

// Session lifetimes.
const (
	IdleTimeout     = 30 * time.Minute
	AbsoluteTimeout = 12 * time.Hour
	SetupTokenLife  = time.Hour
	cookieName      = "sekisho_session"
)

// Settings keys of the setup token.
const (
	settingSetupHash    = "console-setup-hash"
	settingSetupExpires = "console-setup-expires"
)

// Evidence records what console users do. *audit.Recorder satisfies it.
type Evidence interface{ Record(audit.Event) }

// Config is the console's wiring.
type Config struct {
	Store         *store.Store
	Evidence      Evidence
	AdminNetworks []netip.Prefix // besides loopback, who may connect
	Log           *slog.Logger
	Now           func() time.Time // nil: time.Now
	// Registered tells whether an extension has a registration now.
	Registered func(ext string) bool
	// MaintenanceAllowed is whether the vendor may log in when the office
	// has not said so in the console's settings (the --maintenance flag).
	MaintenanceAllowed func() bool
	// Vault seals the accounts' TOTP secrets.
	Vault *vault.Vault
	// Calls counts the calls in progress.
	Calls func() int
	// SIPAddress is where phones register, for the provisioning QR code.
	SIPAddress string
}

// SettingMaintenance is the office's switch for the vendor's access:
// "on" or "off"; unset follows the --maintenance flag.
const SettingMaintenance = "console-maintenance"

// maintenanceAllowed reads the office's switch on every request, so that
// switching it off in the console or the CLI locks the vendor out at once.
func (s *Server) maintenanceAllowed(ctx context.Context) bool {
	v, err := s.cfg.Store.Setting(ctx, SettingMaintenance, "")
	switch {
	case err != nil:
		return false // fail closed
	case v == "on":
		return true
	case v == "off":
		return false
	}
	return s.cfg.MaintenanceAllowed()
}

// Server is the console's HTTP handler.
type Server struct {
	cfg    Config
	mux    *http.ServeMux
	pages  map[string]*template.Template
	ghosts credential.Ghosts
}

// New returns the console handler.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registered == nil {
		cfg.Registered = func(string) bool { return false }
	}
	if cfg.MaintenanceAllowed == nil {
		cfg.MaintenanceAllowed = func() bool { return false }
	}
	if cfg.Calls == nil {
		cfg.Calls = func() int { return 0 }
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), pages: parsePages()}
	s.routes()
	s.pageRoutes()
	return s
}

// CheckListen refuses a console address anyone on the phone network or
// the internet could reach: loopback is fine; anything else needs admin
// networks, must be a specific address (not all addresses), and must not
// be an address SIP listens on. Admin panels are how most PBX frauds
// start; the phone network must never see this one.
func CheckListen(listen string, adminNets []netip.Prefix, sipHosts []string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("config: console: %q: want HOST:PORT such as 127.0.0.1:8080", listen)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("config: console: %q: the host must be an IP address", listen)
	}
	if a.IsLoopback() {
		return nil
	}
	if a.IsUnspecified() {
		return fmt.Errorf("config: console: %s listens on every address, the phone network's included: name one address", listen)
	}
	if len(adminNets) == 0 {
		return fmt.Errorf("config: console: %s is not loopback: set --admin-networks to who may reach it", listen)
	}
	for _, h := range sipHosts {
		sh, _, _ := net.SplitHostPort(h)
		if sa, err := netip.ParseAddr(sh); err == nil && (sa == a || sa.IsUnspecified()) {
			return fmt.Errorf("config: console: %s shares an address with SIP (%s): use another address", listen, h)
		}
	}
	return nil
}

// Setup makes the one-time setup token when there is no account yet and
// returns it ("" when accounts exist). Only its hash is stored.
func Setup(ctx context.Context, st *store.Store, now time.Time) (string, error) {
	n, err := st.AdminCount(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	tok := randomToken()
	sum := sha256.Sum256([]byte(tok))
	if err := st.SetSetting(ctx, settingSetupHash, hex.EncodeToString(sum[:])); err != nil {
		return "", err
	}
	if err := st.SetSetting(ctx, settingSetupExpires, fmt.Sprint(now.Add(SetupTokenLife).UnixMilli())); err != nil {
		return "", err
	}
	return tok, nil
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func tokenHash(tok string) []byte {
	sum := sha256.Sum256([]byte(tok))
	return sum[:]
}

// ServeHTTP implements http.Handler: the network check, then cross-origin
// protection, then the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.allowedPeer(r.RemoteAddr) {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	protect := http.NewCrossOriginProtection()
	protect.Handler(s.mux).ServeHTTP(w, r)
}

func (s *Server) allowedPeer(remote string) bool { return PeerAllowed(remote, s.cfg.AdminNetworks) }

// PeerAllowed tells whether remote (an address:port) is loopback or in
// nets. Stops anyone elsewhere on the network, the phone network
// included, from reaching a login page at all.
func PeerAllowed(remote string, nets []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	if a.IsLoopback() {
		return true
	}
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

var errSetupToken = errors.New("setup token wrong or expired")

// checkSetup verifies the setup token in constant time.
func (s *Server) checkSetup(ctx context.Context, tok string) error {
	want, err := s.cfg.Store.Setting(ctx, settingSetupHash, "")
	if err != nil {
		return err
	}
	exp, err := s.cfg.Store.Setting(ctx, settingSetupExpires, "0")
	if err != nil {
		return err
	}
	var ms int64
	fmt.Sscan(exp, &ms)
	got := hex.EncodeToString(tokenHash(tok))
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 || s.cfg.Now().After(time.UnixMilli(ms)) {
		return errSetupToken
	}
	return nil
}
