package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sekisho/sekisho/internal/policy"
)

// Settings that hold the PBX-wide freeze of international calls.
const (
	// SettingIntlFrozen holds why international calls are frozen
	// PBX-wide, "" when they are not.
	SettingIntlFrozen = "intl-frozen"
	// SettingIntlUnfrozen holds when a person last lifted a freeze
	// (Unix milliseconds), so the server resets its counters.
	SettingIntlUnfrozen = "intl-unfrozen-at"
	settingRatesSeeded  = "rates-seeded"
)

// ScopePBX is the scope of the PBX-wide limits; a trunk's scope is
// "trunk:" and its name.
const ScopePBX = "pbx"

// TrunkScope returns the limits scope of trunk name.
func TrunkScope(name string) string { return "trunk:" + name }

// seed puts the shipped policy in place: the default profile and the
// PBX-wide limits whenever they are missing, and the bundled rate table
// once (an office that deleted a rate keeps it deleted).
func (s *Store) seed(ctx context.Context) error {
	// Read first: a store opened on a live PBX's data (every CLI command)
	// then takes no write lock unless something is really missing, so it
	// does not queue behind a server busy writing under a flood.
	var have int
	if err := s.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM profiles WHERE name = ?) +
		(SELECT COUNT(*) FROM scope_limits WHERE scope = ?) + (SELECT COUNT(*) FROM settings WHERE key = ?)`,
		policy.Default().Name, ScopePBX, settingRatesSeeded).Scan(&have); err != nil {
		return fmt.Errorf("store: read seeded policy: %w", err)
	}
	if have == 3 {
		return nil
	}
	d, l := policy.Default(), policy.DefaultPBXLimits()
	if _, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO profiles (name, class, countries, hours, max_duration_s,
		max_calls, intl_per_minute, intl_per_hour, same_prefix, distinct_per_hour, daily_spend, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, d.Name, string(d.Class), d.Countries, d.Hours, int64(d.MaxDuration/time.Second),
		d.MaxCalls, d.IntlPerMinute, d.IntlPerHour, d.SamePrefix, d.DistinctPerHour, d.DailySpend, unixMilli(time.Now())); err != nil {
		return fmt.Errorf("store: seed default profile: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO scope_limits (scope, max_calls, intl_per_minute, intl_per_hour,
		same_prefix, distinct_per_hour, daily_spend, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, ScopePBX,
		l.MaxCalls, l.IntlPerMinute, l.IntlPerHour, l.SamePrefix, l.DistinctPerHour, l.DailySpend, unixMilli(time.Now())); err != nil {
		return fmt.Errorf("store: seed PBX limits: %w", err)
	}
	seeded, err := s.Setting(ctx, settingRatesSeeded, "")
	if err != nil || seeded != "" {
		return err
	}
	for _, r := range policy.DefaultRates() {
		if err := s.SetRate(ctx, r); err != nil {
			return err
		}
	}
	return s.SetSetting(ctx, settingRatesSeeded, "1")
}

const profileColumns = `name, class, countries, hours, max_duration_s, max_calls, intl_per_minute, intl_per_hour,
	same_prefix, distinct_per_hour, daily_spend`

func scanProfile(row interface{ Scan(...any) error }) (policy.Profile, error) {
	var p policy.Profile
	var class string
	var secs int64
	err := row.Scan(&p.Name, &class, &p.Countries, &p.Hours, &secs, &p.MaxCalls, &p.IntlPerMinute, &p.IntlPerHour,
		&p.SamePrefix, &p.DistinctPerHour, &p.DailySpend)
	p.Class, p.MaxDuration = policy.Class(class), time.Duration(secs)*time.Second
	return p, err
}

// Profiles lists the policy profiles by name.
func (s *Store) Profiles(ctx context.Context) ([]policy.Profile, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+profileColumns+` FROM profiles ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list profiles: %w", err)
	}
	defer rows.Close()
	var out []policy.Profile
	for rows.Next() {
		p, err := scanProfile(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list profiles: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Profile reads one profile.
func (s *Store) Profile(ctx context.Context, name string) (policy.Profile, error) {
	p, err := scanProfile(s.db.QueryRowContext(ctx, `SELECT `+profileColumns+` FROM profiles WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("profile %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("store: read profile %s: %w", name, err)
	}
	return p, nil
}

// PutProfile creates or replaces a profile; create says which is meant
// (ErrExists on a clash, ErrNotFound when replacing a missing one).
func (s *Store) PutProfile(ctx context.Context, p policy.Profile, create bool) error {
	args := []any{string(p.Class), p.Countries, p.Hours, int64(p.MaxDuration / time.Second), p.MaxCalls, p.IntlPerMinute,
		p.IntlPerHour, p.SamePrefix, p.DistinctPerHour, p.DailySpend, unixMilli(time.Now()), p.Name}
	if create {
		return s.insertUnique(ctx, "profile "+p.Name, `INSERT INTO profiles (class, countries, hours, max_duration_s, max_calls,
			intl_per_minute, intl_per_hour, same_prefix, distinct_per_hour, daily_spend, updated_at, name)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE profiles SET class = ?, countries = ?, hours = ?, max_duration_s = ?, max_calls = ?,
		intl_per_minute = ?, intl_per_hour = ?, same_prefix = ?, distinct_per_hour = ?, daily_spend = ?, updated_at = ?
		WHERE name = ?`, args...)
	if err != nil {
		return fmt.Errorf("store: update profile %s: %w", p.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("profile %s: %w", p.Name, ErrNotFound)
	}
	return nil
}

// ErrInUse is returned when deleting something that others refer to.
var ErrInUse = errors.New("store: in use")

// DeleteProfile removes a profile no extension uses. The default profile
// cannot be removed.
func (s *Store) DeleteProfile(ctx context.Context, name string) error {
	if name == policy.DefaultProfile {
		return fmt.Errorf("profile %s is what extensions inherit: %w", name, ErrInUse)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM extensions WHERE profile = ?`, name).Scan(&n); err != nil {
		return fmt.Errorf("store: delete profile %s: %w", name, err)
	}
	if n > 0 {
		return fmt.Errorf("profile %s is used by %d extension(s); move them first: %w", name, n, ErrInUse)
	}
	return s.deleteOne(ctx, "profile "+name, `DELETE FROM profiles WHERE name = ?`, name)
}

// ScopeLimits returns the limits of every scope (ScopePBX, trunks).
func (s *Store) ScopeLimits(ctx context.Context) (map[string]policy.Limits, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT scope, max_calls, intl_per_minute, intl_per_hour, same_prefix,
		distinct_per_hour, daily_spend FROM scope_limits`)
	if err != nil {
		return nil, fmt.Errorf("store: read limits: %w", err)
	}
	defer rows.Close()
	out := map[string]policy.Limits{}
	for rows.Next() {
		var scope string
		var l policy.Limits
		if err := rows.Scan(&scope, &l.MaxCalls, &l.IntlPerMinute, &l.IntlPerHour, &l.SamePrefix, &l.DistinctPerHour, &l.DailySpend); err != nil {
			return nil, fmt.Errorf("store: read limits: %w", err)
		}
		out[scope] = l
	}
	return out, rows.Err()
}

// SetScopeLimits stores the limits of a scope.
func (s *Store) SetScopeLimits(ctx context.Context, scope string, l policy.Limits) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO scope_limits (scope, max_calls, intl_per_minute, intl_per_hour, same_prefix,
		distinct_per_hour, daily_spend, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(scope) DO UPDATE SET max_calls = excluded.max_calls, intl_per_minute = excluded.intl_per_minute,
		intl_per_hour = excluded.intl_per_hour, same_prefix = excluded.same_prefix,
		distinct_per_hour = excluded.distinct_per_hour, daily_spend = excluded.daily_spend, updated_at = excluded.updated_at`,
		scope, l.MaxCalls, l.IntlPerMinute, l.IntlPerHour, l.SamePrefix, l.DistinctPerHour, l.DailySpend, unixMilli(time.Now()))
	if err != nil {
		return fmt.Errorf("store: write limits %s: %w", scope, err)
	}
	return nil
}

// Rates lists the rate table by prefix.
func (s *Store) Rates(ctx context.Context) ([]policy.Rate, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT prefix, per_minute, note FROM rates ORDER BY prefix`)
	if err != nil {
		return nil, fmt.Errorf("store: list rates: %w", err)
	}
	defer rows.Close()
	var out []policy.Rate
	for rows.Next() {
		var r policy.Rate
		if err := rows.Scan(&r.Prefix, &r.PerMinute, &r.Note); err != nil {
			return nil, fmt.Errorf("store: list rates: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SetRate creates or replaces a rate.
func (s *Store) SetRate(ctx context.Context, r policy.Rate) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO rates (prefix, per_minute, note) VALUES (?, ?, ?)
		ON CONFLICT(prefix) DO UPDATE SET per_minute = excluded.per_minute, note = excluded.note`, r.Prefix, r.PerMinute, r.Note)
	if err != nil {
		return fmt.Errorf("store: write rate %s: %w", r.Prefix, err)
	}
	return nil
}

// DeleteRate removes a rate.
func (s *Store) DeleteRate(ctx context.Context, prefix string) error {
	return s.deleteOne(ctx, "rate "+prefix, `DELETE FROM rates WHERE prefix = ?`, prefix)
}

// IntlFreeze reads the freeze state.
func (s *Store) IntlFreeze(ctx context.Context) (policy.Freeze, error) {
	var f policy.Freeze
	var err error
	if f.Reason, err = s.Setting(ctx, SettingIntlFrozen, ""); err != nil {
		return f, err
	}
	at, err := s.Setting(ctx, SettingIntlUnfrozen, "0")
	if err != nil {
		return f, err
	}
	var ms int64
	fmt.Sscan(at, &ms)
	f.Unfrozen = fromMilli(sql.NullInt64{Int64: ms, Valid: true})
	fb, err := s.FleetBundle(ctx)
	if err != nil {
		return f, err
	}
	if fb.BlockIntl {
		f.Fleet = fmt.Sprintf("bundle %d", fb.Seq)
		if fb.Note != "" {
			f.Fleet += ": " + fb.Note
		}
	}
	return f, nil
}

// FreezeIntl freezes international calls PBX-wide; it reports whether
// they were not frozen before.
func (s *Store) FreezeIntl(ctx context.Context, reason string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value WHERE settings.value = ''`, SettingIntlFrozen, reason)
	if err != nil {
		return false, fmt.Errorf("store: freeze international: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// UnfreezeIntl lifts the freeze; it reports whether there was one.
func (s *Store) UnfreezeIntl(ctx context.Context, at time.Time) (bool, error) {
	f, err := s.IntlFreeze(ctx)
	if err != nil {
		return false, err
	}
	if err := s.SetSetting(ctx, SettingIntlFrozen, ""); err != nil {
		return false, err
	}
	if err := s.SetSetting(ctx, SettingIntlUnfrozen, fmt.Sprint(unixMilli(at))); err != nil {
		return false, err
	}
	return f.Reason != "", nil
}
