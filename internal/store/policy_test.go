package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/policy"
)

// TestPolicyRows: the shipped policy is seeded once, profiles and rates
// are edited, the default profile cannot be removed, and suspension and
// freeze report the first transition only (one breach, one alert).
func TestPolicyRows(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := s.Profiles(ctx)
	if err != nil || len(ps) != 1 || ps[0] != policy.Default() {
		t.Fatalf("seeded profiles %+v %v", ps, err)
	}
	rs, _ := s.Rates(ctx)
	if len(rs) != len(policy.DefaultRates()) {
		t.Fatalf("seeded %d rates", len(rs))
	}
	if err := s.DeleteRate(ctx, "+232"); err != nil {
		t.Fatal(err)
	}
	p := policy.Default()
	p.Name, p.Class, p.Countries, p.MaxDuration = "abroad", policy.ClassInternational, "SL", 90*time.Second
	if err := s.PutProfile(ctx, p, true); err != nil {
		t.Fatal(err)
	}
	if err := s.PutProfile(ctx, p, true); !errors.Is(err, ErrExists) {
		t.Fatalf("second add: %v", err)
	}
	if got, err := s.Profile(ctx, "abroad"); err != nil || got != p {
		t.Fatalf("read back %+v %v", got, err)
	}
	if err := s.DeleteProfile(ctx, policy.DefaultProfile); !errors.Is(err, ErrInUse) {
		t.Fatalf("deleting the default profile: %v", err)
	}
	if err := s.AddExtension(ctx, Extension{Number: "201", Realm: "r", HA1MD5: "a", HA1SHA256: "b", Digest: "md5"}); err != nil {
		t.Fatal(err)
	}
	e, _ := s.Extension(ctx, "201")
	e.Profile = "abroad"
	if err := s.UpdateExtension(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteProfile(ctx, "abroad"); !errors.Is(err, ErrInUse) {
		t.Fatalf("deleting a profile in use: %v", err)
	}
	s.Close()

	// Reopening seeds nothing twice: the deleted rate stays deleted.
	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, _ = s.Rates(ctx)
	for _, r := range rs {
		if r.Prefix == "+232" {
			t.Fatal("a deleted rate came back on restart")
		}
	}
	now := time.Now()
	if first, err := s.Suspend(ctx, "201", "intl-per-hour", now); !first || err != nil {
		t.Fatalf("suspend: %v %v", first, err)
	}
	if first, _ := s.Suspend(ctx, "201", "again", now); first {
		t.Fatal("a second suspension reported as new")
	}
	if e, _ := s.Extension(ctx, "201"); e.Suspended.IsZero() || e.SuspendReason != "intl-per-hour" {
		t.Fatalf("suspended extension reads %+v", e)
	}
	if was, err := s.Unlock(ctx, "201", now); !was || err != nil {
		t.Fatalf("unlock: %v %v", was, err)
	}
	if e, _ := s.Extension(ctx, "201"); !e.Suspended.IsZero() || e.Unlocked.IsZero() {
		t.Fatalf("unlocked extension reads %+v", e)
	}
	if _, err := s.Unlock(ctx, "299", now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unlock of a missing extension: %v", err)
	}
	if first, _ := s.FreezeIntl(ctx, "pbx: daily-spend"); !first {
		t.Fatal("freeze not reported")
	}
	if first, _ := s.FreezeIntl(ctx, "again"); first {
		t.Fatal("second freeze reported as new")
	}
	if f, _ := s.IntlFreeze(ctx); f.Reason != "pbx: daily-spend" {
		t.Fatalf("freeze reads %+v", f)
	}
	if was, _ := s.UnfreezeIntl(ctx, now); !was {
		t.Fatal("unfreeze did not see the freeze")
	}
	if f, _ := s.IntlFreeze(ctx); f.Reason != "" || f.Unfrozen.IsZero() {
		t.Fatalf("after unfreeze %+v", f)
	}
}
