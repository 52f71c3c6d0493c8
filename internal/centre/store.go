package centre

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver

	"github.com/sekisho/sekisho/internal/wire"
)

// DBFile is the embedded database's file name in the data directory.
const DBFile = "centre.db"

// Errors a caller can test for.
var (
	ErrNotFound = errors.New("centre: not found")
	// ErrTokenInvalid covers an unknown, used and expired token alike, so
	// an enrolling stranger learns nothing about which tokens exist.
	ErrTokenInvalid = errors.New("centre: enrolment token unknown, used or expired")
	// ErrRevoked is a unit whose certificate the vendor has revoked.
	ErrRevoked = errors.New("centre: unit revoked")
)

// Backends.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Store is the centre's database: SQLite in the data directory, or
// PostgreSQL when several centre replicas share one. One schema and one
// set of queries serve both: $N placeholders (which modernc.org/sqlite
// binds by number, as PostgreSQL does), times as BIGINT Unix
// milliseconds (0: never), binary data as text. Safe for concurrent use.
type Store struct {
	db      *sql.DB
	backend string
}

// IsPostgres tells whether dsn names a PostgreSQL database.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// OpenStore opens (creating and migrating on first use) the centre's
// database: DATA/centre.db when dsn is empty, else the PostgreSQL
// database dsn names.
func OpenStore(ctx context.Context, dir, dsn string) (*Store, error) {
	var (
		s    *Store
		path string
	)
	switch {
	case dsn == "":
		if dir == "" {
			return nil, errors.New("centre: no data directory: give --data DIR")
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("centre: create data directory %s: %w", dir, err)
		}
		path = filepath.Join(dir, DBFile)
		// Made 0600 before SQLite opens it: SQLite gives its -wal and
		// -shm files the database file's mode, and they hold the same
		// rows.
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("centre: create %s: %w", path, err)
		}
		f.Close()
		q := url.Values{}
		// The _pragma= spelling is the one modernc.org/sqlite obeys;
		// check() makes sure WAL really is on.
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "synchronous(FULL)")
		// Every transaction takes the write lock when it begins, so a
		// transaction that reads and then writes (a new bundle's seq)
		// waits for another writer instead of failing half way.
		q.Set("_txlock", "immediate")
		db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("centre: open %s: %w", path, err)
		}
		// One connection: SQLite has one writer anyway, and with a pool
		// every stream's writes fought for the lock by sleep and retry
		// (acks lost to "database is locked" from 1,000 units) and each
		// pooled connection kept a file open (the centre ran out of
		// files near 7,500 units). Measured with bench/fleet.sh.
		db.SetMaxOpenConns(1)
		s = &Store{db: db, backend: SQLite}
	case IsPostgres(dsn):
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			// Not err itself: it may quote the DSN, password and all.
			return nil, errors.New("centre: --db: not a PostgreSQL URL such as postgres://user:password@host:5432/db")
		}
		db.SetMaxOpenConns(20)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s = &Store{db: db, backend: Postgres}
	default:
		return nil, errors.New("centre: --db: want postgres://... or postgresql://..., or no --db for the embedded database in --data")
	}
	if err := s.check(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if path != "" {
		// The database names every unit and its certificate: private.
		if err := os.Chmod(path, 0o600); err != nil {
			s.db.Close()
			return nil, fmt.Errorf("centre: restrict %s: %w", path, err)
		}
	}
	return s, nil
}

// Backend returns SQLite or Postgres.
func (s *Store) Backend() string { return s.backend }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) check(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		if s.backend == Postgres {
			return fmt.Errorf("centre: connect to PostgreSQL (--db): %w", err)
		}
		return fmt.Errorf("centre: open database: %w", err)
	}
	if s.backend != SQLite {
		return nil
	}
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("centre: read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("centre: journal mode is %q, want wal", mode)
	}
	return nil
}

// migrations are applied in order; migration i has version i+1. Each is
// a list of statements (one Exec each, which both drivers accept).
var migrations = [][]string{
	{
		`CREATE TABLE units (
			id               TEXT PRIMARY KEY,
			name             TEXT NOT NULL DEFAULT '',
			grp              TEXT NOT NULL DEFAULT '',
			cert_fingerprint TEXT NOT NULL,
			enrolled_at      BIGINT NOT NULL,
			revoked_at       BIGINT NOT NULL DEFAULT 0,
			last_seen        BIGINT NOT NULL DEFAULT 0,
			version          TEXT NOT NULL DEFAULT '',
			applied_seq      BIGINT NOT NULL DEFAULT 0,
			status           TEXT NOT NULL DEFAULT '',
			online_until     BIGINT NOT NULL DEFAULT 0
		)`,
		`CREATE TABLE enrol_tokens (
			hash       TEXT PRIMARY KEY,
			created_at BIGINT NOT NULL,
			expires_at BIGINT NOT NULL,
			grp        TEXT NOT NULL DEFAULT '',
			used_at    BIGINT NOT NULL DEFAULT 0,
			unit_id    TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE TABLE bundles (
			seq        BIGINT PRIMARY KEY,
			created_at BIGINT NOT NULL,
			grp        TEXT NOT NULL DEFAULT '',
			body       TEXT NOT NULL,
			sig        TEXT NOT NULL,
			hash       TEXT NOT NULL,
			note       TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE INDEX bundles_grp ON bundles (grp, seq)`,
		`CREATE TABLE acks (
			unit_id TEXT NOT NULL,
			seq     BIGINT NOT NULL,
			hash    TEXT NOT NULL,
			ok      BOOLEAN NOT NULL,
			error   TEXT NOT NULL DEFAULT '',
			at      BIGINT NOT NULL,
			PRIMARY KEY (unit_id, seq)
		)`,
		`CREATE TABLE alerts (
			id           BIGINT PRIMARY KEY,
			unit_id      TEXT NOT NULL,
			unit_seq     BIGINT NOT NULL,
			at           BIGINT NOT NULL,
			kind         TEXT NOT NULL,
			subject      TEXT NOT NULL DEFAULT '',
			detail       TEXT NOT NULL DEFAULT '',
			count        BIGINT NOT NULL DEFAULT 0,
			received_at  BIGINT NOT NULL,
			delivered_at BIGINT NOT NULL DEFAULT 0,
			attempts     BIGINT NOT NULL DEFAULT 0,
			last_error   TEXT NOT NULL DEFAULT '',
			UNIQUE (unit_id, unit_seq)
		)`,
		`CREATE INDEX alerts_pending ON alerts (delivered_at, id)`,
	},
	// 2: the fleet dashboard (dash_store.go): operators (no default
	// account: each is added with a one-time setup link), their
	// sessions (SHA-256 of the cookie only), the log of what they did,
	// and a few settings the CLI reads (where the dashboard listens).
	{
		`CREATE TABLE operators (
			name          TEXT PRIMARY KEY,
			role          TEXT NOT NULL,
			pw_hash       TEXT NOT NULL DEFAULT '',
			totp_sealed   TEXT NOT NULL DEFAULT '',
			totp_step     BIGINT NOT NULL DEFAULT 0,
			failures      BIGINT NOT NULL DEFAULT 0,
			locked_until  BIGINT NOT NULL DEFAULT 0,
			setup_hash    TEXT NOT NULL DEFAULT '',
			setup_expires BIGINT NOT NULL DEFAULT 0,
			created_at    BIGINT NOT NULL,
			last_login    BIGINT NOT NULL DEFAULT 0
		)`,
		`CREATE TABLE operator_sessions (
			hash       TEXT PRIMARY KEY,
			operator   TEXT NOT NULL,
			created_at BIGINT NOT NULL,
			seen_at    BIGINT NOT NULL
		)`,
		`CREATE INDEX operator_sessions_operator ON operator_sessions (operator)`,
		`CREATE TABLE operator_log (
			id       BIGINT PRIMARY KEY,
			at       BIGINT NOT NULL,
			operator TEXT NOT NULL,
			action   TEXT NOT NULL,
			target   TEXT NOT NULL DEFAULT '',
			detail   TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE TABLE centre_settings (
			key   TEXT PRIMARY KEY,
			value TEXT NOT NULL
		)`,
		// The overview counts each unit's alerts of the last day every
		// five seconds.
		`CREATE INDEX alerts_received ON alerts (received_at)`,
	},
	// 3: certificate renewal: the certificate before the last renewal
	// stays good until the unit connects with the new one, so a unit
	// that lost the new one before saving it is not locked out.
	{
		`ALTER TABLE units ADD COLUMN prev_fingerprint TEXT NOT NULL DEFAULT ''`,
	},
}

// migrate applies the migrations not yet recorded in schema_migrations.
// Each runs in a transaction that first claims its version, so two
// centres starting at once on one PostgreSQL database apply it once.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    BIGINT PRIMARY KEY,
		applied_at BIGINT NOT NULL
	)`); err != nil {
		return fmt.Errorf("centre: migrations table: %w", err)
	}
	for i, stmts := range migrations {
		v := int64(i + 1)
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, v).Scan(&n); err != nil {
			return fmt.Errorf("centre: read schema version: %w", err)
		}
		if n > 0 {
			continue
		}
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, v, ms(time.Now())); err != nil {
				return err
			}
			for _, q := range stmts {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return err
				}
			}
			return nil
		})
		if isUnique(err) {
			continue // another centre applied it meanwhile
		}
		if err != nil {
			return fmt.Errorf("centre: migration %d: %w", v, err)
		}
	}
	return nil
}

// inTx runs fn in a transaction, committing if it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// isUnique tells whether err is a unique or primary key violation, on
// either backend (PostgreSQL's SQLSTATE 23505; SQLite's extended codes
// 2067 and 1555).
func isUnique(err error) bool {
	if err == nil {
		return false
	}
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		return pg.SQLState() == "23505"
	}
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		return lite.Code() == 2067 || lite.Code() == 1555
	}
	return false
}

// retryUnique runs fn again when it lost a race for a key (two
// PostgreSQL transactions picking the same next seq or id). Each round
// has a winner, so n writers racing are all through within n rounds; a
// short random pause keeps the losers from racing in step again.
func retryUnique(fn func() error) error {
	var err error
	for i := range 100 {
		if err = fn(); !isUnique(err) {
			return err
		}
		time.Sleep(mrand.N(time.Duration(i+1) * time.Millisecond))
	}
	return err
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// Unit is an enrolled PBX.
type Unit struct {
	ID              string          `json:"id"`
	Name            string          `json:"name"`
	Group           string          `json:"group"`
	CertFingerprint string          `json:"cert_fingerprint"`
	Enrolled        time.Time       `json:"enrolled"`
	Revoked         time.Time       `json:"revoked,omitzero"`
	LastSeen        time.Time       `json:"last_seen,omitzero"`
	Version         string          `json:"version"`
	Applied         uint64          `json:"applied_seq"`
	Status          json.RawMessage `json:"status,omitempty"`
	// OnlineUntil is kept a little ahead of now by the centre holding
	// the unit's stream, and cleared when the stream ends: a unit is
	// online while it is in the future.
	OnlineUntil time.Time `json:"-"`
	Online      bool      `json:"online"`
}

const unitColumns = `id, name, grp, cert_fingerprint, enrolled_at, revoked_at, last_seen, version, applied_seq, status, online_until`

func scanUnit(sc interface{ Scan(...any) error }, now time.Time) (Unit, error) {
	var (
		u                               Unit
		enrolled, revoked, seen, online int64
		applied                         int64
		status                          string
	)
	err := sc.Scan(&u.ID, &u.Name, &u.Group, &u.CertFingerprint, &enrolled, &revoked, &seen, &u.Version, &applied, &status, &online)
	if err != nil {
		return u, err
	}
	u.Enrolled, u.Revoked, u.LastSeen, u.OnlineUntil = fromMS(enrolled), fromMS(revoked), fromMS(seen), fromMS(online)
	u.Applied = uint64(max(applied, 0))
	if status != "" && json.Valid([]byte(status)) {
		u.Status = json.RawMessage(status)
	}
	u.Online = revoked == 0 && online > ms(now)
	return u, nil
}

// Unit returns the unit id, or ErrNotFound.
func (s *Store) Unit(ctx context.Context, id string) (Unit, error) {
	u, err := scanUnit(s.db.QueryRowContext(ctx, `SELECT `+unitColumns+` FROM units WHERE id = $1`, id), time.Now())
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("unit %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("centre: read unit %s: %w", id, err)
	}
	return u, nil
}

// Units returns every unit, revoked ones too, by enrolment.
func (s *Store) Units(ctx context.Context) ([]Unit, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+unitColumns+` FROM units ORDER BY enrolled_at, id`)
	if err != nil {
		return nil, fmt.Errorf("centre: list units: %w", err)
	}
	defer rows.Close()
	now := time.Now()
	var us []Unit
	for rows.Next() {
		u, err := scanUnit(rows, now)
		if err != nil {
			return nil, fmt.Errorf("centre: list units: %w", err)
		}
		us = append(us, u)
	}
	return us, rows.Err()
}

// RevokeUnit marks the unit revoked at at: its certificate opens no
// stream from now on. Revoking a revoked unit is not an error.
func (s *Store) RevokeUnit(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE units SET revoked_at = $1, online_until = 0 WHERE id = $2 AND revoked_at = 0`, ms(at), id)
	if err != nil {
		return fmt.Errorf("centre: revoke unit %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Unit(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// RevokedUnits returns the ids of every revoked unit.
func (s *Store) RevokedUnits(ctx context.Context) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM units WHERE revoked_at <> 0`)
	if err != nil {
		return nil, fmt.Errorf("centre: revoked units: %w", err)
	}
	defer rows.Close()
	ids := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("centre: revoked units: %w", err)
		}
		ids[id] = true
	}
	return ids, rows.Err()
}

// SetOnline sets until when the unit counts as online (zero: offline).
func (s *Store) SetOnline(ctx context.Context, id string, until time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE units SET online_until = $1 WHERE id = $2`, ms(until), id); err != nil {
		return fmt.Errorf("centre: unit %s online: %w", id, err)
	}
	return nil
}

// Seen records a stream's Hello: the unit's version and applied seq (as
// the unit says: one whose store was reset says 0 and is sent the newest
// bundle again).
func (s *Store) Seen(ctx context.Context, id, version string, applied uint64, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE units SET last_seen = $1, version = $2, applied_seq = $3 WHERE id = $4`,
		ms(at), version, int64(applied), id); err != nil {
		return fmt.Errorf("centre: unit %s hello: %w", id, err)
	}
	return nil
}

// Renewed puts a unit's new certificate on record, keeping the one it
// replaces as the previous (good until the unit uses the new one).
func (s *Store) Renewed(ctx context.Context, id, fingerprint string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE units SET prev_fingerprint = cert_fingerprint, cert_fingerprint = $1
		WHERE id = $2 AND revoked_at = 0`, fingerprint, id)
	if err != nil {
		return fmt.Errorf("centre: unit %s renewed: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("unit %s: %w", id, ErrNotFound)
	}
	return nil
}

// PrevFingerprint is the certificate a unit held before its last
// renewal, "" when it has used the new one since.
func (s *Store) PrevFingerprint(ctx context.Context, id string) (string, error) {
	var fp string
	err := s.db.QueryRowContext(ctx, `SELECT prev_fingerprint FROM units WHERE id = $1`, id).Scan(&fp)
	if err != nil {
		return "", fmt.Errorf("centre: unit %s: %w", id, err)
	}
	return fp, nil
}

// ForgetPrevious ends the previous certificate: the unit has connected
// with its current one.
func (s *Store) ForgetPrevious(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE units SET prev_fingerprint = '' WHERE id = $1 AND prev_fingerprint <> ''`, id); err != nil {
		return fmt.Errorf("centre: unit %s: %w", id, err)
	}
	return nil
}

// SaveStatus keeps the unit's latest figures. The applied seq it reports
// only moves the unit's forward: a status the unit made just before it
// applied a bundle can arrive after that bundle's ack.
func (s *Store) SaveStatus(ctx context.Context, id string, st wire.Status, at time.Time) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("centre: encode status: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE units SET last_seen = $1,
		applied_seq = CASE WHEN applied_seq > $2 THEN applied_seq ELSE $2 END, status = $3 WHERE id = $4`,
		ms(at), int64(st.Applied), string(b), id); err != nil {
		return fmt.Errorf("centre: unit %s status: %w", id, err)
	}
	return nil
}

// Touch records that the unit said something.
func (s *Store) Touch(ctx context.Context, id string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE units SET last_seen = $1 WHERE id = $2`, ms(at), id); err != nil {
		return fmt.Errorf("centre: unit %s seen: %w", id, err)
	}
	return nil
}

// TokenHash is what the store keeps of an enrolment token's secret.
func TokenHash(secret []byte) string {
	h := sha256.Sum256(secret)
	return hex.EncodeToString(h[:])
}

// AddToken stores a new enrolment token's hash.
func (s *Store) AddToken(ctx context.Context, hash, group string, created, expires time.Time) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO enrol_tokens (hash, created_at, expires_at, grp) VALUES ($1, $2, $3, $4)`,
		hash, ms(created), ms(expires), group); err != nil {
		return fmt.Errorf("centre: store enrolment token: %w", err)
	}
	return nil
}

// Enrol uses the token whose secret hashes to hash, and in the same
// transaction stores the unit that issue makes for the token's group. A
// token is used once: of two enrolments racing with it, one gets
// ErrTokenInvalid. why tells the centre's log (never the client) what
// was wrong with a refused token.
func (s *Store) Enrol(ctx context.Context, hash string, now time.Time, issue func(group string) (Unit, error)) (u Unit, why string, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT hash, grp FROM enrol_tokens WHERE used_at = 0 AND expires_at > $1`, ms(now))
		if err != nil {
			return err
		}
		want, _ := hex.DecodeString(hash)
		found, group := "", ""
		for rows.Next() {
			var h, g string
			if err := rows.Scan(&h, &g); err != nil {
				rows.Close()
				return err
			}
			hb, _ := hex.DecodeString(h)
			// Constant time, and every live token compared: the time
			// taken tells a guesser nothing about how near a guess
			// came to a real token.
			if subtle.ConstantTimeCompare(hb, want) == 1 {
				found, group = h, g
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if found == "" {
			why = s.whyRefused(ctx, tx, hash, now)
			return ErrTokenInvalid
		}
		u, err = issue(group)
		if err != nil {
			return err
		}
		// used_at = 0 in the WHERE makes the use atomic: an enrolment
		// racing this one (another replica on PostgreSQL) updates no row
		// and fails, so one token never makes two units.
		res, err := tx.ExecContext(ctx, `UPDATE enrol_tokens SET used_at = $1, unit_id = $2 WHERE hash = $3 AND used_at = 0`, ms(now), u.ID, found)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			why = "used by a racing enrolment"
			return ErrTokenInvalid
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO units (id, name, grp, cert_fingerprint, enrolled_at, version) VALUES ($1, $2, $3, $4, $5, $6)`,
			u.ID, u.Name, u.Group, u.CertFingerprint, ms(u.Enrolled), u.Version)
		return err
	})
	if err != nil && !errors.Is(err, ErrTokenInvalid) {
		err = fmt.Errorf("centre: enrol: %w", err)
	}
	return u, why, err
}

func (s *Store) whyRefused(ctx context.Context, tx *sql.Tx, hash string, now time.Time) string {
	var used, expires int64
	err := tx.QueryRowContext(ctx, `SELECT used_at, expires_at FROM enrol_tokens WHERE hash = $1`, hash).Scan(&used, &expires)
	switch {
	case err != nil:
		return "unknown token"
	case used != 0:
		return "token used already at " + fromMS(used).Format(time.RFC3339)
	default:
		return "token expired at " + fromMS(expires).Format(time.RFC3339)
	}
}

// Bundle is a stored, signed bundle.
type Bundle struct {
	Seq     uint64            `json:"seq"`
	Created time.Time         `json:"created"`
	Group   string            `json:"group"`
	Note    string            `json:"note"`
	Hash    string            `json:"hash"`
	Signed  wire.SignedBundle `json:"-"`
}

// AddBundle gives b the next seq, signs it with key and stores it, in
// one transaction: the seq is taken by the INSERT itself (max+1, and the
// primary key), so two pushes never share one; one that loses a race on
// PostgreSQL tries again with the next.
func (s *Store) AddBundle(ctx context.Context, key ed25519.PrivateKey, b wire.Bundle) (Bundle, error) {
	var out Bundle
	err := retryUnique(func() error {
		return s.inTx(ctx, func(tx *sql.Tx) error {
			created := time.Now().UTC().Truncate(time.Millisecond)
			var seq int64
			if err := tx.QueryRowContext(ctx, `INSERT INTO bundles (seq, created_at, grp, body, sig, hash, note)
				VALUES ((SELECT COALESCE(MAX(seq), 0) + 1 FROM bundles), $1, $2, '', '', '', $3) RETURNING seq`,
				ms(created), b.Group, b.Note).Scan(&seq); err != nil {
				return err
			}
			b.Seq, b.Created = uint64(seq), created
			sb, err := wire.Sign(key, b)
			if err != nil {
				return err
			}
			out = Bundle{Seq: b.Seq, Created: created, Group: b.Group, Note: b.Note, Hash: sb.Hash(), Signed: sb}
			_, err = tx.ExecContext(ctx, `UPDATE bundles SET body = $1, sig = $2, hash = $3 WHERE seq = $4`,
				string(sb.Body), base64.StdEncoding.EncodeToString(sb.Sig), out.Hash, seq)
			return err
		})
	})
	if err != nil {
		return Bundle{}, fmt.Errorf("centre: store bundle: %w", err)
	}
	return out, nil
}

const bundleColumns = `seq, created_at, grp, note, hash, body, sig`

func scanBundle(sc interface{ Scan(...any) error }) (Bundle, error) {
	var (
		b            Bundle
		seq, created int64
		body, sig    string
	)
	if err := sc.Scan(&seq, &created, &b.Group, &b.Note, &b.Hash, &body, &sig); err != nil {
		return b, err
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return b, fmt.Errorf("bundle %d: signature is not base64: %w", seq, err)
	}
	b.Seq, b.Created = uint64(seq), fromMS(created)
	b.Signed = wire.SignedBundle{Body: []byte(body), Sig: raw}
	return b, nil
}

// NewestBundle returns the newest bundle a unit of group is to have:
// the newest for every unit ("") or for that group. ok is false when
// there is none.
func (s *Store) NewestBundle(ctx context.Context, group string) (b Bundle, ok bool, err error) {
	b, err = scanBundle(s.db.QueryRowContext(ctx, `SELECT `+bundleColumns+` FROM bundles
		WHERE grp = '' OR grp = $1 ORDER BY seq DESC LIMIT 1`, group))
	if errors.Is(err, sql.ErrNoRows) {
		return b, false, nil
	}
	if err != nil {
		return b, false, fmt.Errorf("centre: newest bundle: %w", err)
	}
	return b, true, nil
}

// BundleBySeq returns bundle seq; 0: the newest of all. ErrNotFound when
// there is none.
func (s *Store) BundleBySeq(ctx context.Context, seq uint64) (Bundle, error) {
	var row *sql.Row
	if seq == 0 {
		row = s.db.QueryRowContext(ctx, `SELECT `+bundleColumns+` FROM bundles ORDER BY seq DESC LIMIT 1`)
	} else {
		row = s.db.QueryRowContext(ctx, `SELECT `+bundleColumns+` FROM bundles WHERE seq = $1`, int64(seq))
	}
	b, err := scanBundle(row)
	if errors.Is(err, sql.ErrNoRows) {
		if seq == 0 {
			return b, fmt.Errorf("no bundle pushed yet: %w", ErrNotFound)
		}
		return b, fmt.Errorf("bundle %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return b, fmt.Errorf("centre: read bundle: %w", err)
	}
	return b, nil
}

// GroupHeads returns the newest seq of each group's bundles ("": those
// for every unit). The centre polls it to see pushes made by another
// process or another replica.
func (s *Store) GroupHeads(ctx context.Context) (map[string]uint64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT grp, MAX(seq) FROM bundles GROUP BY grp`)
	if err != nil {
		return nil, fmt.Errorf("centre: bundle heads: %w", err)
	}
	defer rows.Close()
	heads := map[string]uint64{}
	for rows.Next() {
		var (
			g   string
			seq int64
		)
		if err := rows.Scan(&g, &seq); err != nil {
			return nil, fmt.Errorf("centre: bundle heads: %w", err)
		}
		heads[g] = uint64(seq)
	}
	return heads, rows.Err()
}

// SaveAck records a unit's answer to a bundle (the latest answer per
// unit and seq). An applied bundle moves the unit's applied seq forward
// only if its hash is the one the centre signed.
func (s *Store) SaveAck(ctx context.Context, unitID string, a wire.Ack, at time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO acks (unit_id, seq, hash, ok, error, at) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (unit_id, seq) DO UPDATE SET hash = excluded.hash, ok = excluded.ok, error = excluded.error, at = excluded.at`,
			unitID, int64(a.Seq), a.Hash, a.OK, a.Error, ms(at)); err != nil {
			return err
		}
		if !a.OK {
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE units SET applied_seq = $1
			WHERE id = $2 AND applied_seq < $1 AND EXISTS (SELECT 1 FROM bundles WHERE seq = $1 AND hash = $3)`,
			int64(a.Seq), unitID, a.Hash)
		return err
	})
	if err != nil {
		return fmt.Errorf("centre: unit %s ack %d: %w", unitID, a.Seq, err)
	}
	return nil
}

// Alert is an alert a unit raised, as the centre keeps it.
type Alert struct {
	ID       int64     `json:"id"`
	UnitID   string    `json:"unit_id"`
	UnitName string    `json:"unit_name"`
	UnitSeq  int64     `json:"unit_seq"`
	At       time.Time `json:"at"`
	Kind     string    `json:"kind"`
	Subject  string    `json:"subject"`
	Detail   string    `json:"detail"`
	Count    int64     `json:"count"`
	Received time.Time `json:"received"`
	// Delivery to the webhooks and by email.
	Delivered time.Time `json:"delivered,omitzero"`
	Attempts  int64     `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
}

// AddAlert stores a unit's alert once: added is false when the same
// unit sent the same seq before (a re-send after a reconnect).
func (s *Store) AddAlert(ctx context.Context, unitID string, a wire.Alert, received time.Time) (id int64, added bool, err error) {
	err = retryUnique(func() error {
		err := s.db.QueryRowContext(ctx, `INSERT INTO alerts (id, unit_id, unit_seq, at, kind, subject, detail, count, received_at)
			VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM alerts), $1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (unit_id, unit_seq) DO NOTHING RETURNING id`,
			unitID, a.Seq, ms(a.At), a.Kind, a.Subject, a.Detail, a.Count, ms(received)).Scan(&id)
		added = err == nil
		if errors.Is(err, sql.ErrNoRows) {
			return nil // the same alert again: kept once
		}
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("centre: store alert from %s: %w", unitID, err)
	}
	return id, added, nil
}

const alertSelect = `SELECT a.id, a.unit_id, COALESCE(u.name, ''), a.unit_seq, a.at, a.kind, a.subject, a.detail, a.count,
	a.received_at, a.delivered_at, a.attempts, a.last_error FROM alerts a LEFT JOIN units u ON u.id = a.unit_id`

func (s *Store) alerts(ctx context.Context, q string, args ...any) ([]Alert, error) {
	rows, err := s.db.QueryContext(ctx, alertSelect+" "+q, args...)
	if err != nil {
		return nil, fmt.Errorf("centre: read alerts: %w", err)
	}
	defer rows.Close()
	var as []Alert
	for rows.Next() {
		var (
			a                   Alert
			at, recv, delivered int64
		)
		if err := rows.Scan(&a.ID, &a.UnitID, &a.UnitName, &a.UnitSeq, &at, &a.Kind, &a.Subject, &a.Detail, &a.Count,
			&recv, &delivered, &a.Attempts, &a.LastError); err != nil {
			return nil, fmt.Errorf("centre: read alerts: %w", err)
		}
		a.At, a.Received, a.Delivered = fromMS(at), fromMS(recv), fromMS(delivered)
		as = append(as, a)
	}
	return as, rows.Err()
}

// Alerts returns the newest limit alerts, newest first.
func (s *Store) Alerts(ctx context.Context, limit int) ([]Alert, error) {
	return s.alerts(ctx, `ORDER BY a.id DESC LIMIT $1`, limit)
}

// PendingAlerts returns up to limit alerts not yet delivered, oldest
// first.
func (s *Store) PendingAlerts(ctx context.Context, limit int) ([]Alert, error) {
	return s.alerts(ctx, `WHERE a.delivered_at = 0 ORDER BY a.id LIMIT $1`, limit)
}

// AlertDelivered marks alert id delivered everywhere.
func (s *Store) AlertDelivered(ctx context.Context, id int64, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE alerts SET delivered_at = $1, attempts = attempts + 1, last_error = '' WHERE id = $2`, ms(at), id); err != nil {
		return fmt.Errorf("centre: alert %d delivered: %w", id, err)
	}
	return nil
}

// AlertFailed records a failed delivery attempt of alert id.
func (s *Store) AlertFailed(ctx context.Context, id int64, reason string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE alerts SET attempts = attempts + 1, last_error = $1 WHERE id = $2`, reason, id); err != nil {
		return fmt.Errorf("centre: alert %d failed: %w", id, err)
	}
	return nil
}

// Coverage is how far one bundle has reached among the units it is for
// (not revoked, of its group, or every unit for a bundle with none).
type Coverage struct {
	Seq        uint64      `json:"seq"`
	Group      string      `json:"group"`
	Hash       string      `json:"hash"`
	Created    time.Time   `json:"created"`
	Applied    int         `json:"applied"`
	Total      int         `json:"total"`
	Stragglers []Straggler `json:"stragglers"`
	Refused    []Refusal   `json:"refused"`
}

// Straggler is a unit that has not applied the bundle (nor a newer one).
type Straggler struct {
	UnitID   string    `json:"unit_id"`
	Name     string    `json:"name"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	Applied  uint64    `json:"applied_seq"`
	Online   bool      `json:"online"`
}

// Refusal is a unit that received the bundle and refused it.
type Refusal struct {
	UnitID string    `json:"unit_id"`
	Name   string    `json:"name"`
	Error  string    `json:"error"`
	At     time.Time `json:"at"`
}

// Coverage reports bundle seq (0: the newest). A unit counts as having
// applied it when its applied seq is at least seq: each bundle is the
// whole policy, so a newer one applied covers it.
func (s *Store) Coverage(ctx context.Context, seq uint64) (Coverage, error) {
	b, err := s.BundleBySeq(ctx, seq)
	if err != nil {
		return Coverage{}, err
	}
	c := Coverage{Seq: b.Seq, Group: b.Group, Hash: b.Hash, Created: b.Created, Stragglers: []Straggler{}, Refused: []Refusal{}}
	refused := map[string]Refusal{}
	rows, err := s.db.QueryContext(ctx, `SELECT unit_id, error, at FROM acks WHERE seq = $1 AND ok = $2`, int64(b.Seq), false)
	if err != nil {
		return c, fmt.Errorf("centre: coverage: %w", err)
	}
	for rows.Next() {
		var (
			r  Refusal
			at int64
		)
		if err := rows.Scan(&r.UnitID, &r.Error, &at); err != nil {
			rows.Close()
			return c, fmt.Errorf("centre: coverage: %w", err)
		}
		r.At = fromMS(at)
		refused[r.UnitID] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("centre: coverage: %w", err)
	}
	units, err := s.Units(ctx)
	if err != nil {
		return c, err
	}
	for _, u := range units {
		if !u.Revoked.IsZero() || (b.Group != "" && u.Group != b.Group) {
			continue
		}
		c.Total++
		switch r, ok := refused[u.ID]; {
		case u.Applied >= b.Seq:
			c.Applied++
		case ok:
			r.Name = u.Name
			c.Refused = append(c.Refused, r)
		default:
			c.Stragglers = append(c.Stragglers, Straggler{UnitID: u.ID, Name: u.Name, LastSeen: u.LastSeen, Applied: u.Applied, Online: u.Online})
		}
	}
	sort.Slice(c.Stragglers, func(i, j int) bool { return c.Stragglers[i].LastSeen.Before(c.Stragglers[j].LastSeen) })
	return c, nil
}
