package centre

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/sekisho/sekisho/internal/console"
	"github.com/sekisho/sekisho/internal/credential"
)

// The fleet dashboard: the vendor's view of the fleet in the unit
// console's style, served on its own plain-HTTP listener
// (Config.ConsoleListen). Its pages are server-rendered forms with no
// script at all, and the Content-Security-Policy forbids scripts: a unit
// name, an alert's subject or a country a unit reports is text chosen
// by a unit (or whoever holds a unit's certificate), and it must not run
// in the vendor's browser, where one click pushes policy to every unit.

// DefaultConsoleListen is where `centre serve` serves the dashboard
// unless told otherwise.
const DefaultConsoleListen = "127.0.0.1:7444"

//go:embed web
var dashFS embed.FS

var dashPageNames = []string{"setup", "login", "fleet", "unit", "push", "log", "operators", "message"}

// dashCSP is the unit console's policy: nothing but the stylesheet from
// this origin, forms only to this origin, no framing, no <base>. Stops
// injected markup from running script, loading anything, sending a
// form elsewhere or being framed (clickjacking).
const dashCSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// maxFormBody bounds a form: stops a client from making the centre
// buffer a large body.
const maxFormBody = 64 << 10

// dashState is the dashboard's part of a Server; its zero value is
// ready (the templates are parsed on first use).
type dashState struct {
	once   sync.Once
	pages  map[string]*template.Template
	clock  func() time.Time // nil: time.Now; tests set it
	ghosts credential.Ghosts
}

func (d *dashState) now() time.Time {
	if d.clock != nil {
		return d.clock()
	}
	return time.Now()
}

func (d *dashState) templates() map[string]*template.Template {
	d.once.Do(func() {
		funcs := template.FuncMap{
			"t":    func(string) string { return "" }, // replaced per request by the request's language
			"when": when,
			// svg marks a QR code drawn by console.QRSVG (from digits and
			// letters the centre chose) as safe HTML.
			"svg": func(s string) template.HTML { return template.HTML(s) },
		}
		d.pages = map[string]*template.Template{}
		for _, n := range dashPageNames {
			d.pages[n] = template.Must(template.New(n).Funcs(funcs).ParseFS(dashFS, "web/layout.html", "web/"+n+".html"))
		}
	})
	return d.pages
}

// when formats a time for the pages; the zero time is a dash.
func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// CheckConsoleListen refuses a dashboard address that the internet, or
// anyone but the vendor's administrators, could reach (the unit
// console's rules: loopback; or one specific address with admin
// networks), and one shared with the units' listener (unitsListen):
// that address faces every office's network and the internet, and the
// dashboard is where one click pushes policy to the whole fleet. "" (no
// dashboard) passes.
func CheckConsoleListen(listen, unitsListen string, adminNets []netip.Prefix) error {
	if listen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("centre: --console-listen %q: want HOST:PORT such as %s", listen, DefaultConsoleListen)
	}
	if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
		return fmt.Errorf("centre: --console-listen %s listens on every address, the internet's included: name one (loopback, or one in --admin-networks)", listen)
	}
	if a, err := netip.ParseAddr(host); err == nil && !a.IsLoopback() {
		uh, _, _ := net.SplitHostPort(unitsListen)
		if ua, err := netip.ParseAddr(uh); err == nil && (ua.Unmap() == a.Unmap() || ua.IsUnspecified()) {
			return fmt.Errorf("centre: --console-listen %s shares an address with the units' listener (--listen %s): "+
				"give the dashboard a loopback or internal address the units' listener does not use", listen, unitsListen)
		}
	}
	if err := console.CheckListen(listen, adminNets, []string{unitsListen}); err != nil {
		msg := strings.TrimPrefix(err.Error(), "config: console: ")
		return fmt.Errorf("centre: --console-listen: %s", msg)
	}
	return nil
}

// dashRunning is the dashboard's listener while Serve runs.
type dashRunning struct {
	srv  *http.Server
	done chan error
}

// startDash serves the dashboard on Config.ConsoleListen, if set, until
// stop; if it fails, cancel ends the centre too. nil when there is none.
func (s *Server) startDash(ctx context.Context, cancel context.CancelFunc) (*dashRunning, error) {
	if s.cfg.ConsoleListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", s.cfg.ConsoleListen)
	if err != nil {
		return nil, fmt.Errorf("centre: --console-listen %s: %w", s.cfg.ConsoleListen, err)
	}
	// Where `centre operator add` points the setup links it prints.
	if err := s.st.SetSetting(ctx, SettingConsoleListen, ln.Addr().String()); err != nil {
		s.log.Warn("centre: record the dashboard's address", "err", err)
	}
	d := &dashRunning{done: make(chan error, 1), srv: &http.Server{
		Handler:           s.DashHandler(),
		ReadHeaderTimeout: 10 * time.Second, // a slow client cannot hold connections open headerless
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}}
	go func() {
		err := d.srv.Serve(ln)
		if !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("centre: the dashboard stopped; stopping the centre", "err", err)
			cancel()
		}
		d.done <- err
	}()
	s.log.Info("centre: fleet dashboard", "url", "http://"+ln.Addr().String()+"/")
	return d, nil
}

// stop shuts the dashboard down (5 s for requests under way) and returns
// why it had failed, if it had.
func (d *dashRunning) stop(ctx context.Context) error {
	if d == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if d.srv.Shutdown(sctx) != nil {
		d.srv.Close()
	}
	if err := <-d.done; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("centre: dashboard: %w", err)
	}
	return nil
}

// DashHandler is the fleet dashboard. Every request passes, in order:
// the peer address check, the Host check, the security headers, a bound
// on the body, and Go's cross-origin protection, before any route.
func (s *Server) DashHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Write(console.StyleCSS())
	})
	mux.HandleFunc("GET /lang/{lang}", s.dashLang)
	mux.HandleFunc("GET /setup", s.setupPage)
	mux.HandleFunc("POST /setup", s.setupPost)
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.loginPost)
	mux.HandleFunc("POST /logout", s.logoutPost)
	mux.HandleFunc("GET /{$}", s.dashAuthed(OperatorViewer, s.fleetPage))
	mux.HandleFunc("GET /units/{id}", s.dashAuthed(OperatorViewer, s.unitPage))
	mux.HandleFunc("POST /units/{id}/revoke", s.dashAuthed(OperatorAdmin, s.unitRevoke))
	mux.Handle("/units/{id}/console/", s.dashAuthed(OperatorAdmin, s.maintenanceProxy))
	mux.HandleFunc("GET /push", s.dashAuthed(OperatorAdmin, s.pushPage))
	mux.HandleFunc("POST /push", s.dashAuthed(OperatorAdmin, s.pushPost))
	mux.HandleFunc("GET /log", s.dashAuthed(OperatorViewer, s.logPage))
	mux.HandleFunc("GET /operators", s.dashAuthed(OperatorAdmin, s.operatorsPage))
	mux.HandleFunc("POST /operators", s.dashAuthed(OperatorAdmin, s.operatorsAdd))
	mux.HandleFunc("POST /operators/delete", s.dashAuthed(OperatorAdmin, s.operatorsDelete))
	s.dash.templates() // parsed now: a broken template stops the start, not a request
	// Every route, the maintenance proxy's included: stops another
	// site's page from making the operator's browser post a form here
	// (cross-site request forgery), by Sec-Fetch-Site or Origin.
	protected := http.NewCrossOriginProtection().Handler(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Stops anyone outside loopback and the admin networks from
		// reaching a login page to guess at.
		if !s.allowedPeer(r.RemoteAddr) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		// Stops DNS rebinding: a page on a stranger's domain that
		// resolves to this address would otherwise be same-origin with
		// the dashboard in the operator's browser.
		if !s.allowedHost(r.Host) {
			http.Error(w, "reach the dashboard by its IP address, localhost or the centre's --name", http.StatusMisdirectedRequest)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", dashCSP)
		h.Set("X-Frame-Options", "DENY")           // clickjacking, for browsers before frame-ancestors
		h.Set("X-Content-Type-Options", "nosniff") // a unit's text is never sniffed into HTML or script
		h.Set("Cache-Control", "no-store")         // fleet data and setup links stay out of shared and disk caches
		h.Set("Referrer-Policy", "no-referrer")    // a setup link's token never leaves in a Referer header
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		}
		protected.ServeHTTP(w, r)
	})
}

func (s *Server) allowedPeer(remote string) bool {
	return console.PeerAllowed(remote, s.cfg.AdminNetworks)
}

func (s *Server) allowedHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return strings.EqualFold(host, "localhost") || (s.cfg.Name != "" && strings.EqualFold(host, s.cfg.Name))
}

// dashPage is what every page gets.
type dashPage struct {
	Lang    string
	Title   string
	Page    string
	Op      *Operator
	Admin   bool
	Errors  map[string]string
	Flash   string
	Refresh int // seconds; 0: no automatic reload
	Data    any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, page string, d dashPage) {
	d.Lang, d.Page = dashLangOf(r), page
	if d.Title == "" {
		d.Title = dashTranslate(d.Lang, "nav."+page)
	}
	if d.Errors == nil {
		d.Errors = map[string]string{}
	}
	d.Admin = d.Op != nil && d.Op.Role == OperatorAdmin
	t, err := s.dash.templates()[page].Clone()
	if err == nil {
		t.Funcs(template.FuncMap{"t": func(k string) string { return dashTranslate(d.Lang, k) }})
	}
	var buf bytes.Buffer
	if err == nil {
		err = t.ExecuteTemplate(&buf, "layout", d)
	}
	if err != nil {
		s.log.Error("centre: dashboard page", "page", page, "err", err)
		http.Error(w, "page error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (s *Server) tr(r *http.Request, key string) string { return dashTranslate(dashLangOf(r), key) }

func (s *Server) dashLang(w http.ResponseWriter, r *http.Request) {
	l := r.PathValue("lang")
	if l != langJA && l != langEN {
		http.NotFound(w, r)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600, SameSite: http.SameSiteStrictMode, HttpOnly: true, Secure: true})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
