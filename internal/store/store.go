// Package store keeps sekisho's durable state in an embedded SQLite
// database (modernc.org/sqlite, pure Go, so the binary stays static):
// extensions with their digest hashes, and call detail records.
//
// The database runs in WAL mode so that the CLI (`sekisho ext add`, ...)
// can write while the server reads: a change made by the CLI is seen by the
// running server on its next lookup, with no restart.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrExists is returned when a row to be created already exists.
var ErrExists = errors.New("store: already exists")

// DBFile is the database file name inside the data directory.
const DBFile = "sekisho.db"

// Store is a handle on the data directory's database. It is safe for
// concurrent use; Close releases it.
type Store struct {
	db  *sql.DB
	dir string
	// extByNumber is the extension lookup that every authentication runs;
	// prepared once, because parsing the SQL each time cost more than
	// running it (about a fifth of a REGISTER's CPU).
	extByNumber *sql.Stmt
	// extGen reads the extensions' change counter (see ensureExtGeneration).
	extGen *sql.Stmt
	// cdrInsert and cdrUpdate are the call record writes (see CDRTx).
	cdrInsert, cdrUpdate *sql.Stmt
}

// maxConns bounds the store's SQLite connections, all kept open: reads
// run in parallel under WAL, writes take turns on the one write lock.
const maxConns = 8

// Open opens (creating on first use) the store in dir. The directory is
// created with mode 0700: it holds digest hashes and, later, keys.
func Open(ctx context.Context, dir string) (*Store, error) {
	return OpenWaiting(ctx, dir, 10*time.Second)
}

// OpenWaiting is Open with busy: how long a write waits for the
// database's lock. The server keeps 10 s; the CLI waits a minute, since
// a server writing its evidence under a flood can hold the lock in turn
// for long stretches, and a person's change must not fail for that.
func OpenWaiting(ctx context.Context, dir string, busy time.Duration) (*Store, error) {
	if dir == "" {
		return nil, errors.New("store: empty data directory (set --data or SEKISHO_DATA)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, DBFile)
	// Pragmas must use the _pragma= form: modernc.org/sqlite silently
	// ignores other spellings, and then WAL would quietly be off.
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	// FULL: a call record that was reported written survives power loss.
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	dsn := "file:" + path + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// Keep the connections that were opened: database/sql keeps two idle
	// by default, so under load every other query opened a new SQLite
	// connection, which parses the whole schema and maps the WAL index
	// again (a profile at 3,000 REGISTER/s showed that work above the
	// lookups themselves).
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	s := &Store{db: db, dir: dir}
	if err := s.check(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.seed(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.ensureExtGeneration(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if s.extGen, err = db.PrepareContext(ctx, `SELECT n FROM extension_generation WHERE id = 1`); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: prepare extension generation: %w", err)
	}
	if s.cdrInsert, err = db.PrepareContext(ctx, cdrInsertSQL); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: prepare call record insert: %w", err)
	}
	if s.cdrUpdate, err = db.PrepareContext(ctx, cdrUpdateSQL); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: prepare call record update: %w", err)
	}
	if s.extByNumber, err = db.PrepareContext(ctx, `SELECT `+extColumns+` FROM extensions WHERE number = ?`); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: prepare extension lookup: %w", err)
	}
	// The database file holds secrets' hashes: keep it private even if the
	// directory already existed with looser permissions.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: restrict %s: %w", path, err)
	}
	return s, nil
}

// check makes sure the pragmas really took effect.
func (s *Store) check(ctx context.Context) error {
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("store: read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("store: journal mode is %q, want wal", mode)
	}
	return nil
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }

// Close closes the database.
func (s *Store) Close() error {
	s.extByNumber.Close()
	s.extGen.Close()
	s.cdrInsert.Close()
	s.cdrUpdate.Close()
	return s.db.Close()
}

// migrations are applied in order; the index+1 is the schema version.
var migrations = []string{
	`CREATE TABLE extensions (
		number      TEXT PRIMARY KEY,
		name        TEXT NOT NULL DEFAULT '',
		realm       TEXT NOT NULL,
		ha1_md5     TEXT NOT NULL,
		ha1_sha256  TEXT NOT NULL,
		digest      TEXT NOT NULL,
		created_at  INTEGER NOT NULL,
		updated_at  INTEGER NOT NULL
	);
	CREATE TABLE cdr (
		id            INTEGER PRIMARY KEY AUTOINCREMENT,
		call_id       TEXT NOT NULL,
		state         TEXT NOT NULL,
		started_at    INTEGER NOT NULL,
		answered_at   INTEGER,
		ended_at      INTEGER,
		duration_ms   INTEGER NOT NULL DEFAULT 0,
		caller        TEXT NOT NULL,
		source        TEXT NOT NULL,
		dialled       TEXT NOT NULL,
		callee        TEXT NOT NULL,
		result_code   INTEGER NOT NULL DEFAULT 0,
		result_reason TEXT NOT NULL DEFAULT '',
		hangup_by     TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX cdr_started ON cdr(started_at);
	CREATE TABLE settings (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);`,
	`CREATE TABLE trunks (
		name         TEXT PRIMARY KEY,
		peer         TEXT NOT NULL,
		transport    TEXT NOT NULL,
		username     TEXT NOT NULL DEFAULT '',
		password_enc BLOB,
		register     INTEGER NOT NULL DEFAULT 0,
		caller_id    TEXT NOT NULL DEFAULT '',
		created_at   INTEGER NOT NULL,
		reg_state    TEXT NOT NULL DEFAULT '',
		reg_detail   TEXT NOT NULL DEFAULT '',
		reg_expires  INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE dids (
		number     TEXT PRIMARY KEY,
		ext        TEXT NOT NULL,
		created_at INTEGER NOT NULL
	);
	ALTER TABLE cdr ADD COLUMN direction TEXT NOT NULL DEFAULT 'internal';
	ALTER TABLE cdr ADD COLUMN trunk TEXT NOT NULL DEFAULT '';
	ALTER TABLE cdr ADD COLUMN sent_number TEXT NOT NULL DEFAULT '';
	ALTER TABLE cdr ADD COLUMN packets_a_to_b INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE cdr ADD COLUMN packets_b_to_a INTEGER NOT NULL DEFAULT 0;`,
	`ALTER TABLE cdr ADD COLUMN packets_foreign INTEGER NOT NULL DEFAULT 0;`,
	`ALTER TABLE extensions ADD COLUMN class TEXT NOT NULL DEFAULT '';
	ALTER TABLE extensions ADD COLUMN countries TEXT NOT NULL DEFAULT '';`,
	// 5: toll policy. Profiles and limits, the rate table, suspensions,
	// alerts, and what each outbound call cost.
	`CREATE TABLE profiles (
		name              TEXT PRIMARY KEY,
		class             TEXT NOT NULL,
		countries         TEXT NOT NULL DEFAULT '',
		hours             TEXT NOT NULL DEFAULT '',
		max_duration_s    INTEGER NOT NULL DEFAULT 0,
		max_calls         INTEGER NOT NULL DEFAULT 0,
		intl_per_minute   INTEGER NOT NULL DEFAULT 0,
		intl_per_hour     INTEGER NOT NULL DEFAULT 0,
		same_prefix       INTEGER NOT NULL DEFAULT 0,
		distinct_per_hour INTEGER NOT NULL DEFAULT 0,
		daily_spend       INTEGER NOT NULL DEFAULT 0,
		updated_at        INTEGER NOT NULL
	);
	CREATE TABLE scope_limits (
		scope             TEXT PRIMARY KEY,
		max_calls         INTEGER NOT NULL DEFAULT 0,
		intl_per_minute   INTEGER NOT NULL DEFAULT 0,
		intl_per_hour     INTEGER NOT NULL DEFAULT 0,
		same_prefix       INTEGER NOT NULL DEFAULT 0,
		distinct_per_hour INTEGER NOT NULL DEFAULT 0,
		daily_spend       INTEGER NOT NULL DEFAULT 0,
		updated_at        INTEGER NOT NULL
	);
	CREATE TABLE rates (
		prefix     TEXT PRIMARY KEY,
		per_minute INTEGER NOT NULL,
		note       TEXT NOT NULL DEFAULT ''
	);
	CREATE TABLE alerts (
		id           INTEGER PRIMARY KEY AUTOINCREMENT,
		at           INTEGER NOT NULL,
		kind         TEXT NOT NULL,
		subject      TEXT NOT NULL,
		detail       TEXT NOT NULL,
		delivered_at INTEGER NOT NULL DEFAULT 0,
		attempts     INTEGER NOT NULL DEFAULT 0,
		last_error   TEXT NOT NULL DEFAULT ''
	);
	ALTER TABLE extensions ADD COLUMN profile TEXT NOT NULL DEFAULT '';
	ALTER TABLE extensions ADD COLUMN suspended_at INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE extensions ADD COLUMN suspend_reason TEXT NOT NULL DEFAULT '';
	ALTER TABLE extensions ADD COLUMN unlocked_at INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE cdr ADD COLUMN dest_kind TEXT NOT NULL DEFAULT '';
	ALTER TABLE cdr ADD COLUMN dest_e164 TEXT NOT NULL DEFAULT '';
	ALTER TABLE cdr ADD COLUMN country TEXT NOT NULL DEFAULT '';
	ALTER TABLE cdr ADD COLUMN cost INTEGER NOT NULL DEFAULT 0;`,
	// 6: how each trunk wants numbers written.
	`ALTER TABLE trunks ADD COLUMN number_format TEXT NOT NULL DEFAULT 'mixed';`,
	// 7: intrusion prevention. Bans (kept after they expire, so a repeat
	// offender's ban grows across restarts), where each extension may
	// come from, and the addresses each extension has registered from.
	`CREATE TABLE bans (
		address    TEXT PRIMARY KEY,
		until      INTEGER NOT NULL,
		reason     TEXT NOT NULL,
		offences   INTEGER NOT NULL DEFAULT 1,
		created_at INTEGER NOT NULL,
		by         TEXT NOT NULL DEFAULT 'pbx'
	);
	CREATE TABLE ext_sources (
		number     TEXT NOT NULL,
		address    TEXT NOT NULL,
		first_seen INTEGER NOT NULL,
		PRIMARY KEY (number, address)
	);
	ALTER TABLE extensions ADD COLUMN networks TEXT NOT NULL DEFAULT '';`,
	// 8: the evidence log. Rows are chained: each hash covers the previous
	// hash and the row, so an edit, a deletion, a swap or a cut shows.
	// Checkpoints are signed (size, hash, time) statements.
	`CREATE TABLE audit (
		seq      INTEGER PRIMARY KEY,
		at       INTEGER NOT NULL,
		type     TEXT NOT NULL,
		source   TEXT NOT NULL DEFAULT '',
		target   TEXT NOT NULL DEFAULT '',
		count    INTEGER NOT NULL DEFAULT 1,
		first_at INTEGER NOT NULL,
		last_at  INTEGER NOT NULL,
		detail   TEXT NOT NULL DEFAULT '',
		hash     BLOB NOT NULL
	);
	CREATE INDEX audit_type ON audit(type, at);
	CREATE TABLE audit_checkpoints (
		size INTEGER PRIMARY KEY,
		hash BLOB NOT NULL,
		at   INTEGER NOT NULL,
		sig  BLOB NOT NULL
	);`,
	// 9: where a pruned evidence log now starts: the seq and hash of the
	// last record removed, so the rest still verifies.
	`CREATE TABLE audit_anchor (
		id   INTEGER PRIMARY KEY CHECK (id = 1),
		seq  INTEGER NOT NULL,
		hash BLOB NOT NULL
	);`,
	// 10: console accounts and sessions. Passwords as argon2id hashes,
	// session tokens as SHA-256: a stolen database opens no session.
	`CREATE TABLE admins (
		username     TEXT PRIMARY KEY,
		hash         TEXT NOT NULL,
		role         TEXT NOT NULL,
		created_at   INTEGER NOT NULL,
		failures     INTEGER NOT NULL DEFAULT 0,
		locked_until INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE sessions (
		token_hash BLOB PRIMARY KEY,
		username   TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		seen_at    INTEGER NOT NULL
	);`,
	// 11: a console account's second factor and the console's VPN peers.
	// The TOTP secret is sealed by the vault (it must be read back to
	// check a code); totp_step is the last time step accepted, so a code
	// is good once. A VPN peer is a WireGuard public key with one tunnel
	// address; its private key never reaches the PBX.
	`ALTER TABLE admins ADD COLUMN totp_sealed BLOB;
	ALTER TABLE admins ADD COLUMN totp_step INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE vpn_peers (
		name       TEXT PRIMARY KEY,
		public_key TEXT NOT NULL UNIQUE,
		address    TEXT NOT NULL UNIQUE,
		created_at INTEGER NOT NULL
	);`,
	// 12: the newest policy bundle from the vendor's centre that this unit
	// applied, kept whole (body and signature) as evidence of what was in
	// force and so that a restart keeps it.
	`CREATE TABLE fleet_bundle (
		id          INTEGER PRIMARY KEY CHECK (id = 1),
		seq         INTEGER NOT NULL,
		hash        TEXT NOT NULL,
		body        BLOB NOT NULL,
		sig         BLOB NOT NULL,
		block_intl  INTEGER NOT NULL,
		note        TEXT NOT NULL DEFAULT '',
		applied_at  INTEGER NOT NULL
	);`,
	// 13: call forwarding: one target per extension and condition
	// (always, busy, noanswer), checked against the toll gate when it is
	// set and again by every call that follows it. Gone with the
	// extension.
	`CREATE TABLE forwards (
		ext        TEXT NOT NULL REFERENCES extensions(number) ON DELETE CASCADE,
		mode       TEXT NOT NULL CHECK (mode IN ('always', 'busy', 'noanswer')),
		target     TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		PRIMARY KEY (ext, mode)
	);`,
	// 14: ring groups: a number that rings several extensions, all at
	// once (ring-all) or one after another (hunt), for ring_ms each,
	// then overflows to another group. Members go with their extension.
	`CREATE TABLE ring_groups (
		number     TEXT PRIMARY KEY,
		name       TEXT NOT NULL DEFAULT '',
		strategy   TEXT NOT NULL CHECK (strategy IN ('ring-all', 'hunt')),
		ring_ms    INTEGER NOT NULL,
		overflow   TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL
	);
	CREATE TABLE ring_group_members (
		grp TEXT NOT NULL REFERENCES ring_groups(number) ON DELETE CASCADE,
		ext TEXT NOT NULL REFERENCES extensions(number) ON DELETE CASCADE,
		pos INTEGER NOT NULL,
		PRIMARY KEY (grp, ext)
	);`,
	// 15: voicemail: a mailbox per extension (the PIN only as an argon2id
	// hash, its failed tries and lock for brute-force protection) and the
	// messages left in it (the audio is a WAV file under DATA/voicemail).
	`CREATE TABLE voicemail_boxes (
		ext          TEXT PRIMARY KEY REFERENCES extensions(number) ON DELETE CASCADE,
		pin_hash     TEXT NOT NULL,
		email        TEXT NOT NULL DEFAULT '',
		fails        INTEGER NOT NULL DEFAULT 0,
		locked_until INTEGER NOT NULL DEFAULT 0,
		created_at   INTEGER NOT NULL
	);
	CREATE TABLE voicemail_messages (
		id          INTEGER PRIMARY KEY,
		ext         TEXT NOT NULL REFERENCES voicemail_boxes(ext) ON DELETE CASCADE,
		caller      TEXT NOT NULL,
		received_at INTEGER NOT NULL,
		duration_ms INTEGER NOT NULL,
		file        TEXT NOT NULL,
		heard       INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX voicemail_messages_ext ON voicemail_messages (ext, id);`,
}

// extGenerationSchema is a counter that SQLite itself raises on every
// insert, update or delete of an extension, from any process (the CLI
// edits the database while the server runs). The server caches extension
// lookups and re-reads this one row a few times a second to know when the
// cache is stale. It is created with IF NOT EXISTS on every open rather
// than as a numbered migration: it holds nothing that a migration would
// have to carry over, and it can be dropped and made again at any time.
const extGenerationSchema = `
CREATE TABLE IF NOT EXISTS extension_generation (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	n INTEGER NOT NULL
);
INSERT OR IGNORE INTO extension_generation (id, n) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS extension_generation_insert AFTER INSERT ON extensions
BEGIN UPDATE extension_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS extension_generation_update AFTER UPDATE ON extensions
BEGIN UPDATE extension_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS extension_generation_delete AFTER DELETE ON extensions
BEGIN UPDATE extension_generation SET n = n + 1 WHERE id = 1; END;
`

func (s *Store) ensureExtGeneration(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, extGenerationSchema); err != nil {
		return fmt.Errorf("store: extension change counter: %w", err)
	}
	return nil
}

// ExtensionGeneration returns a number that changes whenever any
// extension is added, changed or deleted, by this process or another.
func (s *Store) ExtensionGeneration(ctx context.Context) (int64, error) {
	var n int64
	if err := s.extGen.QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: read extension generation: %w", err)
	}
	return n, nil
}

func (s *Store) migrate(ctx context.Context) error {
	var version int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("store: read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("store: schema version %d is newer than this binary knows (%d): upgrade sekisho", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("store: migrate to %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migrate to %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migrate to %d: %w", i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: migrate to %d: %w", i+1, err)
		}
	}
	return nil
}

func unixMilli(t time.Time) int64 { return t.UnixMilli() }

func fromMilli(v sql.NullInt64) time.Time {
	if !v.Valid || v.Int64 == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64)
}

// Setting returns a stored setting, or def if it was never set.
func (s *Store) Setting(ctx context.Context, key, def string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return def, nil
	}
	if err != nil {
		return "", fmt.Errorf("store: read setting %s: %w", key, err)
	}
	return v, nil
}

// SetSetting stores a setting.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("store: write setting %s: %w", key, err)
	}
	return nil
}

// SettingRealm is the digest realm the server runs with; the CLI hashes
// new passwords for it.
const SettingRealm = "realm"

// SettingRegion is the region the server runs with; the CLI checks new
// extension numbers against its emergency numbers.
const SettingRegion = "region"

// SettingOutsidePrefix is the outside-line prefix the server runs with.
const SettingOutsidePrefix = "outside-prefix"

// DefaultRealm is the realm before any server has started.
const DefaultRealm = "sekisho"

// BeginExclusive takes the database's write lock and holds it until the
// returned function is called. Tests use it to play a locked database.
func (s *Store) BeginExclusive(ctx context.Context) (func(), error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: exclusive: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("store: exclusive: %w", err)
	}
	return func() {
		conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
	}, nil
}

// insertUnique runs an INSERT and turns a primary-key clash into
// ErrExists, naming what (for example "extension 201").
func (s *Store) insertUnique(ctx context.Context, what, query string, args ...any) error {
	if _, err := s.db.ExecContext(ctx, query, args...); err != nil {
		if strings.Contains(err.Error(), "UNIQUE constraint") {
			return fmt.Errorf("%s: %w", what, ErrExists)
		}
		return fmt.Errorf("store: add %s: %w", what, err)
	}
	return nil
}

// deleteOne runs a DELETE and returns ErrNotFound if it removed nothing.
func (s *Store) deleteOne(ctx context.Context, what, query string, args ...any) error {
	res, err := s.db.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("store: delete %s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}
