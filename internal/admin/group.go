package admin

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/dialplan"
	"github.com/sekisho/sekisho/internal/store"
)

// AddGroup creates a ring group: a number in the extensions' plan that
// no extension has, members that are extensions, a strategy, a ring
// time per member (hunt) or for all (ring-all), and optionally a group
// to overflow to when nobody answers.
func AddGroup(ctx context.Context, st *store.Store, g store.Group) (store.Group, error) {
	region, err := st.Setting(ctx, store.SettingRegion, "JP")
	if err != nil {
		return g, err
	}
	if err := dialplan.New(region).ValidExtension(g.Number); err != nil {
		return g, refuse("number", "%v", err)
	}
	if _, err := st.Extension(ctx, g.Number); err == nil {
		return g, refuse("number", "%s is an extension: a group needs a number of its own", g.Number)
	} else if !errors.Is(err, store.ErrNotFound) {
		return g, err
	}
	if len(g.Name) > 64 || strings.ContainsAny(g.Name, "\r\n\x00\"<>") {
		return g, refuse("name", "at most 64 characters, without quotes, < > or line breaks")
	}
	switch g.Strategy {
	case "":
		g.Strategy = store.RingAll
	case store.RingAll, store.Hunt:
	default:
		return g, refuse("strategy", "%q: want ring-all or hunt", g.Strategy)
	}
	if g.Ring == 0 {
		g.Ring = 20 * time.Second
	}
	if g.Ring < 5*time.Second || g.Ring > 5*time.Minute {
		return g, refuse("ring", "%v: give 5s to 5m", g.Ring)
	}
	g.Ring = g.Ring.Round(time.Second)
	g.RingSecs = int(g.Ring / time.Second)
	if len(g.Members) == 0 || len(g.Members) > 32 {
		return g, refuse("members", "give 1 to 32 extensions, comma-separated")
	}
	seen := map[string]bool{}
	for _, m := range g.Members {
		if seen[m] {
			return g, refuse("members", "%s is listed twice", m)
		}
		seen[m] = true
		if _, err := st.Extension(ctx, m); err != nil {
			return g, &FieldError{Field: "members", Msg: "no extension " + m, Err: err}
		}
	}
	if g.Overflow != "" {
		if g.Overflow == g.Number {
			return g, refuse("overflow", "a group cannot overflow to itself")
		}
		if _, err := st.Group(ctx, g.Overflow); err != nil {
			// Or an extension's mailbox.
			if _, ok, merr := st.GetMailbox(ctx, g.Overflow); merr != nil || !ok {
				return g, &FieldError{Field: "overflow", Msg: "no group " + g.Overflow + " and no mailbox of that extension: create it first (sekisho group add, or sekisho voicemail enable)", Err: err}
			}
		}
	}
	if g.Created.IsZero() {
		g.Created = time.Now().UTC()
	}
	if err := st.AddGroup(ctx, g); err != nil {
		if errors.Is(err, store.ErrExists) {
			return g, &FieldError{Field: "number", Msg: "group " + g.Number + " exists already", Err: err}
		}
		return g, err
	}
	return g, nil
}
