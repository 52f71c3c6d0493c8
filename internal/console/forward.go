package console

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/store"
)

// forwardInput is the body of PUT /api/extensions/{number}/forwards/{when}.
type forwardInput struct {
	To string `json:"to"`
}

// forwardSet is a forward stored, with the gate's decision on it.
type forwardSet struct {
	Forward store.Forward `json:"forward"`
	Check   admin.Check   `json:"check"`
}

func (s *Server) forwards(w http.ResponseWriter, r *http.Request, _ store.Admin) {
	fw, err := s.cfg.Store.Forwards(r.Context(), "")
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not read the forwards")
		return
	}
	writeJSON(w, http.StatusOK, fw)
}

// setForward stores a forward if the toll gate lets the extension dial
// its number (admin.SetForward), and records who set it.
func (s *Server) setForward(r *http.Request, actor, ext, when, to string) (forwardSet, error) {
	ctx := r.Context()
	if _, err := s.cfg.Store.Extension(ctx, ext); err != nil {
		return forwardSet{}, &admin.FieldError{Field: "number", Msg: "no extension " + ext, Err: err}
	}
	now := s.cfg.Now()
	c, err := admin.SetForward(ctx, s.cfg.Store, ext, when, to, now)
	if err != nil {
		return forwardSet{}, err
	}
	s.record(audit.ConfigChange, actor, "extension "+ext, fmt.Sprintf("forward (%s) set to %s in the console", when, to))
	return forwardSet{Forward: store.Forward{Ext: ext, When: when, To: to, Created: now.UTC()}, Check: c}, nil
}

func (s *Server) apiSetForward(w http.ResponseWriter, r *http.Request, a store.Admin) {
	var in forwardInput
	if !decode(w, r, &in) {
		return
	}
	out, err := s.setForward(r, a.Username, r.PathValue("number"), r.PathValue("when"), in.To)
	if err != nil {
		adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// clearForward removes ext's forward for when; store.ErrNotFound when
// there was none.
func (s *Server) clearForward(r *http.Request, actor, ext, when string) error {
	switch when {
	case store.ForwardAlways, store.ForwardBusy, store.ForwardNoAnswer:
	default:
		return &admin.FieldError{Field: "when", Msg: fmt.Sprintf("%q: want always, busy or noanswer", when)}
	}
	n, err := s.cfg.Store.ClearForward(r.Context(), ext, when)
	if err != nil {
		return err
	}
	if n == 0 {
		return &admin.FieldError{Field: "number", Msg: "extension " + ext + " has no " + when + " forward", Err: store.ErrNotFound}
	}
	s.record(audit.ConfigChange, actor, "extension "+ext, "forward ("+when+") cleared in the console")
	return nil
}

func (s *Server) apiClearForward(w http.ResponseWriter, r *http.Request, a store.Admin) {
	err := s.clearForward(r, a.Username, r.PathValue("number"), r.PathValue("when"))
	var fe *admin.FieldError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]int{"cleared": 1})
	case errors.As(err, &fe):
		adminError(w, err)
	default:
		fail(w, http.StatusInternalServerError, "", "could not clear the forward")
	}
}
