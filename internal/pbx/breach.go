package pbx

import (
	"context"
	"fmt"
	"time"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/b2bua"
	"github.com/sekisho/sekisho/internal/limits"
)

// Suspend implements limits.Actions: a breach of an extension's limits
// suspends its outside calls, ends those in progress and raises an alert.
// The order matters: the suspension is written before anyone is told, so
// a crash after the alert cannot leave the extension open.
func (s *Server) Suspend(ctx context.Context, ext string, b limits.Breach) error {
	first, err := s.store.Suspend(ctx, ext, b.Limit+": "+b.Detail, time.Now())
	s.audit.Record(audit.Event{Type: audit.Suspension, Source: "pbx", Target: "extension " + ext, Detail: b.String()})
	ended := s.b2b.HangupWhere(func(c b2bua.CallInfo) bool { return c.Caller == ext && c.Outbound },
		"limits: extension "+ext+" suspended ("+b.Limit+")")
	if err != nil {
		s.log.Error("pbx: could not record suspension; extension stays refused until restart", "ext", ext, "err", err)
		return err
	}
	if !first {
		return nil
	}
	return s.alerts.Raise(ctx, "suspended", "extension "+ext,
		fmt.Sprintf("%s; %d outside call(s) in progress ended; unlock with: sekisho ext unlock %s", b, ended, ext))
}

// FreezeIntl implements limits.Actions: a breach of a trunk's or the
// PBX's limits freezes international calls for every extension, ends the
// international calls in progress and raises an alert.
func (s *Server) FreezeIntl(ctx context.Context, b limits.Breach) error {
	first, err := s.store.FreezeIntl(ctx, b.String())
	s.audit.Record(audit.Event{Type: audit.Freeze, Source: "pbx", Target: "calls abroad", Detail: b.String()})
	ended := s.b2b.HangupWhere(func(c b2bua.CallInfo) bool { return c.International },
		"limits: international calls frozen ("+b.Limit+")")
	if err != nil {
		s.log.Error("pbx: could not record the freeze; international calls stay refused until restart", "err", err)
		return err
	}
	if rerr := s.book.Reload(ctx); rerr != nil {
		s.log.Error("pbx: policy reload after freeze", "err", rerr)
	}
	if !first {
		return nil
	}
	return s.alerts.Raise(ctx, "frozen", "pbx",
		fmt.Sprintf("international calls frozen PBX-wide: %s; %d call(s) in progress ended; lift with: sekisho limits unfreeze", b, ended))
}
