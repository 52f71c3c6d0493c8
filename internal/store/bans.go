package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Ban is a source address refused at the door. Rows stay after the ban
// ends so that a repeat offender's next ban is longer, across restarts.
type Ban struct {
	Address  string    `json:"address"`
	Until    time.Time `json:"until"`
	Reason   string    `json:"reason"`
	Offences int       `json:"offences"`
	Created  time.Time `json:"created"`
	By       string    `json:"by"` // "pbx" or "admin"
}

// Active reports whether the ban is in force at now.
func (b Ban) Active(now time.Time) bool { return now.Before(b.Until) }

// Bans lists every ban row, active or ended, by address.
func (s *Store) Bans(ctx context.Context) ([]Ban, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT address, until, reason, offences, created_at, by FROM bans ORDER BY address`)
	if err != nil {
		return nil, fmt.Errorf("store: list bans: %w", err)
	}
	defer rows.Close()
	var out []Ban
	for rows.Next() {
		var b Ban
		var until, created sql.NullInt64
		if err := rows.Scan(&b.Address, &until, &b.Reason, &b.Offences, &created, &b.By); err != nil {
			return nil, fmt.Errorf("store: list bans: %w", err)
		}
		b.Until, b.Created = fromMilli(until), fromMilli(created)
		out = append(out, b)
	}
	return out, rows.Err()
}

// PutBan creates or replaces the ban of b.Address.
func (s *Store) PutBan(ctx context.Context, b Ban) error {
	_, err := s.db.ExecContext(ctx, putBanSQL, b.Address, unixMilli(b.Until), b.Reason, b.Offences, unixMilli(b.Created), b.By)
	if err != nil {
		return fmt.Errorf("store: ban %s: %w", b.Address, err)
	}
	return nil
}

const putBanSQL = `INSERT INTO bans (address, until, reason, offences, created_at, by) VALUES (?, ?, ?, ?, ?, ?)
	ON CONFLICT(address) DO UPDATE SET until = excluded.until, reason = excluded.reason, offences = excluded.offences,
	created_at = excluded.created_at, by = excluded.by`

// PutBans stores several bans in one transaction (see PutBan).
func (s *Store) PutBans(ctx context.Context, bans []Ban) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: ban %d sources: %w", len(bans), err)
	}
	defer tx.Rollback()
	for _, b := range bans {
		if _, err := tx.ExecContext(ctx, putBanSQL, b.Address, unixMilli(b.Until), b.Reason, b.Offences, unixMilli(b.Created), b.By); err != nil {
			return fmt.Errorf("store: ban %s: %w", b.Address, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: ban %d sources: %w", len(bans), err)
	}
	return nil
}

// Unban ends the ban of address now, keeping its offence count. It returns
// ErrNotFound if the address was never banned.
func (s *Store) Unban(ctx context.Context, address string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE bans SET until = ? WHERE address = ?`, unixMilli(now), address)
	if err != nil {
		return fmt.Errorf("store: unban %s: %w", address, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("ban %s: %w", address, ErrNotFound)
	}
	return nil
}

// NoteSource records that extension number registered from address. It
// reports whether the address is new for the extension and, if so, how
// many other addresses it had registered from before.
func (s *Store) NoteSource(ctx context.Context, number, address string, at time.Time) (bool, int, error) {
	res, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO ext_sources (number, address, first_seen) VALUES (?, ?, ?)`,
		number, address, unixMilli(at))
	if err != nil {
		return false, 0, fmt.Errorf("store: note source of %s: %w", number, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, 0, nil
	}
	var others int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) - 1 FROM ext_sources WHERE number = ?`, number).Scan(&others); err != nil {
		return true, 0, fmt.Errorf("store: count sources of %s: %w", number, err)
	}
	return true, others, nil
}
