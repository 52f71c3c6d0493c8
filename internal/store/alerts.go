package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Alert is a record that needs a person: a suspension, a freeze. It is
// written before anyone is told, and kept until delivered.
type Alert struct {
	ID        int64     `json:"id"`
	At        time.Time `json:"time"`
	Kind      string    `json:"kind"`    // "suspended", "frozen", ...
	Subject   string    `json:"subject"` // "extension 201", "pbx", "trunk carrier"
	Detail    string    `json:"detail"`
	Delivered time.Time `json:"delivered,omitzero"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
}

// AddAlert records an alert and returns its ID.
func (s *Store) AddAlert(ctx context.Context, a Alert) (int64, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO alerts (at, kind, subject, detail) VALUES (?, ?, ?, ?)`,
		unixMilli(a.At), a.Kind, a.Subject, a.Detail)
	if err != nil {
		return 0, fmt.Errorf("store: add alert %s %s: %w", a.Kind, a.Subject, err)
	}
	return res.LastInsertId()
}

func (s *Store) queryAlerts(ctx context.Context, q string, args ...any) ([]Alert, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, kind, subject, detail, delivered_at, attempts, last_error FROM alerts `+q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list alerts: %w", err)
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		var a Alert
		var at, delivered sql.NullInt64
		if err := rows.Scan(&a.ID, &at, &a.Kind, &a.Subject, &a.Detail, &delivered, &a.Attempts, &a.LastError); err != nil {
			return nil, fmt.Errorf("store: list alerts: %w", err)
		}
		a.At, a.Delivered = fromMilli(at), fromMilli(delivered)
		out = append(out, a)
	}
	return out, rows.Err()
}

// Alerts lists the newest alerts first.
func (s *Store) Alerts(ctx context.Context, limit int) ([]Alert, error) {
	if limit <= 0 {
		limit = 100
	}
	return s.queryAlerts(ctx, `ORDER BY id DESC LIMIT ?`, limit)
}

// UndeliveredAlerts lists alerts not yet delivered, oldest first.
func (s *Store) UndeliveredAlerts(ctx context.Context, limit int) ([]Alert, error) {
	return s.queryAlerts(ctx, `WHERE delivered_at = 0 ORDER BY id LIMIT ?`, limit)
}

// AlertDelivered marks an alert delivered.
func (s *Store) AlertDelivered(ctx context.Context, id int64, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE alerts SET delivered_at = ?, attempts = attempts + 1, last_error = '' WHERE id = ?`, unixMilli(at), id)
	if err != nil {
		return fmt.Errorf("store: mark alert %d delivered: %w", id, err)
	}
	return nil
}

// AlertFailed records a failed delivery attempt.
func (s *Store) AlertFailed(ctx context.Context, id int64, reason string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE alerts SET attempts = attempts + 1, last_error = ? WHERE id = ?`, reason, id)
	if err != nil {
		return fmt.Errorf("store: mark alert %d failed: %w", id, err)
	}
	return nil
}
