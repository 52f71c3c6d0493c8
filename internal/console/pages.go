package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"strconv"

	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/store"
)

// The pages are server-rendered HTML forms with no script at all: the
// Content-Security-Policy forbids scripts, so an injected string (a
// dialled number, a SIP user name shown in the call records) cannot run
// in an administrator's browser. Cross-origin form posts are refused by
// the same protection as the API.

//go:embed web
var webFS embed.FS

var pageNames = []string{"setup", "login", "dashboard", "extensions", "trunks", "policy", "bans", "calls", "evidence", "settings"}

// parsePages parses each page with the layout. "t" is replaced per request
// with the request's language.
func parsePages() map[string]*template.Template {
	funcs := template.FuncMap{
		"t": func(string) string { return "" },
		// svg marks a QR code drawn by qrSVG (from digits and letters
		// this package chose) as safe HTML.
		"svg": func(s string) template.HTML { return template.HTML(s) },
		"classes": func() []string {
			return []string{string(policy.ClassInternal), string(policy.ClassDomestic), string(policy.ClassMobile), string(policy.ClassInternational)}
		},
	}
	out := map[string]*template.Template{}
	for _, n := range pageNames {
		out[n] = template.Must(template.New(n).Funcs(funcs).ParseFS(webFS, "web/layout.html", "web/"+n+".html"))
	}
	return out
}

// pageData is what every page gets.
type pageData struct {
	Lang    string
	Title   string
	Page    string
	User    *store.Admin
	CanEdit bool // admin
	Errors  map[string]string
	Flash   string
	Refresh int // seconds; 0: no automatic reload
	Data    any
	// Base is put before every link: "" on the console's own listener,
	// the centre's path to this unit in a maintenance session.
	Base   string
	Remote bool // a maintenance session from the vendor's centre
}

const pageCSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, page string, d pageData) {
	d.Lang, d.Page = LangOf(r), page
	if rm, ok := remoteOf(r.Context()); ok {
		d.Base, d.Remote = rm.base, true
	}
	if d.Title == "" {
		d.Title = translate(d.Lang, "nav."+page)
	}
	if d.Errors == nil {
		d.Errors = map[string]string{}
	}
	if d.User != nil {
		d.CanEdit = d.User.Role == RoleAdmin
	}
	t, err := s.pages[page].Clone()
	if err == nil {
		t.Funcs(template.FuncMap{"t": func(k string) string { return translate(d.Lang, k) }})
	}
	var buf bytes.Buffer
	if err == nil {
		err = t.ExecuteTemplate(&buf, "layout", d)
	}
	if err != nil {
		s.cfg.Log.Error("console: page", "page", page, "err", err)
		http.Error(w, "page error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// page wraps a page handler: no session goes to the login page; a role
// too low gets the page's 403.
func (s *Server) page(min string, h func(http.ResponseWriter, *http.Request, store.Admin)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, _, herr := s.session(r, min)
		if herr != nil && herr.code == http.StatusUnauthorized {
			s.redirect(w, r, "/login")
			return
		}
		if herr != nil {
			var u *store.Admin
			if herr.code == http.StatusForbidden && a.Username != "" {
				u = &a
			}
			s.render(w, r, herr.code, "login", pageData{User: u, Title: "403", Errors: map[string]string{"": herr.Msg}, Data: loginData{}})
			return
		}
		h(w, r, a)
	}
}

// errorsOf turns a refusal into the form's errors.
func errorsOf(err error) map[string]string {
	var fe *admin.FieldError
	if errors.As(err, &fe) {
		return map[string]string{fe.Field: fe.Msg}
	}
	return map[string]string{"": "the change could not be stored; nothing was changed"}
}

func httpErrors(h *httpError) map[string]string { return map[string]string{h.Field: h.Msg} }

func (s *Server) pageRoutes() {
	s.mux.HandleFunc("GET /static/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		b, _ := webFS.ReadFile("web/style.css")
		w.Write(b)
	})
	s.mux.HandleFunc("GET /lang/{lang}", func(w http.ResponseWriter, r *http.Request) {
		l := r.PathValue("lang")
		if l != LangJA && l != LangEN {
			http.NotFound(w, r)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: LangCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600, SameSite: http.SameSiteStrictMode, HttpOnly: true, Secure: true})
		s.redirect(w, r, "/")
	})
	s.mux.HandleFunc("GET /{$}", s.home)
	s.mux.HandleFunc("GET /setup", s.setupPage)
	s.mux.HandleFunc("POST /setup", s.setupPost)
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.loginPost)
	s.mux.HandleFunc("POST /logout", s.logoutPost)
	s.mux.HandleFunc("GET /extensions", s.page(RoleMaintenance, s.extensionsPage))
	s.mux.HandleFunc("POST /extensions", s.page(RoleAdmin, s.extensionsAdd))
	s.mux.HandleFunc("POST /extensions/{number}", s.page(RoleAdmin, s.extensionsEdit))
	s.mux.HandleFunc("POST /extensions/{number}/unlock", s.page(RoleOperator, s.extensionsUnlock))
	s.mux.HandleFunc("POST /extensions/{number}/delete", s.page(RoleAdmin, s.extensionsDelete))
	s.mux.HandleFunc("POST /extensions/{number}/forward", s.page(RoleAdmin, s.extensionsForward))
	s.mux.HandleFunc("POST /extensions/{number}/forward/clear", s.page(RoleAdmin, s.extensionsForwardClear))
	s.mux.HandleFunc("GET /trunks", s.page(RoleMaintenance, s.trunksPage))
	s.mux.HandleFunc("GET /policy", s.page(RoleMaintenance, s.policyPage))
	s.mux.HandleFunc("POST /policy/check", s.page(RoleMaintenance, s.policyCheck))
	s.mux.HandleFunc("POST /policy/profiles", s.page(RoleAdmin, s.policyProfile))
	s.mux.HandleFunc("POST /policy/profiles/{name}", s.page(RoleAdmin, s.policyProfile))
	s.mux.HandleFunc("POST /policy/rates", s.page(RoleAdmin, s.policyRate))
	s.mux.HandleFunc("POST /policy/rates/delete", s.page(RoleAdmin, s.policyRateDelete))
	s.mux.HandleFunc("POST /policy/unfreeze", s.page(RoleOperator, s.policyUnfreeze))
	s.mux.HandleFunc("GET /bans", s.page(RoleMaintenance, s.bansPage))
	s.mux.HandleFunc("POST /bans/delete", s.page(RoleOperator, s.bansDelete))
	s.mux.HandleFunc("GET /calls", s.page(RoleMaintenance, s.callsPage))
	s.mux.HandleFunc("GET /evidence", s.page(RoleMaintenance, s.evidencePage))
	s.mux.HandleFunc("GET /settings", s.page(RoleMaintenance, s.settingsPage))
	s.mux.HandleFunc("POST /settings/maintenance", s.page(RoleAdmin, s.settingsMaintenance))
	s.mux.HandleFunc("POST /settings/users", s.page(RoleAdmin, s.settingsAddUser))
	s.mux.HandleFunc("POST /settings/users/delete", s.page(RoleAdmin, s.settingsDeleteUser))
}

// home is the dashboard, or the way to it: setup while there is no
// account, the login page without a session.
func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	if n, err := s.cfg.Store.AdminCount(r.Context()); err == nil && n == 0 {
		s.redirect(w, r, "/setup")
		return
	}
	s.page(RoleMaintenance, func(w http.ResponseWriter, r *http.Request, a store.Admin) {
		d, err := s.dashboard(r.Context())
		pd := pageData{User: &a, Refresh: 5, Data: d}
		if err != nil {
			pd.Errors = map[string]string{"": "could not read the dashboard's figures"}
		}
		s.render(w, r, http.StatusOK, "dashboard", pd)
	})(w, r)
}

type setupData struct {
	Done     bool
	Token    string
	Username string
	Secret   string
	QR       template.HTML
}

func (s *Server) enrolment(username string) (string, template.HTML) {
	sec := NewTOTPSecret()
	if username == "" {
		username = "admin"
	}
	svg, _ := qrSVG(otpauthURL(username, sec))
	return sec, template.HTML(svg)
}

func (s *Server) setupPage(w http.ResponseWriter, r *http.Request) {
	n, _ := s.cfg.Store.AdminCount(r.Context())
	d := setupData{Done: n > 0, Token: r.URL.Query().Get("token")}
	d.Secret, d.QR = s.enrolment("")
	s.render(w, r, http.StatusOK, "setup", pageData{Title: translate(LangOf(r), "setup.title"), Data: d})
}

func (s *Server) setupPost(w http.ResponseWriter, r *http.Request) {
	c := credentials{Token: r.PostFormValue("token"), Username: r.PostFormValue("username"), Password: r.PostFormValue("password"),
		TOTPSecret: r.PostFormValue("totp_secret"), Code: r.PostFormValue("code")}
	a, herr := s.doSetup(r.Context(), c)
	if herr != nil {
		d := setupData{Token: c.Token, Username: c.Username}
		// A failed code keeps the secret already scanned; anything else
		// may too, so the person does not scan twice.
		d.Secret = c.TOTPSecret
		label := "admin"
		if credential.ValidName(c.Username) {
			label = c.Username
		}
		if !validSecret(d.Secret) {
			d.Secret, d.QR = s.enrolment(label)
		} else {
			svg, _ := qrSVG(otpauthURL(label, d.Secret))
			d.QR = template.HTML(svg)
		}
		s.render(w, r, herr.code, "setup", pageData{Title: translate(LangOf(r), "setup.title"), Errors: httpErrors(herr), Data: d})
		return
	}
	if tok, err := s.newSession(r.Context(), a.Username); err == nil {
		s.setSession(w, tok)
	}
	s.redirect(w, r, "/")
}

type loginData struct {
	Enrol    bool
	Username string
	Secret   string
	QR       template.HTML
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login", pageData{Title: translate(LangOf(r), "login.title"), Data: loginData{}})
}

func (s *Server) loginPost(w http.ResponseWriter, r *http.Request) {
	c := credentials{Username: r.PostFormValue("username"), Password: r.PostFormValue("password"),
		Code: r.PostFormValue("code"), TOTPSecret: r.PostFormValue("totp_secret")}
	tok, _, herr := s.doLogin(r.Context(), c, peerOf(r))
	if herr == nil {
		s.setSession(w, tok)
		s.redirect(w, r, "/")
		return
	}
	d := loginData{Username: c.Username}
	if herr == errEnrol || (c.TOTPSecret != "" && herr.Field != "") {
		d.Enrol = true
		d.Secret = c.TOTPSecret
		if !validSecret(d.Secret) {
			d.Secret, d.QR = s.enrolment(c.Username)
		} else {
			svg, _ := qrSVG(otpauthURL(c.Username, d.Secret))
			d.QR = template.HTML(svg)
		}
	}
	errs := httpErrors(herr)
	if herr == errEnrol {
		errs = nil
	}
	s.render(w, r, herr.code, "login", pageData{Title: translate(LangOf(r), "login.title"), Errors: errs, Data: d})
}

func (s *Server) logoutPost(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(cookieName); err == nil {
		s.cfg.Store.DeleteSession(r.Context(), tokenHash(c.Value))
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	s.redirect(w, r, "/login")
}

type extensionsData struct {
	Extensions   []extView
	Forwards     map[string][]store.Forward // by extension
	Created      *NewExtension
	Form         extInput
	EditErrorFor string
}

func (s *Server) extensionsRender(w http.ResponseWriter, r *http.Request, a store.Admin, code int, d extensionsData, errs map[string]string, flash string) {
	var err error
	if d.Extensions, err = s.extViews(r.Context()); err != nil {
		errs = map[string]string{"": "could not read extensions"}
	}
	fw, err := s.cfg.Store.Forwards(r.Context(), "")
	if err != nil {
		errs = map[string]string{"": "could not read the forwards"}
	}
	d.Forwards = map[string][]store.Forward{}
	for _, f := range fw {
		d.Forwards[f.Ext] = append(d.Forwards[f.Ext], f)
	}
	s.render(w, r, code, "extensions", pageData{User: &a, Errors: errs, Flash: flash, Data: d})
}

func (s *Server) extensionsPage(w http.ResponseWriter, r *http.Request, a store.Admin) {
	s.extensionsRender(w, r, a, http.StatusOK, extensionsData{}, nil, "")
}

func (s *Server) extensionsAdd(w http.ResponseWriter, r *http.Request, a store.Admin) {
	in := extInput{Number: r.PostFormValue("number"), Name: r.PostFormValue("name"), Digest: r.PostFormValue("digest")}
	out, err := s.addExtension(r.Context(), s.sipTarget(r), a.Username, in)
	if err != nil {
		s.extensionsRender(w, r, a, http.StatusBadRequest, extensionsData{Form: in}, errorsOf(err), "")
		return
	}
	// Shown once, on this answer to the POST; never in a URL or a redirect.
	s.extensionsRender(w, r, a, http.StatusOK, extensionsData{Created: &out}, nil, "")
}

// formField returns a pointer to the form value of name, or nil when the
// form left it empty (unchanged).
func formField(r *http.Request, name string) *string {
	v := r.PostFormValue(name)
	if v == "" {
		return nil
	}
	return &v
}

func (s *Server) extensionsEdit(w http.ResponseWriter, r *http.Request, a store.Admin) {
	n := r.PathValue("number")
	in := extEdit{Class: formField(r, "class"), Countries: formField(r, "countries"), Profile: formField(r, "profile"), Networks: formField(r, "networks")}
	if _, err := s.editExtension(r.Context(), a.Username, n, in); err != nil {
		s.extensionsRender(w, r, a, http.StatusBadRequest, extensionsData{EditErrorFor: n}, errorsOf(err), "")
		return
	}
	s.extensionsRender(w, r, a, http.StatusOK, extensionsData{}, nil, n+": "+translate(LangOf(r), "saved"))
}

// extensionsForward sets a forward from the extension's form; a refusal
// shows the gate's reasons next to that extension.
func (s *Server) extensionsForward(w http.ResponseWriter, r *http.Request, a store.Admin) {
	n := r.PathValue("number")
	if _, err := s.setForward(r, a.Username, n, r.PostFormValue("when"), r.PostFormValue("to")); err != nil {
		s.extensionsRender(w, r, a, http.StatusBadRequest, extensionsData{EditErrorFor: n}, errorsOf(err), "")
		return
	}
	s.extensionsRender(w, r, a, http.StatusOK, extensionsData{}, nil, n+": "+translate(LangOf(r), "saved"))
}

func (s *Server) extensionsForwardClear(w http.ResponseWriter, r *http.Request, a store.Admin) {
	n := r.PathValue("number")
	if err := s.clearForward(r, a.Username, n, r.PostFormValue("when")); err != nil {
		s.extensionsRender(w, r, a, http.StatusBadRequest, extensionsData{EditErrorFor: n}, errorsOf(err), "")
		return
	}
	s.extensionsRender(w, r, a, http.StatusOK, extensionsData{}, nil, n+": "+translate(LangOf(r), "saved"))
}

func (s *Server) extensionsUnlock(w http.ResponseWriter, r *http.Request, a store.Admin) {
	n := r.PathValue("number")
	if _, err := s.unlockExtension(r.Context(), a.Username, n); err != nil {
		s.extensionsRender(w, r, a, http.StatusNotFound, extensionsData{}, map[string]string{"": "no extension " + n}, "")
		return
	}
	s.extensionsRender(w, r, a, http.StatusOK, extensionsData{}, nil, n+": "+translate(LangOf(r), "saved"))
}

func (s *Server) extensionsDelete(w http.ResponseWriter, r *http.Request, a store.Admin) {
	n := r.PathValue("number")
	if err := s.cfg.Store.DeleteExtension(r.Context(), n); err != nil {
		s.extensionsRender(w, r, a, http.StatusNotFound, extensionsData{}, map[string]string{"": "no extension " + n}, "")
		return
	}
	s.record(audit.ConfigChange, a.Username, "extension "+n, "deleted in the console")
	s.extensionsRender(w, r, a, http.StatusOK, extensionsData{}, nil, n+": "+translate(LangOf(r), "saved"))
}

func (s *Server) trunksPage(w http.ResponseWriter, r *http.Request, a store.Admin) {
	d, err := s.trunksData(r.Context())
	var errs map[string]string
	if err != nil {
		errs = map[string]string{"": "could not read trunks"}
	}
	s.render(w, r, http.StatusOK, "trunks", pageData{User: &a, Errors: errs, Data: d})
}

type policyData struct {
	Policy          policyView
	ProfileErrorFor string         // the profile whose form had errors ("+new": the new one)
	NewProfile      policy.Profile // the new profile form's starting values
	Check           *admin.Check
	CheckForm       checkInput
	RateForm        struct{ Prefix, PerMinute, Note string }
}

func (s *Server) policyRender(w http.ResponseWriter, r *http.Request, a store.Admin, code int, d policyData, errs map[string]string, flash string) {
	var err error
	if d.NewProfile.Name == "" {
		d.NewProfile = policy.Default()
	}
	if d.Policy, err = s.policyData(r.Context()); err != nil {
		errs = map[string]string{"": "could not read the policy"}
	}
	s.render(w, r, code, "policy", pageData{User: &a, Errors: errs, Flash: flash, Data: d})
}

func (s *Server) policyPage(w http.ResponseWriter, r *http.Request, a store.Admin) {
	s.policyRender(w, r, a, http.StatusOK, policyData{}, nil, "")
}

func (s *Server) policyCheck(w http.ResponseWriter, r *http.Request, a store.Admin) {
	in := checkInput{From: r.PostFormValue("from"), Dialled: r.PostFormValue("dialled")}
	c, err := admin.CheckNumber(r.Context(), s.cfg.Store, in.From, in.Dialled)
	if err != nil {
		s.policyRender(w, r, a, http.StatusBadRequest, policyData{CheckForm: in}, errorsOf(err), "")
		return
	}
	s.policyRender(w, r, a, http.StatusOK, policyData{CheckForm: in, Check: &c}, nil, "")
}

// policyProfile creates (no name in the path) or edits a profile from its
// form; every field of the form is sent, so every field is applied.
func (s *Server) policyProfile(w http.ResponseWriter, r *http.Request, a store.Admin) {
	name, create, errFor := r.PathValue("name"), false, r.PathValue("name")
	if name == "" {
		name, create, errFor = r.PostFormValue("name"), true, "+new"
		if err := policy.ValidName(name); err != nil {
			s.policyRender(w, r, a, http.StatusBadRequest, policyData{ProfileErrorFor: errFor}, map[string]string{"name": err.Error()}, "")
			return
		}
	}
	in := profileInput{Class: formField(r, "class"), Countries: ptrTo(r.PostFormValue("countries")), Hours: ptrTo(r.PostFormValue("hours")),
		MaxDuration: formField(r, "max_duration")}
	bad := ""
	num := func(field string) *int {
		v := r.PostFormValue(field)
		if v == "" {
			v = "0"
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			bad = field
		}
		return &n
	}
	in.MaxCalls, in.IntlPerMinute, in.IntlPerHour = num("max_calls"), num("intl_per_minute"), num("intl_per_hour")
	in.SamePrefix, in.DistinctPerHour = num("same_prefix"), num("distinct_per_hour")
	spend := int64(*num("daily_spend"))
	in.DailySpend = &spend
	if bad != "" {
		s.policyRender(w, r, a, http.StatusBadRequest, policyData{ProfileErrorFor: errFor}, map[string]string{bad: "a whole number, 0 (no limit) or more"}, "")
		return
	}
	if _, err := s.putProfile(r.Context(), a.Username, name, in, create); err != nil {
		s.policyRender(w, r, a, http.StatusBadRequest, policyData{ProfileErrorFor: errFor}, errorsOf(err), "")
		return
	}
	s.policyRender(w, r, a, http.StatusOK, policyData{}, nil, name+": "+translate(LangOf(r), "saved"))
}

func ptrTo(s string) *string { return &s }

func (s *Server) policyRate(w http.ResponseWriter, r *http.Request, a store.Admin) {
	var d policyData
	d.RateForm.Prefix, d.RateForm.PerMinute, d.RateForm.Note = r.PostFormValue("prefix"), r.PostFormValue("per_minute"), r.PostFormValue("note")
	v, err := strconv.ParseInt(d.RateForm.PerMinute, 10, 64)
	if err != nil {
		s.policyRender(w, r, a, http.StatusBadRequest, d, map[string]string{"per_minute": "a whole number, 0 or more"}, "")
		return
	}
	if err := s.setRate(r.Context(), a.Username, rateInput{Prefix: d.RateForm.Prefix, PerMinute: v, Note: d.RateForm.Note}); err != nil {
		s.policyRender(w, r, a, http.StatusBadRequest, d, errorsOf(err), "")
		return
	}
	s.policyRender(w, r, a, http.StatusOK, policyData{}, nil, d.RateForm.Prefix+": "+translate(LangOf(r), "saved"))
}

func (s *Server) policyRateDelete(w http.ResponseWriter, r *http.Request, a store.Admin) {
	p := r.PostFormValue("prefix")
	if err := s.cfg.Store.DeleteRate(r.Context(), p); err != nil {
		s.policyRender(w, r, a, http.StatusNotFound, policyData{}, map[string]string{"": "no rate for " + p}, "")
		return
	}
	s.record(audit.ConfigChange, a.Username, "rate "+p, "deleted in the console")
	s.policyRender(w, r, a, http.StatusOK, policyData{}, nil, p+": "+translate(LangOf(r), "saved"))
}

func (s *Server) policyUnfreeze(w http.ResponseWriter, r *http.Request, a store.Admin) {
	if _, err := s.unfreeze(r.Context(), a.Username); err != nil {
		s.policyRender(w, r, a, http.StatusInternalServerError, policyData{}, map[string]string{"": "could not unfreeze"}, "")
		return
	}
	s.redirect(w, r, "/")
}

func (s *Server) activeBans(ctx context.Context) ([]store.Ban, error) {
	rows, err := s.cfg.Store.Bans(ctx)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	out := []store.Ban{}
	for _, b := range rows {
		if b.Active(now) {
			out = append(out, b)
		}
	}
	return out, nil
}

func (s *Server) bansRender(w http.ResponseWriter, r *http.Request, a store.Admin, code int, errs map[string]string, flash string) {
	bans, err := s.activeBans(r.Context())
	if err != nil {
		errs = map[string]string{"": "could not read bans"}
	}
	s.render(w, r, code, "bans", pageData{User: &a, Errors: errs, Flash: flash, Data: bans})
}

func (s *Server) bansPage(w http.ResponseWriter, r *http.Request, a store.Admin) {
	s.bansRender(w, r, a, http.StatusOK, nil, "")
}

func (s *Server) bansDelete(w http.ResponseWriter, r *http.Request, a store.Admin) {
	addr := r.PostFormValue("address")
	if herr := s.unbanAddr(r.Context(), a.Username, addr); herr != nil {
		s.bansRender(w, r, a, herr.code, map[string]string{"": addr + ": " + herr.Msg}, "")
		return
	}
	s.bansRender(w, r, a, http.StatusOK, nil, addr+": "+translate(LangOf(r), "saved"))
}

type callsData struct {
	Q, Since string
	Rows     []cdrView
}

func (s *Server) callsPage(w http.ResponseWriter, r *http.Request, a store.Admin) {
	d := callsData{Q: r.URL.Query().Get("q"), Since: r.URL.Query().Get("since")}
	rows, herr := s.cdrs(r)
	if herr != nil {
		s.render(w, r, herr.code, "calls", pageData{User: &a, Errors: httpErrors(herr), Data: d})
		return
	}
	d.Rows = rows
	s.render(w, r, http.StatusOK, "calls", pageData{User: &a, Data: d})
}

type evidenceData struct {
	Status  admin.LogStatus
	Records []store.AuditRecord
}

func (s *Server) evidencePage(w http.ResponseWriter, r *http.Request, a store.Admin) {
	var d evidenceData
	l, err := admin.LoadLog(r.Context(), s.cfg.Store)
	if err != nil {
		s.render(w, r, http.StatusInternalServerError, "evidence", pageData{User: &a, Errors: map[string]string{"": "could not read the evidence log"}, Data: d})
		return
	}
	d.Status = l.Verify(nil, nil)
	// The newest 200, newest first.
	for i := len(l.Records) - 1; i >= 0 && len(d.Records) < 200; i-- {
		d.Records = append(d.Records, l.Records[i])
	}
	s.render(w, r, http.StatusOK, "evidence", pageData{User: &a, Data: d})
}

type settingsData struct {
	Settings settingsView
	Users    []userView
	UserForm credentials
}

func (s *Server) settingsRender(w http.ResponseWriter, r *http.Request, a store.Admin, code int, d settingsData, errs map[string]string, flash string) {
	d.Settings = s.settingsData(r.Context())
	if a.Role == RoleAdmin {
		var err error
		if d.Users, err = s.users(r.Context()); err != nil {
			errs = map[string]string{"": "could not read accounts"}
		}
	}
	d.UserForm.Password = ""
	s.render(w, r, code, "settings", pageData{User: &a, Errors: errs, Flash: flash, Data: d})
}

func (s *Server) settingsPage(w http.ResponseWriter, r *http.Request, a store.Admin) {
	s.settingsRender(w, r, a, http.StatusOK, settingsData{}, nil, "")
}

func (s *Server) settingsMaintenance(w http.ResponseWriter, r *http.Request, a store.Admin) {
	v := r.PostFormValue("maintenance")
	if v != "on" && v != "off" {
		s.settingsRender(w, r, a, http.StatusBadRequest, settingsData{}, map[string]string{"": "maintenance: on or off"}, "")
		return
	}
	if err := s.setMaintenance(r.Context(), a.Username, v == "on"); err != nil {
		s.settingsRender(w, r, a, http.StatusInternalServerError, settingsData{}, map[string]string{"": "could not store the setting"}, "")
		return
	}
	s.settingsRender(w, r, a, http.StatusOK, settingsData{}, nil, translate(LangOf(r), "saved"))
}

func (s *Server) settingsAddUser(w http.ResponseWriter, r *http.Request, a store.Admin) {
	c := credentials{Username: r.PostFormValue("username"), Password: r.PostFormValue("password"), Role: r.PostFormValue("role")}
	if herr := s.createUser(r.Context(), a.Username, c); herr != nil {
		s.settingsRender(w, r, a, herr.code, settingsData{UserForm: c}, httpErrors(herr), "")
		return
	}
	s.settingsRender(w, r, a, http.StatusOK, settingsData{}, nil, c.Username+": "+translate(LangOf(r), "saved"))
}

func (s *Server) settingsDeleteUser(w http.ResponseWriter, r *http.Request, a store.Admin) {
	u := r.PostFormValue("username")
	if u == a.Username {
		s.settingsRender(w, r, a, http.StatusBadRequest, settingsData{}, map[string]string{"": "you cannot delete your own account"}, "")
		return
	}
	if err := s.cfg.Store.DeleteAdmin(r.Context(), u); err != nil {
		s.settingsRender(w, r, a, http.StatusNotFound, settingsData{}, map[string]string{"": "no account " + u}, "")
		return
	}
	s.record(audit.ConfigChange, a.Username, "console user "+u, "deleted in the console")
	s.settingsRender(w, r, a, http.StatusOK, settingsData{}, nil, u+": "+translate(LangOf(r), "saved"))
}
