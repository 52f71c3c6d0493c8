package pbx

import (
	"context"
	"errors"
	"time"

	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/console"
	"github.com/sekisho/sekisho/internal/fleet"
	"github.com/sekisho/sekisho/internal/wire"
)

// Version is what the unit reports to the centre.
const Version = "0.7.0"

// joinFleet loads the unit's fleet identity when it has joined one; a
// unit that has not joined runs as before.
func (s *Server) joinFleet() error {
	cfg := fleet.Config{
		Dir: s.cfg.Data, Store: s.store, Policy: s.book, Evidence: s.audit, Figures: s.figures,
		Version: Version, Log: s.log.With("component", "fleet"),
	}
	// The console the centre's operator sees in a maintenance session:
	// the same one the office uses, whether or not it listens locally,
	// reached only through the unit's own link to the centre.
	cons := console.New(s.consoleConfig(nil))
	cfg.Console = cons.Remote
	cfg.MaintenanceAllowed = cons.MaintenanceAllowed
	l, err := fleet.New(cfg)
	if errors.Is(err, fleet.ErrNotJoined) {
		return nil
	}
	if err != nil {
		return err
	}
	s.fleet = l
	return nil
}

// holding is the tollgate's hold: why outside calls must wait for the
// centre, or "".
func (s *Server) holding() string {
	if s.fleet == nil {
		return ""
	}
	return s.fleet.Holding()
}

// figures are the unit's live figures for the centre.
func (s *Server) figures(ctx context.Context) wire.Status {
	var st wire.Status
	es, err := s.store.Extensions(ctx)
	if err == nil {
		st.Extensions = len(es)
		for _, e := range es {
			if len(s.reg.Lookup(e.Number)) > 0 {
				st.Registered++
			}
			if !e.Suspended.IsZero() {
				st.Suspended = append(st.Suspended, e.Number)
			}
		}
	}
	if s.b2b != nil {
		st.Calls = s.b2b.Active()
	}
	if today, _, err := admin.Today(ctx, s.store, time.Now()); err == nil {
		for _, c := range today {
			st.Today = append(st.Today, wire.CountryToday(c))
		}
	}
	if f, err := s.store.IntlFreeze(ctx); err == nil {
		st.Frozen = f.Reason
	}
	st.Evidence = s.audit.Healthy()
	return st
}
