package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sekisho/sekisho/internal/policy"
)

// FleetBundle is the newest centre bundle this unit applied.
type FleetBundle struct {
	Seq       uint64
	Hash      string
	Body, Sig []byte
	BlockIntl bool
	Note      string
	Applied   time.Time
}

// ErrStale is a bundle not newer than the one in force: an old bundle
// replayed (say, one that lifted a block) must never undo a newer one.
var ErrStale = errors.New("store: bundle is not newer than the one applied")

// FleetBundle reads the bundle in force; Seq 0 when none was applied.
func (s *Store) FleetBundle(ctx context.Context) (FleetBundle, error) {
	var b FleetBundle
	var at sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT seq, hash, body, sig, block_intl, note, applied_at FROM fleet_bundle WHERE id = 1`).
		Scan(&b.Seq, &b.Hash, &b.Body, &b.Sig, &b.BlockIntl, &b.Note, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return FleetBundle{}, nil
	}
	if err != nil {
		return b, fmt.Errorf("store: read fleet bundle: %w", err)
	}
	b.Applied = fromMilli(at)
	return b, nil
}

// ApplyFleetBundle puts b in force and, when rates is not nil, replaces
// the rate table with it, in one transaction: a unit is on the old bundle
// or the new one, never half of each. ErrStale when b is not newer.
func (s *Store) ApplyFleetBundle(ctx context.Context, b FleetBundle, rates []policy.Rate) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: apply bundle: %w", err)
	}
	defer tx.Rollback()
	var cur uint64
	if err := tx.QueryRowContext(ctx, `SELECT seq FROM fleet_bundle WHERE id = 1`).Scan(&cur); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: apply bundle: %w", err)
	}
	if b.Seq <= cur {
		return fmt.Errorf("bundle %d (in force: %d): %w", b.Seq, cur, ErrStale)
	}
	if rates != nil {
		if _, err := tx.ExecContext(ctx, `DELETE FROM rates`); err != nil {
			return fmt.Errorf("store: apply bundle rates: %w", err)
		}
		for _, r := range rates {
			if _, err := tx.ExecContext(ctx, `INSERT INTO rates (prefix, per_minute, note) VALUES (?, ?, ?)`, r.Prefix, r.PerMinute, r.Note); err != nil {
				return fmt.Errorf("store: apply bundle rate %s: %w", r.Prefix, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO fleet_bundle (id, seq, hash, body, sig, block_intl, note, applied_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, body = excluded.body, sig = excluded.sig,
		block_intl = excluded.block_intl, note = excluded.note, applied_at = excluded.applied_at`,
		b.Seq, b.Hash, b.Body, b.Sig, b.BlockIntl, b.Note, unixMilli(b.Applied)); err != nil {
		return fmt.Errorf("store: apply bundle: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: apply bundle: %w", err)
	}
	return nil
}
