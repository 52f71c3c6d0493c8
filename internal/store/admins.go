package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Admin is a console account.
type Admin struct {
	Username    string
	Hash        string // argon2id, encoded
	Role        string // "admin", "operator" or "maintenance"
	Created     time.Time
	Failures    int       // failed logins in a row
	LockedUntil time.Time // no login before this
	TOTPSealed  []byte    // the second factor's secret, sealed by the vault; nil until enrolled
	TOTPStep    int64     // the last TOTP time step accepted
}

// AdminCount returns how many console accounts exist.
func (s *Store) AdminCount(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM admins`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count admins: %w", err)
	}
	return n, nil
}

// AddAdmin creates a console account; ErrExists if the name is taken.
func (s *Store) AddAdmin(ctx context.Context, a Admin) error {
	return s.insertUnique(ctx, "admin "+a.Username, `INSERT INTO admins (username, hash, role, created_at) VALUES (?, ?, ?, ?)`,
		a.Username, a.Hash, a.Role, unixMilli(time.Now()))
}

// AddFirstAdmin creates the first console account, only if there is none:
// two setup requests racing cannot both win.
func (s *Store) AddFirstAdmin(ctx context.Context, a Admin) (bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO admins (username, hash, role, created_at, totp_sealed, totp_step)
		SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM admins)`, a.Username, a.Hash, a.Role, unixMilli(time.Now()), a.TOTPSealed, a.TOTPStep)
	if err != nil {
		return false, fmt.Errorf("store: add first admin: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Admin reads a console account.
func (s *Store) Admin(ctx context.Context, username string) (Admin, error) {
	var a Admin
	var created, locked sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT username, hash, role, created_at, failures, locked_until, totp_sealed, totp_step FROM admins WHERE username = ?`, username).
		Scan(&a.Username, &a.Hash, &a.Role, &created, &a.Failures, &locked, &a.TOTPSealed, &a.TOTPStep)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("admin %s: %w", username, ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("store: read admin %s: %w", username, err)
	}
	a.Created, a.LockedUntil = fromMilli(created), fromMilli(locked)
	return a, nil
}

// SetAdminLock records a login outcome: failures in a row and the lock.
func (s *Store) SetAdminLock(ctx context.Context, username string, failures int, until time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE admins SET failures = ?, locked_until = ? WHERE username = ?`, failures, unixMilli(until), username)
	if err != nil {
		return fmt.Errorf("store: admin lock %s: %w", username, err)
	}
	return nil
}

// Admins lists the console accounts (without their secrets), by name.
func (s *Store) Admins(ctx context.Context) ([]Admin, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT username, role, created_at, failures, locked_until, totp_sealed IS NOT NULL FROM admins ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("store: list admins: %w", err)
	}
	defer rows.Close()
	var out []Admin
	for rows.Next() {
		var a Admin
		var created, locked sql.NullInt64
		var enrolled bool
		if err := rows.Scan(&a.Username, &a.Role, &created, &a.Failures, &locked, &enrolled); err != nil {
			return nil, fmt.Errorf("store: list admins: %w", err)
		}
		a.Created, a.LockedUntil = fromMilli(created), fromMilli(locked)
		if enrolled {
			a.TOTPSealed = []byte{}
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// EnrolTOTP stores an account's second factor, only if it has none yet:
// someone who learns a password cannot replace the factor already there.
func (s *Store) EnrolTOTP(ctx context.Context, username string, sealed []byte, step int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE admins SET totp_sealed = ?, totp_step = ? WHERE username = ? AND totp_sealed IS NULL`, sealed, step, username)
	if err != nil {
		return false, fmt.Errorf("store: enrol totp %s: %w", username, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// AcceptTOTPStep records step as used, only if it is after the last one
// accepted; false means the code was used already. Two logins racing with
// one code cannot both win.
func (s *Store) AcceptTOTPStep(ctx context.Context, username string, step int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE admins SET totp_step = ? WHERE username = ? AND totp_step < ?`, step, username, step)
	if err != nil {
		return false, fmt.Errorf("store: accept totp %s: %w", username, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// DeleteAdmin removes a console account and its sessions.
func (s *Store) DeleteAdmin(ctx context.Context, username string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM admins WHERE username = ?`, username)
	if err != nil {
		return fmt.Errorf("store: delete admin %s: %w", username, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("admin %s: %w", username, ErrNotFound)
	}
	_, err = s.db.ExecContext(ctx, `DELETE FROM sessions WHERE username = ?`, username)
	return err
}

// Session is a console login.
type Session struct {
	Username string
	Created  time.Time
	Seen     time.Time
}

// PutSession stores a session under the hash of its token.
func (s *Store) PutSession(ctx context.Context, tokenHash []byte, username string, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sessions (token_hash, username, created_at, seen_at) VALUES (?, ?, ?, ?)`,
		tokenHash, username, unixMilli(now), unixMilli(now))
	if err != nil {
		return fmt.Errorf("store: add session: %w", err)
	}
	return nil
}

// Session reads a session by its token hash.
func (s *Store) Session(ctx context.Context, tokenHash []byte) (Session, error) {
	var se Session
	var created, seen sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT username, created_at, seen_at FROM sessions WHERE token_hash = ?`, tokenHash).Scan(&se.Username, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return se, ErrNotFound
	}
	if err != nil {
		return se, fmt.Errorf("store: read session: %w", err)
	}
	se.Created, se.Seen = fromMilli(created), fromMilli(seen)
	return se, nil
}

// TouchSession moves a session's last-seen time.
func (s *Store) TouchSession(ctx context.Context, tokenHash []byte, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE sessions SET seen_at = ? WHERE token_hash = ?`, unixMilli(now), tokenHash)
	return err
}

// DeleteSession ends a session.
func (s *Store) DeleteSession(ctx context.Context, tokenHash []byte) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = ?`, tokenHash)
	return err
}

// DeleteSessionsOf ends every session of an account.
func (s *Store) DeleteSessionsOf(ctx context.Context, username string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE username = ?`, username)
	if err != nil {
		return fmt.Errorf("store: end sessions of %s: %w", username, err)
	}
	return nil
}
