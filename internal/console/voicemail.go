package console

import (
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/voicemail"
)

// mailboxView is a mailbox as the console shows it: never the PIN or its
// hash.
type mailboxView struct {
	Ext         string     `json:"ext"`
	New         int        `json:"new"`
	Heard       int        `json:"heard"`
	FailedPINs  int        `json:"failed_pins"`
	LockedUntil *time.Time `json:"locked_until,omitempty"`
}

func (s *Server) groups(w http.ResponseWriter, r *http.Request, _ store.Admin) {
	gs, err := s.cfg.Store.Groups(r.Context())
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not read the ring groups")
		return
	}
	if gs == nil {
		gs = []store.Group{}
	}
	writeJSON(w, http.StatusOK, gs)
}

func (s *Server) mailboxes(w http.ResponseWriter, r *http.Request, _ store.Admin) {
	ctx := r.Context()
	boxes, err := s.cfg.Store.Mailboxes(ctx)
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not read the mailboxes")
		return
	}
	msgs, err := s.cfg.Store.Voicemails(ctx, "")
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not read the mailboxes")
		return
	}
	out := []mailboxView{}
	for _, box := range boxes {
		v := mailboxView{Ext: box.Ext, FailedPINs: box.Fails}
		if box.LockedUntil.After(s.cfg.Now()) {
			t := box.LockedUntil.UTC()
			v.LockedUntil = &t
		}
		for _, m := range msgs {
			if m.Ext != box.Ext {
				continue
			}
			if m.Heard {
				v.Heard++
			} else {
				v.New++
			}
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
}

// apiEnableMailbox gives the extension a mailbox, or its mailbox a new
// PIN, and shows the PIN this once. The console never lets a person
// choose a PIN: chosen PINs are guessable, and default ones are how
// mailboxes are broken into.
func (s *Server) apiEnableMailbox(w http.ResponseWriter, r *http.Request, a store.Admin) {
	ctx := r.Context()
	ext := r.PathValue("number")
	if _, err := s.cfg.Store.Extension(ctx, ext); err != nil {
		fail(w, http.StatusNotFound, "number", "no extension "+ext)
		return
	}
	box, _, err := s.cfg.Store.GetMailbox(ctx, ext)
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not read the mailbox")
		return
	}
	pin, err := (&voicemail.Service{Store: s.cfg.Store}).Enable(ctx, ext, box.Email)
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not set the mailbox")
		return
	}
	s.record(audit.ConfigChange, a.Username, "extension "+ext, "mailbox enabled or its PIN replaced in the console")
	writeJSON(w, http.StatusOK, map[string]string{"ext": ext, "pin": pin})
}

func (s *Server) apiDisableMailbox(w http.ResponseWriter, r *http.Request, a store.Admin) {
	ctx := r.Context()
	ext := r.PathValue("number")
	if _, ok, err := s.cfg.Store.GetMailbox(ctx, ext); err != nil || !ok {
		fail(w, http.StatusNotFound, "number", "extension "+ext+" has no mailbox")
		return
	}
	msgs, err := s.cfg.Store.Voicemails(ctx, ext)
	if err == nil {
		err = s.cfg.Store.DeleteMailbox(ctx, ext)
	}
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "could not remove the mailbox")
		return
	}
	for _, m := range msgs {
		if err := os.Remove(m.File); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.cfg.Log.Error("console: remove a message file", "file", m.File, "err", err)
		}
	}
	s.record(audit.ConfigChange, a.Username, "extension "+ext, "mailbox removed in the console")
	writeJSON(w, http.StatusOK, map[string]int{"deleted_messages": len(msgs)})
}
