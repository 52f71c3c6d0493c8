package centre

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/console"
	"github.com/sekisho/sekisho/internal/wire"
)

// The dashboard's pages: each reads the store on every request, so a
// push or a revoke made with the CLI or on another replica shows at once.

// attentionWindow: a unit with an alert received this recently is
// highlighted on the overview.
const attentionWindow = 24 * time.Hour

// fleetRow is one unit on the overview.
type fleetRow struct {
	Unit
	Status     *wire.Status // nil: the unit never sent one
	TodayCalls int
	TodaySpend int64
	Top        string // the three countries called most today
	Alerts     int    // alerts received in the last attentionWindow
	Attention  bool   // offline, an alert, or trouble the unit reports
}

type fleetData struct {
	Units                  []fleetRow
	Revoked                []Unit
	Online, Total          int
	CallsNow, TodayCalls   int
	TodaySpend             int64
	AlertsRecent           int
	Coverage               *Coverage
	Alerts                 []Alert
	CoverageErr, AlertsErr bool
}

func decodeStatus(raw json.RawMessage) *wire.Status {
	if len(raw) == 0 {
		return nil
	}
	var st wire.Status
	if json.Unmarshal(raw, &st) != nil {
		return nil
	}
	return &st
}

// topCountries names the n countries with the most calls today.
func topCountries(today []wire.CountryToday, n int) string {
	c := slices.Clone(today)
	slices.SortStableFunc(c, func(a, b wire.CountryToday) int { return cmp.Compare(b.Calls, a.Calls) })
	var parts []string
	for _, t := range c[:min(n, len(c))] {
		parts = append(parts, fmt.Sprintf("%s %d", t.Country, t.Calls))
	}
	return strings.Join(parts, ", ")
}

func (s *Server) fleetData(ctx context.Context) (fleetData, error) {
	var d fleetData
	units, err := s.st.Units(ctx)
	if err != nil {
		return d, err
	}
	recent, err := s.st.AlertCountsSince(ctx, s.dash.now().Add(-attentionWindow))
	if err != nil {
		return d, err
	}
	for _, u := range units {
		if !u.Revoked.IsZero() {
			d.Revoked = append(d.Revoked, u)
			continue
		}
		row := fleetRow{Unit: u, Status: decodeStatus(u.Status), Alerts: recent[u.ID]}
		if st := row.Status; st != nil {
			for _, t := range st.Today {
				row.TodayCalls += t.Calls
				row.TodaySpend += t.Spend
			}
			row.Top = topCountries(st.Today, 3)
			d.CallsNow += st.Calls
			row.Attention = len(st.Suspended) > 0 || st.Frozen != "" || !st.Evidence
		}
		row.Attention = row.Attention || !u.Online || row.Alerts > 0
		d.Total++
		if u.Online {
			d.Online++
		}
		d.TodayCalls += row.TodayCalls
		d.TodaySpend += row.TodaySpend
		d.AlertsRecent += row.Alerts
		d.Units = append(d.Units, row)
	}
	// Those needing attention first, then by name.
	slices.SortStableFunc(d.Units, func(a, b fleetRow) int {
		if a.Attention != b.Attention {
			if a.Attention {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	switch cv, err := s.st.Coverage(ctx, 0); {
	case err == nil:
		d.Coverage = &cv
	case !errors.Is(err, ErrNotFound):
		s.log.Error("centre: dashboard: coverage", "err", err)
		d.CoverageErr = true
	}
	if d.Alerts, err = s.st.Alerts(ctx, 50); err != nil {
		s.log.Error("centre: dashboard: alerts", "err", err)
		d.AlertsErr = true
	}
	return d, nil
}

func (s *Server) fleetPage(w http.ResponseWriter, r *http.Request, op Operator) {
	d, err := s.fleetData(r.Context())
	p := dashPage{Op: &op, Refresh: 5, Data: d}
	if err != nil {
		s.log.Error("centre: dashboard: overview", "err", err)
		p.Errors = map[string]string{"": s.tr(r, "err.read")}
	}
	// The flash after a push names the bundle by its number only: the
	// query carries nothing else that is shown.
	if seq, err := strconv.ParseUint(r.URL.Query().Get("pushed"), 10, 64); err == nil && seq > 0 {
		p.Flash = fmt.Sprintf(s.tr(r, "push.done"), seq)
	}
	s.render(w, r, http.StatusOK, "fleet", p)
}

type unitData struct {
	Unit       Unit
	Status     *wire.Status
	StatusJSON string
	Alerts     []Alert
	Acks       []AckRecord
	Confirm    string // what the operator types to revoke: the name, or the id when it has none
	TodayCalls int
	TodaySpend int64
}

func (s *Server) unitRender(w http.ResponseWriter, r *http.Request, op Operator, code int, errs map[string]string, flash string) {
	ctx := r.Context()
	u, err := s.st.Unit(ctx, r.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		s.render(w, r, http.StatusNotFound, "message", dashPage{Op: &op, Title: "404", Errors: map[string]string{"": s.tr(r, "err.no.unit")}})
		return
	}
	if err != nil {
		s.log.Error("centre: dashboard: unit", "err", err)
		s.render(w, r, http.StatusInternalServerError, "message", dashPage{Op: &op, Title: "500", Errors: map[string]string{"": s.tr(r, "err.read")}})
		return
	}
	d := unitData{Unit: u, Status: decodeStatus(u.Status), Confirm: u.Name}
	if d.Confirm == "" {
		d.Confirm = u.ID
	}
	if d.Status != nil {
		for _, t := range d.Status.Today {
			d.TodayCalls += t.Calls
			d.TodaySpend += t.Spend
		}
		var buf bytes.Buffer
		if json.Indent(&buf, u.Status, "", "  ") == nil {
			d.StatusJSON = buf.String()
		}
	}
	if d.Alerts, err = s.st.UnitAlerts(ctx, u.ID, 100); err == nil {
		d.Acks, err = s.st.UnitAcks(ctx, u.ID, 50)
	}
	if err != nil {
		s.log.Error("centre: dashboard: unit", "err", err)
		errs = map[string]string{"": s.tr(r, "err.read")}
	}
	title := u.Name
	if title == "" {
		title = u.ID
	}
	s.render(w, r, code, "unit", dashPage{Op: &op, Title: title, Errors: errs, Flash: flash, Data: d})
}

func (s *Server) unitPage(w http.ResponseWriter, r *http.Request, op Operator) {
	flash := ""
	if r.URL.Query().Get("revoked") == "1" {
		flash = s.tr(r, "unit.revoked.done")
	}
	s.unitRender(w, r, op, http.StatusOK, nil, flash)
}

// unitRevoke revokes the unit once the operator has typed its name: a
// revoke cannot be undone (the unit must enrol again), so a stray click
// on the wrong row must not do it.
func (s *Server) unitRevoke(w http.ResponseWriter, r *http.Request, op Operator) {
	ctx := r.Context()
	id := r.PathValue("id")
	u, err := s.st.Unit(ctx, id)
	if err != nil {
		s.unitRender(w, r, op, http.StatusNotFound, nil, "")
		return
	}
	want := u.Name
	if want == "" {
		want = u.ID
	}
	if strings.TrimSpace(r.PostFormValue("confirm")) != want {
		s.unitRender(w, r, op, http.StatusBadRequest, map[string]string{"confirm": s.tr(r, "unit.confirm.wrong")}, "")
		return
	}
	if err := s.Revoke(ctx, id); err != nil {
		s.log.Error("centre: dashboard: revoke", "unit", id, "err", err)
		s.unitRender(w, r, op, http.StatusInternalServerError, map[string]string{"": s.tr(r, "err.write")}, "")
		return
	}
	s.logAction(ctx, op, "revoke", "unit "+u.ID, "name "+u.Name+", group "+u.Group)
	http.Redirect(w, r, "/units/"+url.PathEscape(u.ID)+"?revoked=1", http.StatusSeeOther)
}

type pushForm struct {
	Block, Group, Note string
}

type pushData struct {
	Form     pushForm
	Groups   []string // the groups units are in, offered in the form
	Coverage *Coverage
}

func (s *Server) pushRender(w http.ResponseWriter, r *http.Request, op Operator, code int, f pushForm, errs map[string]string) {
	d := pushData{Form: f}
	ctx := r.Context()
	if units, err := s.st.Units(ctx); err == nil {
		for _, u := range units {
			if u.Revoked.IsZero() && u.Group != "" && !slices.Contains(d.Groups, u.Group) {
				d.Groups = append(d.Groups, u.Group)
			}
		}
		slices.Sort(d.Groups)
	}
	if cv, err := s.st.Coverage(ctx, 0); err == nil {
		d.Coverage = &cv
	}
	s.render(w, r, code, "push", dashPage{Op: &op, Errors: errs, Data: d})
}

func (s *Server) pushPage(w http.ResponseWriter, r *http.Request, op Operator) {
	s.pushRender(w, r, op, http.StatusOK, pushForm{}, nil)
}

// pushPost signs and stores a bundle as `centre push` does; every centre
// serving the store sends it on within PollEvery.
func (s *Server) pushPost(w http.ResponseWriter, r *http.Request, op Operator) {
	f := pushForm{Block: r.PostFormValue("block"), Group: strings.TrimSpace(r.PostFormValue("group")), Note: strings.TrimSpace(r.PostFormValue("note"))}
	errs := map[string]string{}
	// Each bundle is the whole policy: no default, the operator says
	// which, so a push never blocks or lifts a block by accident.
	if f.Block != "yes" && f.Block != "no" {
		errs["block"] = s.tr(r, "push.block.choose")
	}
	if f.Group != "" && (len([]rune(f.Group)) > 64 || cleanText(f.Group, 64) != f.Group) {
		errs["group"] = s.tr(r, "push.group.bad")
	}
	if len([]rune(f.Note)) > 256 {
		errs["note"] = s.tr(r, "push.note.long")
	}
	if len(errs) > 0 {
		s.pushRender(w, r, op, http.StatusBadRequest, f, errs)
		return
	}
	b, err := Push(r.Context(), s.st, s.keys, wire.Bundle{Group: f.Group, Note: f.Note, BlockInternational: f.Block == "yes"})
	if err != nil {
		s.log.Error("centre: dashboard: push", "err", err)
		s.pushRender(w, r, op, http.StatusInternalServerError, f, map[string]string{"": s.tr(r, "err.write")})
		return
	}
	target := "every unit"
	if b.Group != "" {
		target = "group " + b.Group
	}
	s.logAction(r.Context(), op, "push", fmt.Sprintf("bundle %d", b.Seq),
		fmt.Sprintf("to %s; block international: %s; note: %s; hash %s", target, f.Block, b.Note, b.Hash))
	http.Redirect(w, r, fmt.Sprintf("/?pushed=%d", b.Seq), http.StatusSeeOther)
}

func (s *Server) logPage(w http.ResponseWriter, r *http.Request, op Operator) {
	es, err := s.st.Log(r.Context(), 500)
	p := dashPage{Op: &op, Data: es}
	if err != nil {
		s.log.Error("centre: dashboard: log", "err", err)
		p.Errors = map[string]string{"": s.tr(r, "err.read")}
	}
	s.render(w, r, http.StatusOK, "log", p)
}

type operatorsData struct {
	Operators []OperatorInfo
	Form      struct{ Name, Role string }
	// Created is the operator just added, with its setup link: shown
	// once, on the answer to the form, never in a URL or a redirect.
	Created *struct {
		Name, URL string
		Expires   time.Time
	}
}

func (s *Server) operatorsRender(w http.ResponseWriter, r *http.Request, op Operator, code int, d operatorsData, errs map[string]string, flash string) {
	var err error
	if d.Operators, err = s.st.Operators(r.Context()); err != nil {
		s.log.Error("centre: dashboard: operators", "err", err)
		errs = map[string]string{"": s.tr(r, "err.read")}
	}
	s.render(w, r, code, "operators", dashPage{Op: &op, Errors: errs, Flash: flash, Data: d})
}

func (s *Server) operatorsPage(w http.ResponseWriter, r *http.Request, op Operator) {
	s.operatorsRender(w, r, op, http.StatusOK, operatorsData{}, nil, "")
}

func (s *Server) operatorsAdd(w http.ResponseWriter, r *http.Request, op Operator) {
	var d operatorsData
	d.Form.Name, d.Form.Role = strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("role")
	// The link names the host the admin reached the dashboard by (checked
	// by allowedHost): the one that works from where the admin sits.
	link, expires, err := NewOperator(r.Context(), s.st, d.Form.Name, d.Form.Role, r.Host, s.dash.now())
	var fe *admin.FieldError
	if errors.As(err, &fe) {
		s.operatorsRender(w, r, op, http.StatusBadRequest, d, map[string]string{fe.Field: fe.Msg}, "")
		return
	}
	if err != nil {
		s.log.Error("centre: dashboard: add operator", "err", err)
		s.operatorsRender(w, r, op, http.StatusInternalServerError, d, map[string]string{"": s.tr(r, "err.write")}, "")
		return
	}
	s.logAction(r.Context(), op, "operator-add", "operator "+d.Form.Name, "role "+d.Form.Role+"; setup link valid until "+expires.UTC().Format(time.RFC3339))
	d.Created = &struct {
		Name, URL string
		Expires   time.Time
	}{d.Form.Name, link, expires}
	d.Form.Name, d.Form.Role = "", ""
	s.operatorsRender(w, r, op, http.StatusOK, d, nil, "")
}

func (s *Server) operatorsDelete(w http.ResponseWriter, r *http.Request, op Operator) {
	name := r.PostFormValue("name")
	// Stops an admin from locking the last way in out by mistake; the
	// CLI, run on the centre itself, still can.
	if name == op.Name {
		s.operatorsRender(w, r, op, http.StatusBadRequest, operatorsData{}, map[string]string{"": s.tr(r, "op.self")}, "")
		return
	}
	if err := s.st.DeleteOperator(r.Context(), name); err != nil {
		code, msg := http.StatusInternalServerError, s.tr(r, "err.write")
		if errors.Is(err, ErrNotFound) {
			code, msg = http.StatusNotFound, s.tr(r, "op.none")
		}
		s.operatorsRender(w, r, op, code, operatorsData{}, map[string]string{"": msg}, "")
		return
	}
	s.logAction(r.Context(), op, "operator-delete", "operator "+name, "deleted in the dashboard")
	s.operatorsRender(w, r, op, http.StatusOK, operatorsData{}, nil, name+": "+s.tr(r, "op.deleted"))
}

type setupData struct {
	Token, Name, Role string
	Secret            string
	QR                template.HTML
	Invalid           bool // the link is unknown, used or expired
}

// enrolment draws the QR code of secret for name (a new secret when
// secret is not a valid one).
func enrolment(name, secret string) (string, template.HTML) {
	if !validTOTPSecret(secret) {
		secret = console.NewTOTPSecret()
	}
	svg, err := console.QRSVG(otpauthURL(name, secret))
	if err != nil {
		return secret, ""
	}
	return secret, template.HTML(svg)
}

func (s *Server) setupPage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	d := setupData{Token: tok}
	name, _, err := s.setupFor(r.Context(), tok)
	if err != nil {
		d.Invalid = true
		s.render(w, r, http.StatusForbidden, "setup", dashPage{Title: s.tr(r, "setup.title"), Errors: errSetupLink.fieldErrors(), Data: d})
		return
	}
	o, _ := s.st.operator(r.Context(), name)
	d.Name, d.Role = name, o.Role
	d.Secret, d.QR = enrolment(name, "")
	s.render(w, r, http.StatusOK, "setup", dashPage{Title: s.tr(r, "setup.title"), Data: d})
}

func (s *Server) setupPost(w http.ResponseWriter, r *http.Request) {
	d := setupData{Token: r.PostFormValue("token"), Secret: r.PostFormValue("totp_secret")}
	tok, op, herr := s.completeSetup(r.Context(), d.Token, r.PostFormValue("password"), d.Secret, r.PostFormValue("code"), peerOf(r))
	if herr != nil {
		if herr == errSetupLink {
			d.Invalid = true
		} else {
			// The secret already scanned is kept, so the operator does
			// not scan a second one.
			d.Name = op.Name
			if o, err := s.st.operator(r.Context(), op.Name); err == nil {
				d.Role = o.Role
			}
			d.Secret, d.QR = enrolment(op.Name, d.Secret)
		}
		s.render(w, r, herr.code, "setup", dashPage{Title: s.tr(r, "setup.title"), Errors: herr.fieldErrors(), Data: d})
		return
	}
	setSessionCookie(w, tok)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

type loginData struct {
	Name        string
	NoOperators bool // none added yet: the page says how
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	var d loginData
	if ops, err := s.st.Operators(r.Context()); err == nil && len(ops) == 0 {
		d.NoOperators = true
	}
	s.render(w, r, http.StatusOK, "login", dashPage{Title: s.tr(r, "login.title"), Data: d})
}

func (s *Server) loginPost(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	tok, _, herr := s.dashLogin(r.Context(), name, r.PostFormValue("password"), r.PostFormValue("code"), peerOf(r))
	if herr != nil {
		if herr.retryAfterS > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(herr.retryAfterS))
		}
		s.render(w, r, herr.code, "login", dashPage{Title: s.tr(r, "login.title"), Errors: herr.fieldErrors(), Data: loginData{Name: name}})
		return
	}
	setSessionCookie(w, tok)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logoutPost ends the session of the cookie, whatever its state.
func (s *Server) logoutPost(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(dashCookie); err == nil && c.Value != "" {
		if err := s.st.deleteSession(r.Context(), hashToken(c.Value)); err != nil {
			s.log.Warn("centre: dashboard: end a session", "err", err)
		}
	}
	clearSessionCookie(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
