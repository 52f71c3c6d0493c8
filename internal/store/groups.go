package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Ring group strategies.
const (
	RingAll = "ring-all" // every member at once; the first to answer wins
	Hunt    = "hunt"     // one member after another, in order
)

// Group is a ring group (代表着信): a number that rings its members.
type Group struct {
	Number   string        `json:"number"`
	Name     string        `json:"name,omitempty"`
	Strategy string        `json:"strategy"`
	Ring     time.Duration `json:"-"`
	RingSecs int           `json:"ring_seconds"`
	Overflow string        `json:"overflow,omitempty"` // a group rung when this one is not answered
	Members  []string      `json:"members"`
	Created  time.Time     `json:"created"`
}

// AddGroup stores g and its members in one transaction; ErrExists when
// the number is taken by a group.
func (s *Store) AddGroup(ctx context.Context, g Group) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: add group %s: %w", g.Number, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO ring_groups (number, name, strategy, ring_ms, overflow, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		g.Number, g.Name, g.Strategy, g.Ring.Milliseconds(), g.Overflow, unixMilli(g.Created)); err != nil {
		if strings.Contains(err.Error(), "UNIQUE constraint") {
			return fmt.Errorf("group %s: %w", g.Number, ErrExists)
		}
		return fmt.Errorf("store: add group %s: %w", g.Number, err)
	}
	for i, m := range g.Members {
		if _, err := tx.ExecContext(ctx, `INSERT INTO ring_group_members (grp, ext, pos) VALUES (?, ?, ?)`, g.Number, m, i); err != nil {
			return fmt.Errorf("store: add group %s member %s: %w", g.Number, m, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: add group %s: %w", g.Number, err)
	}
	return nil
}

// DeleteGroup removes a group; ErrNotFound if absent.
func (s *Store) DeleteGroup(ctx context.Context, number string) error {
	return s.deleteOne(ctx, "group "+number, `DELETE FROM ring_groups WHERE number = ?`, number)
}

// Group returns group number with its members in order; ErrNotFound.
func (s *Store) Group(ctx context.Context, number string) (Group, error) {
	gs, err := s.groups(ctx, number)
	if err != nil {
		return Group{}, err
	}
	if len(gs) == 0 {
		return Group{}, fmt.Errorf("group %s: %w", number, ErrNotFound)
	}
	return gs[0], nil
}

// Groups lists every group by number.
func (s *Store) Groups(ctx context.Context) ([]Group, error) { return s.groups(ctx, "") }

func (s *Store) groups(ctx context.Context, number string) ([]Group, error) {
	q := `SELECT g.number, g.name, g.strategy, g.ring_ms, g.overflow, g.created_at, COALESCE(m.ext, '')
		FROM ring_groups g LEFT JOIN ring_group_members m ON m.grp = g.number`
	args := []any{}
	if number != "" {
		q, args = q+` WHERE g.number = ?`, append(args, number)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY g.number, m.pos`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: read groups: %w", err)
	}
	defer rows.Close()
	out := []Group{}
	for rows.Next() {
		var g Group
		var ringMS, created int64
		var member string
		if err := rows.Scan(&g.Number, &g.Name, &g.Strategy, &ringMS, &g.Overflow, &created, &member); err != nil {
			return nil, fmt.Errorf("store: read groups: %w", err)
		}
		if n := len(out); n == 0 || out[n-1].Number != g.Number {
			g.Ring, g.RingSecs, g.Created = time.Duration(ringMS)*time.Millisecond, int(ringMS/1000), time.UnixMilli(created).UTC()
			g.Members = []string{}
			out = append(out, g)
		}
		if member != "" {
			out[len(out)-1].Members = append(out[len(out)-1].Members, member)
		}
	}
	if err := rows.Err(); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: read groups: %w", err)
	}
	return out, nil
}
