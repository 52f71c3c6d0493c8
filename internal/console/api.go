package console

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/tollgate"
)

// view answers a GET with what read returns, or 500 saying what could
// not be read.
func view[T any](what string, read func(context.Context) (T, error)) func(http.ResponseWriter, *http.Request, store.Admin) {
	return func(w http.ResponseWriter, r *http.Request, _ store.Admin) {
		v, err := read(r.Context())
		if err != nil {
			fail(w, http.StatusInternalServerError, "", "could not read "+what)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// adminError answers an admin.FieldError with 400 (or 404/409 for a thing
// missing or existing) naming the field, anything else with 500.
func adminError(w http.ResponseWriter, err error) {
	var fe *admin.FieldError
	switch {
	case errors.As(err, &fe) && errors.Is(err, store.ErrNotFound) && fe.Field == "number":
		// The thing the path names is missing. Anything else missing
		// (a profile the body names) is bad input.
		fail(w, http.StatusNotFound, fe.Field, fe.Msg)
	case errors.As(err, &fe) && errors.Is(err, store.ErrExists):
		fail(w, http.StatusConflict, fe.Field, fe.Msg)
	case errors.As(err, &fe):
		fail(w, http.StatusBadRequest, fe.Field, fe.Msg)
	default:
		fail(w, http.StatusInternalServerError, "", "the change could not be stored; nothing was changed")
	}
}

// Dashboard is the first page's figures.
type Dashboard struct {
	Extensions int                  `json:"extensions"`
	Registered int                  `json:"registered"`
	Calls      int                  `json:"calls_in_progress"`
	Today      []admin.CountryToday `json:"today_outbound"`
	TodaySpend int64                `json:"today_spend"`
	Suspended  []extView            `json:"suspended"`
	Frozen     string               `json:"frozen,omitempty"` // why calls abroad are frozen, "" when not
	Alerts     []store.Alert        `json:"alerts"`           // the last 24 hours'
	Bans       int                  `json:"bans"`
}

func (s *Server) dashboard(ctx context.Context) (Dashboard, error) {
	var d Dashboard
	exts, err := s.extViews(ctx)
	if err != nil {
		return d, err
	}
	d.Extensions, d.Calls, d.Suspended = len(exts), s.cfg.Calls(), []extView{}
	for _, e := range exts {
		if e.Registered {
			d.Registered++
		}
		if e.Suspended != "" {
			d.Suspended = append(d.Suspended, e)
		}
	}
	now := s.cfg.Now()
	if d.Today, d.TodaySpend, err = admin.Today(ctx, s.cfg.Store, now); err != nil {
		return d, err
	}
	if f, err := s.cfg.Store.IntlFreeze(ctx); err == nil && f.Reason != "" {
		d.Frozen = f.Reason
	}
	alerts, err := s.cfg.Store.Alerts(ctx, 50)
	if err != nil {
		return d, err
	}
	d.Alerts = []store.Alert{}
	for _, a := range alerts {
		if now.Sub(a.At) < 24*time.Hour {
			d.Alerts = append(d.Alerts, a)
		}
	}
	bans, err := s.cfg.Store.Bans(ctx)
	if err != nil {
		return d, err
	}
	for _, b := range bans {
		if b.Active(now) {
			d.Bans++
		}
	}
	return d, nil
}

type extView struct {
	Number     string `json:"number"`
	Name       string `json:"name,omitempty"`
	Registered bool   `json:"registered"`
	Suspended  string `json:"suspended,omitempty"`
	Profile    string `json:"profile"`
	Class      string `json:"class"`
	Countries  string `json:"countries,omitempty"`
	Networks   string `json:"networks,omitempty"`
	Digest     string `json:"digest"`
}

func (s *Server) extViews(ctx context.Context) ([]extView, error) {
	es, err := s.cfg.Store.Extensions(ctx)
	if err != nil {
		return nil, err
	}
	b, err := admin.LoadPolicy(ctx, s.cfg.Store)
	if err != nil {
		return nil, err
	}
	out := make([]extView, 0, len(es))
	for _, e := range es {
		p := tollgate.PolicyOf(e, b.Current())
		out = append(out, extView{Number: e.Number, Name: e.Name, Registered: s.cfg.Registered(e.Number), Suspended: p.Suspended,
			Profile: p.Profile.Name, Class: string(p.Profile.Class), Countries: p.Profile.Countries, Networks: e.Networks, Digest: e.Digest})
	}
	return out, nil
}

// NewExtension is the answer to adding an extension: the password and
// the provisioning QR code, shown this once.
type NewExtension struct {
	Number   string `json:"number"`
	Name     string `json:"name,omitempty"`
	Realm    string `json:"realm"`
	Password string `json:"password"`
	SIPURI   string `json:"sip_uri"`
	QRSVG    string `json:"qr_svg"`
}

type extInput struct {
	Number string `json:"number"`
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// sipTarget is the SIP address for a provisioning code: the configured
// one, or, when SIP listens on every address, the host the browser used
// with the SIP port (the phone is usually on the same network).
func (s *Server) sipTarget(r *http.Request) string {
	host, port, err := net.SplitHostPort(s.cfg.SIPAddress)
	if err != nil {
		return s.cfg.SIPAddress
	}
	if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
		h := r.Host
		if hh, _, err := net.SplitHostPort(r.Host); err == nil {
			h = hh
		}
		return net.JoinHostPort(h, port)
	}
	return s.cfg.SIPAddress
}

func (s *Server) addExtension(ctx context.Context, sipAddr, actor string, in extInput) (NewExtension, error) {
	if in.Digest == "" {
		in.Digest = string(credential.OfferMD5)
	}
	offer, err := credential.ParseOffer(in.Digest)
	if err != nil {
		return NewExtension{}, &admin.FieldError{Field: "digest", Msg: err.Error()}
	}
	e, pw, err := admin.AddExtension(ctx, s.cfg.Store, in.Number, in.Name, offer)
	if err != nil {
		return NewExtension{}, err
	}
	s.record(audit.ConfigChange, actor, "extension "+e.Number, "created in the console")
	out := NewExtension{Number: e.Number, Name: e.Name, Realm: e.Realm, Password: pw}
	// The provisioning code: the account as a SIP URI with its password,
	// which softphones read when scanned. Made here, never stored.
	out.SIPURI = "sip:" + e.Number + "@" + sipAddr
	out.QRSVG, _ = qrSVG("sip:" + e.Number + ":" + pw + "@" + sipAddr)
	return out, nil
}

func (s *Server) apiAddExtension(w http.ResponseWriter, r *http.Request, a store.Admin) {
	var in extInput
	if !decode(w, r, &in) {
		return
	}
	out, err := s.addExtension(r.Context(), s.sipTarget(r), a.Username, in)
	if err != nil {
		adminError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

type extEdit struct {
	Class     *string `json:"class"`
	Countries *string `json:"countries"`
	Profile   *string `json:"profile"`
	Networks  *string `json:"networks"`
}

func (s *Server) editExtension(ctx context.Context, actor, number string, in extEdit) (extView, error) {
	ch := admin.ExtChange(in)
	if ch.Empty() {
		return extView{}, &admin.FieldError{Field: "class", Msg: "send class, countries, profile and/or networks"}
	}
	e, p, err := admin.SetExtension(ctx, s.cfg.Store, number, ch)
	if err != nil {
		return extView{}, err
	}
	s.record(audit.ConfigChange, actor, "extension "+number, fmt.Sprintf("policy set in the console: profile %s, class %s, countries %s, networks %s",
		p.Profile.Name, p.Profile.Class, p.Profile.Countries, e.Networks))
	return extView{Number: e.Number, Name: e.Name, Registered: s.cfg.Registered(e.Number), Suspended: p.Suspended,
		Profile: p.Profile.Name, Class: string(p.Profile.Class), Countries: p.Profile.Countries, Networks: e.Networks, Digest: e.Digest}, nil
}

func (s *Server) apiEditExtension(w http.ResponseWriter, r *http.Request, a store.Admin) {
	var in extEdit
	if !decode(w, r, &in) {
		return
	}
	out, err := s.editExtension(r.Context(), a.Username, r.PathValue("number"), in)
	if err != nil {
		adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) apiDeleteExtension(w http.ResponseWriter, r *http.Request, a store.Admin) {
	n := r.PathValue("number")
	if err := s.cfg.Store.DeleteExtension(r.Context(), n); errors.Is(err, store.ErrNotFound) {
		fail(w, http.StatusNotFound, "number", "no extension "+n)
		return
	} else if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not delete")
		return
	}
	s.record(audit.ConfigChange, a.Username, "extension "+n, "deleted in the console")
	writeJSON(w, http.StatusOK, map[string]string{"deleted": n})
}

func (s *Server) unlockExtension(ctx context.Context, actor, n string) (bool, error) {
	was, err := s.cfg.Store.Unlock(ctx, n, s.cfg.Now())
	if err != nil {
		return false, err
	}
	s.record(audit.Unlock, actor, "extension "+n, fmt.Sprintf("unlocked in the console (was suspended: %v)", was))
	return was, nil
}

func (s *Server) unlock(w http.ResponseWriter, r *http.Request, a store.Admin) {
	n := r.PathValue("number")
	was, err := s.unlockExtension(r.Context(), a.Username, n)
	if errors.Is(err, store.ErrNotFound) {
		fail(w, http.StatusNotFound, "number", "no extension "+n)
		return
	}
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not unlock")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"number": n, "was_suspended": was})
}

// trunkView is a trunk without its secret.
type trunkView struct {
	Name         string `json:"name"`
	Peer         string `json:"peer"`
	Transport    string `json:"transport"`
	Username     string `json:"username,omitempty"`
	Register     bool   `json:"register"`
	CallerID     string `json:"caller_id,omitempty"`
	NumberFormat string `json:"number_format"`
	State        string `json:"state,omitempty"`
	Detail       string `json:"detail,omitempty"`
}

type trunksView struct {
	Trunks []trunkView `json:"trunks"`
	DIDs   []store.DID `json:"dids"`
}

func (s *Server) trunksData(ctx context.Context) (trunksView, error) {
	ts, err := s.cfg.Store.Trunks(ctx)
	if err != nil {
		return trunksView{}, err
	}
	out := trunksView{Trunks: []trunkView{}, DIDs: []store.DID{}}
	for _, t := range ts {
		out.Trunks = append(out.Trunks, trunkView{Name: t.Name, Peer: t.Peer, Transport: t.Transport, Username: t.Username,
			Register: t.Register, CallerID: t.CallerID, NumberFormat: t.NumberFormat, State: t.RegState, Detail: t.RegDetail})
	}
	ds, err := s.cfg.Store.DIDs(ctx)
	if err != nil {
		return out, err
	}
	out.DIDs = append(out.DIDs, ds...)
	return out, nil
}

// policyView is the toll policy as the server runs it.
type policyView struct {
	Profiles []policy.Profile         `json:"profiles"`
	Limits   map[string]policy.Limits `json:"limits"` // "pbx", "trunk:NAME"
	Rates    []policy.Rate            `json:"rates"`
	Frozen   string                   `json:"frozen,omitempty"`
}

func (s *Server) policyData(ctx context.Context) (policyView, error) {
	var v policyView
	var err error
	if v.Profiles, err = s.cfg.Store.Profiles(ctx); err != nil {
		return v, err
	}
	if v.Limits, err = s.cfg.Store.ScopeLimits(ctx); err != nil {
		return v, err
	}
	if v.Rates, err = s.cfg.Store.Rates(ctx); err != nil {
		return v, err
	}
	if f, err := s.cfg.Store.IntlFreeze(ctx); err == nil && f.Reason != "" {
		v.Frozen = f.Reason
	}
	return v, nil
}

type rateInput struct {
	Prefix    string `json:"prefix"`
	PerMinute int64  `json:"per_minute"`
	Note      string `json:"note"`
}

func (s *Server) setRate(ctx context.Context, actor string, in rateInput) error {
	if err := policy.ValidPrefix(in.Prefix); err != nil {
		return &admin.FieldError{Field: "prefix", Msg: err.Error()}
	}
	if in.PerMinute < 0 {
		return &admin.FieldError{Field: "per_minute", Msg: "a whole number, 0 or more"}
	}
	if len(in.Note) > 200 {
		return &admin.FieldError{Field: "note", Msg: "at most 200 characters"}
	}
	r := policy.Rate{Prefix: in.Prefix, PerMinute: in.PerMinute, Note: in.Note}
	if err := s.cfg.Store.SetRate(ctx, r); err != nil {
		return err
	}
	s.record(audit.ConfigChange, actor, "rate "+r.Prefix, fmt.Sprintf("set in the console: %d a minute", r.PerMinute))
	return nil
}

func (s *Server) apiSetRate(w http.ResponseWriter, r *http.Request, a store.Admin) {
	var in rateInput
	if !decode(w, r, &in) {
		return
	}
	if err := s.setRate(r.Context(), a.Username, in); err != nil {
		adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, in)
}

func (s *Server) apiDeleteRate(w http.ResponseWriter, r *http.Request, a store.Admin) {
	p := r.PathValue("prefix")
	if err := s.cfg.Store.DeleteRate(r.Context(), p); errors.Is(err, store.ErrNotFound) {
		fail(w, http.StatusNotFound, "prefix", "no rate for "+p)
		return
	} else if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not delete")
		return
	}
	s.record(audit.ConfigChange, a.Username, "rate "+p, "deleted in the console")
	writeJSON(w, http.StatusOK, map[string]string{"deleted": p})
}

func (s *Server) unfreeze(ctx context.Context, actor string) (bool, error) {
	was, err := s.cfg.Store.UnfreezeIntl(ctx, s.cfg.Now())
	if err == nil {
		s.record(audit.Unfreeze, actor, "pbx", fmt.Sprintf("calls abroad unfrozen in the console (were frozen: %v)", was))
	}
	return was, err
}

func (s *Server) apiUnfreeze(w http.ResponseWriter, r *http.Request, a store.Admin) {
	was, err := s.unfreeze(r.Context(), a.Username)
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not unfreeze")
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"was_frozen": was})
}

type checkInput struct {
	From    string `json:"from"`
	Dialled string `json:"dialled"`
}

func (s *Server) apiCheck(w http.ResponseWriter, r *http.Request, _ store.Admin) {
	var in checkInput
	if !decode(w, r, &in) {
		return
	}
	out, err := admin.CheckNumber(r.Context(), s.cfg.Store, in.From, in.Dialled)
	if err != nil {
		adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// cdrQuery reads ?q=&since=&limit= as a filter, naming a bad parameter.
func cdrQuery(r *http.Request, now time.Time) (store.CDRFilter, *httpError) {
	q := r.URL.Query()
	f := store.CDRFilter{Search: strings.TrimSpace(q.Get("q")), Limit: 200, Direction: q.Get("direction")}
	if len(f.Search) > 64 {
		return f, refused(http.StatusBadRequest, "q", "at most 64 characters")
	}
	switch f.Direction {
	case "", "internal", "inbound", "outbound":
	default:
		return f, refused(http.StatusBadRequest, "direction", "internal, inbound or outbound")
	}
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return f, refused(http.StatusBadRequest, "since", "a duration such as 24h or 30m")
		}
		f.Since = now.Add(-d)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100000 {
			return f, refused(http.StatusBadRequest, "limit", "a number from 1 to 100000")
		}
		f.Limit = n
	}
	return f, nil
}

type cdrView struct {
	ID       int64     `json:"id"`
	Started  time.Time `json:"started"`
	Duration float64   `json:"duration_s"`
	Caller   string    `json:"caller"`
	Source   string    `json:"source"`
	Dialled  string    `json:"dialled"`
	Callee   string    `json:"callee"`
	Sent     string    `json:"sent_number,omitempty"`
	Country  string    `json:"country,omitempty"`
	Cost     int64     `json:"cost"`
	Result   int       `json:"result"`
	Reason   string    `json:"reason"`
	Dir      string    `json:"direction"`
	Trunk    string    `json:"trunk,omitempty"`
	State    string    `json:"state"`
}

func viewCDR(c store.CDR) cdrView {
	return cdrView{ID: c.ID, Started: c.Started, Duration: c.Duration.Seconds(), Caller: c.Caller, Source: c.Source, Dialled: c.Dialled,
		Callee: c.Callee, Sent: c.SentNumber, Country: c.Country, Cost: c.Cost, Result: c.ResultCode, Reason: c.ResultReason,
		Dir: c.Direction, Trunk: c.Trunk, State: c.State}
}

func (s *Server) cdrs(r *http.Request) ([]cdrView, *httpError) {
	f, herr := cdrQuery(r, s.cfg.Now())
	if herr != nil {
		return nil, herr
	}
	rows, err := s.cfg.Store.ListCDRs(r.Context(), f)
	if err != nil {
		return nil, refused(http.StatusInternalServerError, "", "could not read call records")
	}
	out := make([]cdrView, 0, len(rows))
	for _, c := range rows {
		out = append(out, viewCDR(c))
	}
	return out, nil
}

func (s *Server) apiCDR(w http.ResponseWriter, r *http.Request, _ store.Admin) {
	out, herr := s.cdrs(r)
	if herr != nil {
		fail(w, herr.code, herr.Field, herr.Msg)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// csvSafe keeps a spreadsheet from running a cell as a formula: a dialled
// string such as "=HYPERLINK(...)" sent by an attacker is evidence, not a
// command for the office's spreadsheet.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func (s *Server) apiCDRCSV(w http.ResponseWriter, r *http.Request, _ store.Admin) {
	out, herr := s.cdrs(r)
	if herr != nil {
		fail(w, herr.code, herr.Field, herr.Msg)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="sekisho-calls.csv"`)
	cw := csv.NewWriter(w)
	cw.Write([]string{"id", "started", "duration_s", "direction", "caller", "source", "dialled", "callee", "sent_number", "country", "cost", "result", "reason", "trunk", "state"})
	for _, c := range out {
		cw.Write([]string{strconv.FormatInt(c.ID, 10), c.Started.UTC().Format(time.RFC3339), strconv.FormatFloat(c.Duration, 'f', 1, 64), c.Dir,
			csvSafe(c.Caller), c.Source, csvSafe(c.Dialled), csvSafe(c.Callee), csvSafe(c.Sent), c.Country, strconv.FormatInt(c.Cost, 10),
			strconv.Itoa(c.Result), csvSafe(c.Reason), c.Trunk, c.State})
	}
	cw.Flush()
}

func (s *Server) apiAuditVerify(w http.ResponseWriter, r *http.Request, _ store.Admin) {
	l, err := admin.LoadLog(r.Context(), s.cfg.Store)
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not read the evidence log")
		return
	}
	writeJSON(w, http.StatusOK, l.Verify(nil, nil))
}

// settingsView is what the office can switch in the console.
type settingsView struct {
	Maintenance bool   `json:"maintenance"`
	Region      string `json:"region"`
	Realm       string `json:"realm"`
}

func (s *Server) settingsData(ctx context.Context) settingsView {
	region, _ := s.cfg.Store.Setting(ctx, store.SettingRegion, "JP")
	realm, _ := s.cfg.Store.Setting(ctx, store.SettingRealm, store.DefaultRealm)
	return settingsView{Maintenance: s.maintenanceAllowed(ctx), Region: region, Realm: realm}
}

func (s *Server) apiSettings(w http.ResponseWriter, r *http.Request, _ store.Admin) {
	writeJSON(w, http.StatusOK, s.settingsData(r.Context()))
}

type settingsInput struct {
	Maintenance *bool `json:"maintenance"`
}

func (s *Server) setMaintenance(ctx context.Context, actor string, on bool) error {
	v := "off"
	if on {
		v = "on"
	}
	if err := s.cfg.Store.SetSetting(ctx, SettingMaintenance, v); err != nil {
		return err
	}
	if !on {
		// Switched off means out now, not at the next login.
		if err := s.endSessionsOf(ctx, RoleMaintenance); err != nil {
			return err
		}
	}
	s.record(audit.ConfigChange, actor, "console maintenance access", "switched "+v+" in the console")
	return nil
}

func (s *Server) endSessionsOf(ctx context.Context, role string) error {
	as, err := s.cfg.Store.Admins(ctx)
	if err != nil {
		return err
	}
	for _, a := range as {
		if a.Role == role {
			if err := s.cfg.Store.DeleteSessionsOf(ctx, a.Username); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Server) apiSetSettings(w http.ResponseWriter, r *http.Request, a store.Admin) {
	var in settingsInput
	if !decode(w, r, &in) {
		return
	}
	if in.Maintenance == nil {
		fail(w, http.StatusBadRequest, "maintenance", "send true or false")
		return
	}
	if err := s.setMaintenance(r.Context(), a.Username, *in.Maintenance); err != nil {
		fail(w, http.StatusInternalServerError, "", "could not store the setting")
		return
	}
	writeJSON(w, http.StatusOK, s.settingsData(r.Context()))
}

type userView struct {
	Username string    `json:"username"`
	Role     string    `json:"role"`
	Created  time.Time `json:"created"`
	TOTP     bool      `json:"totp"`
	Locked   bool      `json:"locked"`
}

func (s *Server) users(ctx context.Context) ([]userView, error) {
	as, err := s.cfg.Store.Admins(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]userView, 0, len(as))
	now := s.cfg.Now()
	for _, a := range as {
		out = append(out, userView{Username: a.Username, Role: a.Role, Created: a.Created, TOTP: a.TOTPSealed != nil, Locked: now.Before(a.LockedUntil)})
	}
	return out, nil
}

func (s *Server) apiDeleteUser(w http.ResponseWriter, r *http.Request, a store.Admin) {
	u := r.PathValue("username")
	if u == a.Username {
		fail(w, http.StatusBadRequest, "username", "you cannot delete your own account")
		return
	}
	if err := s.cfg.Store.DeleteAdmin(r.Context(), u); errors.Is(err, store.ErrNotFound) {
		fail(w, http.StatusNotFound, "username", "no account "+u)
		return
	} else if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not delete")
		return
	}
	s.record(audit.ConfigChange, a.Username, "console user "+u, "deleted in the console")
	writeJSON(w, http.StatusOK, map[string]string{"deleted": u})
}

// totpNew hands out a fresh secret to enrol, with its QR code. It is just
// randomness: it grants nothing until a code from it is sent with the
// account's password (login) or the setup token (setup).
func (s *Server) totpNew(w http.ResponseWriter, r *http.Request) {
	u := r.URL.Query().Get("username")
	if !credential.ValidName(u) {
		fail(w, http.StatusBadRequest, "username", "2 to 32 characters: lower-case letters, digits, - _ .")
		return
	}
	sec := NewTOTPSecret()
	url := otpauthURL(u, sec)
	svg, err := qrSVG(url)
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not draw the QR code")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"secret": sec, "otpauth_url": url, "qr_svg": svg})
}

// profileInput is an edit of a profile as the API takes it.
type profileInput struct {
	Class           *string `json:"class"`
	Countries       *string `json:"countries"`
	Hours           *string `json:"hours"`
	MaxDuration     *string `json:"max_duration"` // such as "30m"; "0" for none
	MaxCalls        *int    `json:"max_calls"`
	IntlPerMinute   *int    `json:"intl_per_minute"`
	IntlPerHour     *int    `json:"intl_per_hour"`
	SamePrefix      *int    `json:"same_prefix"`
	DistinctPerHour *int    `json:"distinct_per_hour"`
	DailySpend      *int64  `json:"daily_spend"`
}

func (s *Server) putProfile(ctx context.Context, actor, name string, in profileInput, create bool) (policy.Profile, error) {
	ch := admin.ProfileChange{Class: in.Class, Countries: in.Countries, Hours: in.Hours, MaxCalls: in.MaxCalls,
		IntlPerMinute: in.IntlPerMinute, IntlPerHour: in.IntlPerHour, SamePrefix: in.SamePrefix,
		DistinctPerHour: in.DistinctPerHour, DailySpend: in.DailySpend}
	if in.MaxDuration != nil {
		d, err := time.ParseDuration(*in.MaxDuration)
		if *in.MaxDuration == "0" {
			d, err = 0, nil
		}
		if err != nil || d < 0 {
			return policy.Profile{}, &admin.FieldError{Field: "max_duration", Msg: "a duration such as 30m or 1h, or 0 for none"}
		}
		ch.MaxDuration = &d
	}
	for _, v := range []*int{in.MaxCalls, in.IntlPerMinute, in.IntlPerHour, in.SamePrefix, in.DistinctPerHour} {
		if v != nil && *v < 0 {
			return policy.Profile{}, &admin.FieldError{Field: "limits", Msg: "limits are whole numbers, 0 (no limit) or more"}
		}
	}
	if in.DailySpend != nil && *in.DailySpend < 0 {
		return policy.Profile{}, &admin.FieldError{Field: "daily_spend", Msg: "a whole number, 0 (no limit) or more"}
	}
	p, err := admin.PutProfile(ctx, s.cfg.Store, name, ch, create)
	if err != nil {
		return p, err
	}
	s.record(audit.ConfigChange, actor, "profile "+name, fmt.Sprintf("set in the console: class %s, countries %s, hours %q, max duration %s, limits %+v",
		p.Class, p.Countries, p.Hours, p.MaxDuration, p.Limits))
	return p, nil
}

func (s *Server) apiPutProfile(w http.ResponseWriter, r *http.Request, a store.Admin) {
	var in profileInput
	if !decode(w, r, &in) {
		return
	}
	name := r.PathValue("name")
	_, err := s.cfg.Store.Profile(r.Context(), name)
	create := errors.Is(err, store.ErrNotFound)
	if err := policy.ValidName(name); create && err != nil {
		fail(w, http.StatusBadRequest, "name", err.Error())
		return
	}
	p, err := s.putProfile(r.Context(), a.Username, name, in, create)
	if err != nil {
		adminError(w, err)
		return
	}
	code := http.StatusOK
	if create {
		code = http.StatusCreated
	}
	writeJSON(w, code, p)
}
