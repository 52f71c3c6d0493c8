package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Trunk is a SIP trunk to a carrier. PasswordSealed is the trunk password
// sealed by package vault; the store never sees it in the clear.
type Trunk struct {
	Name           string
	Peer           string // host:port of the carrier's SIP server
	Transport      string // "udp" or "tcp"
	Username       string
	PasswordSealed []byte
	Register       bool
	CallerID       string // number presented on outbound calls
	// NumberFormat is how the carrier wants the Request-URI number:
	// "mixed", "national" or "e164" (see dialplan.Format).
	NumberFormat string
	Created      time.Time

	// Registration state, written by the server.
	RegState   string // "", "registering", "registered", "failed"
	RegDetail  string
	RegExpires time.Time
}

const trunkColumns = `name, peer, transport, username, password_enc, register, caller_id, created_at, reg_state, reg_detail, reg_expires, number_format`

func scanTrunk(row interface{ Scan(...any) error }) (Trunk, error) {
	var t Trunk
	var reg int
	var created, expires int64
	err := row.Scan(&t.Name, &t.Peer, &t.Transport, &t.Username, &t.PasswordSealed, &reg, &t.CallerID, &created, &t.RegState, &t.RegDetail, &expires, &t.NumberFormat)
	t.Register = reg != 0
	t.Created = time.UnixMilli(created)
	if expires > 0 {
		t.RegExpires = time.UnixMilli(expires)
	}
	return t, err
}

// AddTrunk creates t; ErrExists if the name is taken.
func (s *Store) AddTrunk(ctx context.Context, t Trunk) error {
	reg := 0
	if t.Register {
		reg = 1
	}
	if t.NumberFormat == "" {
		t.NumberFormat = "mixed"
	}
	return s.insertUnique(ctx, "trunk "+t.Name, `INSERT INTO trunks (name, peer, transport, username, password_enc, register, caller_id, created_at, number_format)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, t.Name, t.Peer, t.Transport, t.Username, t.PasswordSealed, reg, t.CallerID, time.Now().UnixMilli(), t.NumberFormat)
}

// DeleteTrunk removes a trunk; ErrNotFound if absent.
func (s *Store) DeleteTrunk(ctx context.Context, name string) error {
	return s.deleteOne(ctx, "trunk "+name, `DELETE FROM trunks WHERE name = ?`, name)
}

// Trunks lists trunks by name.
func (s *Store) Trunks(ctx context.Context) ([]Trunk, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+trunkColumns+` FROM trunks ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list trunks: %w", err)
	}
	defer rows.Close()
	var out []Trunk
	for rows.Next() {
		t, err := scanTrunk(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list trunks: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// SetTrunkState records a trunk's registration state.
func (s *Store) SetTrunkState(ctx context.Context, name, state, detail string, expires time.Time) error {
	var exp int64
	if !expires.IsZero() {
		exp = expires.UnixMilli()
	}
	_, err := s.db.ExecContext(ctx, `UPDATE trunks SET reg_state = ?, reg_detail = ?, reg_expires = ? WHERE name = ?`, state, detail, exp, name)
	if err != nil {
		return fmt.Errorf("store: trunk %s state: %w", name, err)
	}
	return nil
}

// DID maps an inbound number from the carrier to an extension.
type DID struct {
	Number    string    `json:"number"`
	Extension string    `json:"extension"`
	Created   time.Time `json:"created"`
}

// AddDID creates a DID; ErrExists if the number is taken.
func (s *Store) AddDID(ctx context.Context, d DID) error {
	return s.insertUnique(ctx, "did "+d.Number, `INSERT INTO dids (number, ext, created_at) VALUES (?, ?, ?)`, d.Number, d.Extension, time.Now().UnixMilli())
}

// DeleteDID removes a DID; ErrNotFound if absent.
func (s *Store) DeleteDID(ctx context.Context, number string) error {
	return s.deleteOne(ctx, "did "+number, `DELETE FROM dids WHERE number = ?`, number)
}

// LookupDID returns the DID for number.
func (s *Store) LookupDID(ctx context.Context, number string) (DID, error) {
	var d DID
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT number, ext, created_at FROM dids WHERE number = ?`, number).Scan(&d.Number, &d.Extension, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return DID{}, fmt.Errorf("did %s: %w", number, ErrNotFound)
	}
	if err != nil {
		return DID{}, fmt.Errorf("store: read did %s: %w", number, err)
	}
	d.Created = time.UnixMilli(created)
	return d, nil
}

// DIDs lists DIDs by number.
func (s *Store) DIDs(ctx context.Context) ([]DID, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT number, ext, created_at FROM dids ORDER BY number`)
	if err != nil {
		return nil, fmt.Errorf("store: list dids: %w", err)
	}
	defer rows.Close()
	var out []DID
	for rows.Next() {
		var d DID
		var created int64
		if err := rows.Scan(&d.Number, &d.Extension, &created); err != nil {
			return nil, fmt.Errorf("store: list dids: %w", err)
		}
		d.Created = time.UnixMilli(created)
		out = append(out, d)
	}
	return out, rows.Err()
}
