package centre

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrOperatorExists is an operator name already taken.
var ErrOperatorExists = errors.New("centre: operator exists")

// OperatorInfo is an operator as the CLI and the dashboard list it:
// never its password hash, second factor or setup token.
type OperatorInfo struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Created time.Time `json:"created"`
	// SetUp is true once the operator has chosen a password and enrolled
	// a second factor through the setup link; until then the account
	// cannot log in, and the link works until SetupExpires.
	SetUp        bool      `json:"set_up"`
	SetupExpires time.Time `json:"setup_expires,omitzero"`
	LastLogin    time.Time `json:"last_login,omitzero"`
	LockedUntil  time.Time `json:"locked_until,omitzero"`
}

// operatorRow is an operator with what logging in needs.
type operatorRow struct {
	OperatorInfo
	hash       string
	totpSealed string
	totpStep   int64
	failures   int64
}

const operatorColumns = `name, role, pw_hash, totp_sealed, totp_step, failures, locked_until, setup_expires, created_at, last_login`

func scanOperator(sc interface{ Scan(...any) error }) (operatorRow, error) {
	var (
		o                                 operatorRow
		locked, expires, created, lastLog int64
	)
	if err := sc.Scan(&o.Name, &o.Role, &o.hash, &o.totpSealed, &o.totpStep, &o.failures, &locked, &expires, &created, &lastLog); err != nil {
		return o, err
	}
	o.SetUp = o.hash != ""
	o.LockedUntil, o.Created, o.LastLogin = fromMS(locked), fromMS(created), fromMS(lastLog)
	if !o.SetUp {
		o.SetupExpires = fromMS(expires)
	}
	return o, nil
}

// AddOperator stores a new operator who cannot log in yet: only the
// SHA-256 of its setup token (setupHash) is kept, valid until expires.
func (s *Store) AddOperator(ctx context.Context, name, role, setupHash string, created, expires time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO operators (name, role, setup_hash, setup_expires, created_at) VALUES ($1, $2, $3, $4, $5)`,
		name, role, setupHash, ms(expires), ms(created))
	if isUnique(err) {
		return fmt.Errorf("operator %s: %w", name, ErrOperatorExists)
	}
	if err != nil {
		return fmt.Errorf("centre: add operator %s: %w", name, err)
	}
	return nil
}

// Operators returns every operator, by name.
func (s *Store) Operators(ctx context.Context) ([]OperatorInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+operatorColumns+` FROM operators ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("centre: list operators: %w", err)
	}
	defer rows.Close()
	out := []OperatorInfo{}
	for rows.Next() {
		o, err := scanOperator(rows)
		if err != nil {
			return nil, fmt.Errorf("centre: list operators: %w", err)
		}
		out = append(out, o.OperatorInfo)
	}
	return out, rows.Err()
}

func (s *Store) operator(ctx context.Context, name string) (operatorRow, error) {
	o, err := scanOperator(s.db.QueryRowContext(ctx, `SELECT `+operatorColumns+` FROM operators WHERE name = $1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("operator %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return o, fmt.Errorf("centre: read operator %s: %w", name, err)
	}
	return o, nil
}

// DeleteOperator removes operator name and ends its sessions, in one
// transaction: a deleted operator's open dashboard stops at its next
// request.
func (s *Store) DeleteOperator(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM operators WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("operator %s: %w", name, ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM operator_sessions WHERE operator = $1`, name)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("centre: delete operator %s: %w", name, err)
	}
	return err
}

// pendingSetup is an operator waiting for its setup link to be used.
type pendingSetup struct{ name, hash string }

// pendingSetups returns the live setup tokens' hashes.
func (s *Store) pendingSetups(ctx context.Context, now time.Time) ([]pendingSetup, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, setup_hash FROM operators
		WHERE pw_hash = '' AND setup_hash <> '' AND setup_expires > $1`, ms(now))
	if err != nil {
		return nil, fmt.Errorf("centre: read setup tokens: %w", err)
	}
	defer rows.Close()
	var out []pendingSetup
	for rows.Next() {
		var p pendingSetup
		if err := rows.Scan(&p.name, &p.hash); err != nil {
			return nil, fmt.Errorf("centre: read setup tokens: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// completeSetup sets the operator's password hash and sealed second
// factor and spends the setup token, which must still be the live one:
// of two setups racing with one link, one wins (ok false for the other).
func (s *Store) completeSetup(ctx context.Context, name, setupHash, pwHash, totpSealed string, step int64, now time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE operators SET pw_hash = $1, totp_sealed = $2, totp_step = $3, setup_hash = '', setup_expires = 0
		WHERE name = $4 AND setup_hash = $5 AND pw_hash = '' AND setup_expires > $6`,
		pwHash, totpSealed, step, name, setupHash, ms(now))
	if err != nil {
		return false, fmt.Errorf("centre: operator %s setup: %w", name, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// operatorFailed counts a failed login of name and locks it until
// now + lock(failures so far).
func (s *Store) operatorFailed(ctx context.Context, name string, now time.Time, lock func(int) time.Duration) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var n int64
		if err := tx.QueryRowContext(ctx, `UPDATE operators SET failures = failures + 1 WHERE name = $1 RETURNING failures`, name).Scan(&n); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE operators SET locked_until = $1 WHERE name = $2`, ms(now.Add(lock(int(n)))), name)
		return err
	})
	if err != nil {
		return fmt.Errorf("centre: operator %s failed login: %w", name, err)
	}
	return nil
}

// acceptLogin records a successful login at TOTP step: only if the step
// is after the last one accepted (the same condition in the UPDATE, so
// two logins racing with one code cannot both pass), and then clears the
// failures.
func (s *Store) acceptLogin(ctx context.Context, name string, step int64, now time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE operators SET totp_step = $1, failures = 0, locked_until = 0, last_login = $2
		WHERE name = $3 AND totp_step < $1`, step, ms(now), name)
	if err != nil {
		return false, fmt.Errorf("centre: operator %s login: %w", name, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// dashSession is a stored dashboard session.
type dashSession struct {
	operator      string
	created, seen time.Time
}

func (s *Store) putSession(ctx context.Context, hash, operator string, now time.Time) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO operator_sessions (hash, operator, created_at, seen_at) VALUES ($1, $2, $3, $3)`,
		hash, operator, ms(now)); err != nil {
		return fmt.Errorf("centre: store session: %w", err)
	}
	return nil
}

func (s *Store) session(ctx context.Context, hash string) (dashSession, error) {
	var (
		d             dashSession
		created, seen int64
	)
	err := s.db.QueryRowContext(ctx, `SELECT operator, created_at, seen_at FROM operator_sessions WHERE hash = $1`, hash).Scan(&d.operator, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return d, ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("centre: read session: %w", err)
	}
	d.created, d.seen = fromMS(created), fromMS(seen)
	return d, nil
}

func (s *Store) touchSession(ctx context.Context, hash string, now time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE operator_sessions SET seen_at = $1 WHERE hash = $2`, ms(now), hash); err != nil {
		return fmt.Errorf("centre: touch session: %w", err)
	}
	return nil
}

func (s *Store) deleteSession(ctx context.Context, hash string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM operator_sessions WHERE hash = $1`, hash); err != nil {
		return fmt.Errorf("centre: delete session: %w", err)
	}
	return nil
}

// expireSessions deletes the sessions idle since before idle or started
// before absolute: the table does not keep every session ever made.
func (s *Store) expireSessions(ctx context.Context, idle, absolute time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM operator_sessions WHERE seen_at < $1 OR created_at < $2`, ms(idle), ms(absolute)); err != nil {
		return fmt.Errorf("centre: expire sessions: %w", err)
	}
	return nil
}

// LogEntry is one line of the operators' log: who did what to what.
type LogEntry struct {
	ID       int64     `json:"id"`
	At       time.Time `json:"at"`
	Operator string    `json:"operator"`
	Action   string    `json:"action"`
	Target   string    `json:"target"`
	Detail   string    `json:"detail"`
}

// AppendLog appends e to the operators' log (its id is taken by the
// INSERT, as alerts' are).
func (s *Store) AppendLog(ctx context.Context, e LogEntry) error {
	err := retryUnique(func() error {
		_, err := s.db.ExecContext(ctx, `INSERT INTO operator_log (id, at, operator, action, target, detail)
			VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM operator_log), $1, $2, $3, $4, $5)`,
			ms(e.At), e.Operator, e.Action, e.Target, e.Detail)
		return err
	})
	if err != nil {
		return fmt.Errorf("centre: operator log: %w", err)
	}
	return nil
}

// Log returns the newest limit entries of the operators' log, newest
// first.
func (s *Store) Log(ctx context.Context, limit int) ([]LogEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, operator, action, target, detail FROM operator_log ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("centre: read operator log: %w", err)
	}
	defer rows.Close()
	out := []LogEntry{}
	for rows.Next() {
		var (
			e  LogEntry
			at int64
		)
		if err := rows.Scan(&e.ID, &at, &e.Operator, &e.Action, &e.Target, &e.Detail); err != nil {
			return nil, fmt.Errorf("centre: read operator log: %w", err)
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Settings the centre keeps in its store.
const (
	// SettingConsoleListen is where `centre serve` last served the
	// dashboard, for the setup links `centre operator add` prints.
	SettingConsoleListen = "console-listen"
)

// Setting returns setting key, or def when it was never set.
func (s *Store) Setting(ctx context.Context, key, def string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM centre_settings WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return def, nil
	}
	if err != nil {
		return def, fmt.Errorf("centre: read setting %s: %w", key, err)
	}
	return v, nil
}

// SetSetting stores setting key.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO centre_settings (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
		return fmt.Errorf("centre: store setting %s: %w", key, err)
	}
	return nil
}

// UnitAlerts returns unit id's newest limit alerts, newest first.
func (s *Store) UnitAlerts(ctx context.Context, id string, limit int) ([]Alert, error) {
	return s.alerts(ctx, `WHERE a.unit_id = $1 ORDER BY a.id DESC LIMIT $2`, id, limit)
}

// AlertCountsSince counts each unit's alerts received since since.
func (s *Store) AlertCountsSince(ctx context.Context, since time.Time) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT unit_id, COUNT(*) FROM alerts WHERE received_at >= $1 GROUP BY unit_id`, ms(since))
	if err != nil {
		return nil, fmt.Errorf("centre: count alerts: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			id string
			n  int
		)
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("centre: count alerts: %w", err)
		}
		out[id] = n
	}
	return out, rows.Err()
}

// AckRecord is a unit's answer to a bundle, with the bundle's note.
type AckRecord struct {
	Seq   uint64    `json:"seq"`
	Hash  string    `json:"hash"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at"`
	Group string    `json:"group"`
	Note  string    `json:"note"`
}

// UnitAcks returns unit id's newest limit answers to bundles, newest
// bundle first.
func (s *Store) UnitAcks(ctx context.Context, id string, limit int) ([]AckRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT a.seq, a.hash, a.ok, a.error, a.at, COALESCE(b.grp, ''), COALESCE(b.note, '')
		FROM acks a LEFT JOIN bundles b ON b.seq = a.seq WHERE a.unit_id = $1 ORDER BY a.seq DESC LIMIT $2`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("centre: read acks of %s: %w", id, err)
	}
	defer rows.Close()
	var out []AckRecord
	for rows.Next() {
		var (
			a       AckRecord
			seq, at int64
		)
		if err := rows.Scan(&seq, &a.Hash, &a.OK, &a.Error, &at, &a.Group, &a.Note); err != nil {
			return nil, fmt.Errorf("centre: read acks of %s: %w", id, err)
		}
		a.Seq, a.At = uint64(max(seq, 0)), fromMS(at)
		out = append(out, a)
	}
	return out, rows.Err()
}
