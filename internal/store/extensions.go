package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Extension is one phone account. Only digest hashes (HA1) are kept: the
// SIP password itself is shown once when generated and never stored.
type Extension struct {
	Number    string
	Name      string
	Realm     string // realm the HA1 values were computed for
	HA1MD5    string // hex MD5(number:realm:password)
	HA1SHA256 string // hex SHA-256(number:realm:password), RFC 8760
	Digest    string // algorithms offered: "md5", "sha256" or "both"
	// Class is the class of service ("" means the default profile);
	// Countries the ISO regions it may call abroad, comma-separated.
	Class     string
	Countries string
	// Profile names the policy profile ("" means the default profile).
	Profile string
	// Suspended is when the toll gate suspended the extension's outside
	// calls after a limit was breached; zero if it is not suspended.
	Suspended     time.Time
	SuspendReason string
	// Unlocked is when a person last lifted a suspension.
	Unlocked time.Time
	// Networks are the CIDR prefixes this extension may register and call
	// from, comma-separated; "" means the PBX's phone networks.
	Networks string
	Created  time.Time
	Updated  time.Time
}

// AddExtension creates e. It returns ErrExists if the number is taken.
func (s *Store) AddExtension(ctx context.Context, e Extension) error {
	now := time.Now()
	return s.insertUnique(ctx, "extension "+e.Number, `INSERT INTO extensions
		(number, name, realm, ha1_md5, ha1_sha256, digest, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Number, e.Name, e.Realm, e.HA1MD5, e.HA1SHA256, e.Digest, unixMilli(now), unixMilli(now))
}

// UpdateExtension replaces the name, realm, hashes and digest choice of an
// existing extension.
func (s *Store) UpdateExtension(ctx context.Context, e Extension) error {
	res, err := s.db.ExecContext(ctx, `UPDATE extensions SET
		name = ?, realm = ?, ha1_md5 = ?, ha1_sha256 = ?, digest = ?, updated_at = ?, class = ?, countries = ?, profile = ?, networks = ?
		WHERE number = ?`,
		e.Name, e.Realm, e.HA1MD5, e.HA1SHA256, e.Digest, unixMilli(time.Now()), e.Class, e.Countries, e.Profile, e.Networks, e.Number)
	if err != nil {
		return fmt.Errorf("store: update extension %s: %w", e.Number, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("extension %s: %w", e.Number, ErrNotFound)
	}
	return nil
}

// DeleteExtension removes an extension. It returns ErrNotFound if absent.
func (s *Store) DeleteExtension(ctx context.Context, number string) error {
	return s.deleteOne(ctx, "extension "+number, `DELETE FROM extensions WHERE number = ?`, number)
}

const extColumns = `number, name, realm, ha1_md5, ha1_sha256, digest, created_at, updated_at, class, countries,
	profile, suspended_at, suspend_reason, unlocked_at, networks`

func scanExtension(row interface{ Scan(...any) error }) (Extension, error) {
	var e Extension
	var created, updated, suspended, unlocked sql.NullInt64
	err := row.Scan(&e.Number, &e.Name, &e.Realm, &e.HA1MD5, &e.HA1SHA256, &e.Digest, &created, &updated, &e.Class, &e.Countries,
		&e.Profile, &suspended, &e.SuspendReason, &unlocked, &e.Networks)
	e.Created, e.Updated = fromMilli(created), fromMilli(updated)
	e.Suspended, e.Unlocked = fromMilli(suspended), fromMilli(unlocked)
	return e, err
}

// Extension looks up one extension by number.
func (s *Store) Extension(ctx context.Context, number string) (Extension, error) {
	e, err := scanExtension(s.extByNumber.QueryRowContext(ctx, number))
	if errors.Is(err, sql.ErrNoRows) {
		return Extension{}, fmt.Errorf("extension %s: %w", number, ErrNotFound)
	}
	if err != nil {
		return Extension{}, fmt.Errorf("store: read extension %s: %w", number, err)
	}
	return e, nil
}

// Extensions lists all extensions ordered by number.
func (s *Store) Extensions(ctx context.Context) ([]Extension, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+extColumns+` FROM extensions ORDER BY number`)
	if err != nil {
		return nil, fmt.Errorf("store: list extensions: %w", err)
	}
	defer rows.Close()
	var out []Extension
	for rows.Next() {
		e, err := scanExtension(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list extensions: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Suspend marks an extension's outside calls suspended with a reason. It
// reports whether this call suspended it (false if it already was), so
// that one breach raises one alert.
func (s *Store) Suspend(ctx context.Context, number, reason string, at time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE extensions SET suspended_at = ?, suspend_reason = ?
		WHERE number = ? AND suspended_at = 0`, unixMilli(at), reason, number)
	if err != nil {
		return false, fmt.Errorf("store: suspend extension %s: %w", number, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Unlock lifts a suspension. It returns ErrNotFound if there is no such
// extension, and reports whether it was suspended.
func (s *Store) Unlock(ctx context.Context, number string, at time.Time) (bool, error) {
	e, err := s.Extension(ctx, number)
	if err != nil {
		return false, err
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE extensions SET suspended_at = 0, suspend_reason = '', unlocked_at = ?
		WHERE number = ?`, unixMilli(at), number); err != nil {
		return false, fmt.Errorf("store: unlock extension %s: %w", number, err)
	}
	return !e.Suspended.IsZero(), nil
}
