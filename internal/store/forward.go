package store

import (
	"context"
	"fmt"
	"time"
)

// Forwarding conditions.
const (
	ForwardAlways   = "always"   // every call, before ringing the extension
	ForwardBusy     = "busy"     // the extension answered busy
	ForwardNoAnswer = "noanswer" // no answer before the ring timeout, or not registered
)

// Forward is one extension's forwarding for one condition. To is the
// number as it would be dialled from that extension; the toll gate
// decides it when it is set and on every call that follows it.
type Forward struct {
	Ext     string    `json:"ext"`
	When    string    `json:"when"`
	To      string    `json:"to"`
	Created time.Time `json:"created"`
}

// SetForward stores f, replacing the extension's forward for f.When.
func (s *Store) SetForward(ctx context.Context, f Forward) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO forwards (ext, mode, target, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (ext, mode) DO UPDATE SET target = excluded.target, created_at = excluded.created_at`,
		f.Ext, f.When, f.To, unixMilli(f.Created))
	if err != nil {
		return fmt.Errorf("store: set forward of %s (%s): %w", f.Ext, f.When, err)
	}
	return nil
}

// ClearForward removes ext's forward for when ("": all of them) and
// tells how many there were.
func (s *Store) ClearForward(ctx context.Context, ext, when string) (int64, error) {
	q, args := `DELETE FROM forwards WHERE ext = ?`, []any{ext}
	if when != "" {
		q, args = q+` AND mode = ?`, append(args, when)
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("store: clear forward of %s: %w", ext, err)
	}
	return res.RowsAffected()
}

// Forwards lists the forwards of ext ("": of every extension).
func (s *Store) Forwards(ctx context.Context, ext string) ([]Forward, error) {
	q, args := `SELECT ext, mode, target, created_at FROM forwards`, []any{}
	if ext != "" {
		q, args = q+` WHERE ext = ?`, append(args, ext)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY ext, mode`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list forwards: %w", err)
	}
	defer rows.Close()
	out := []Forward{}
	for rows.Next() {
		var f Forward
		var created int64
		if err := rows.Scan(&f.Ext, &f.When, &f.To, &created); err != nil {
			return nil, fmt.Errorf("store: list forwards: %w", err)
		}
		f.Created = time.UnixMilli(created).UTC()
		out = append(out, f)
	}
	return out, rows.Err()
}
