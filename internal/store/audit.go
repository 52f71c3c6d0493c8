package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AuditRecord is one row of the evidence log: a single event, or an
// aggregate of Count events of one type, source and target between First
// and Last. Hash chains it to the row before.
type AuditRecord struct {
	Seq    int64     `json:"seq"`
	At     time.Time `json:"time"`
	Type   string    `json:"type"`
	Source string    `json:"source,omitempty"`
	Target string    `json:"target,omitempty"`
	Count  int64     `json:"count"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
	Detail string    `json:"detail,omitempty"`
	Hash   []byte    `json:"hash"`
}

// ChainFunc computes a record's hash from the previous record's hash.
type ChainFunc func(prev []byte, r AuditRecord) []byte

// AppendAudit appends records to the evidence log in one transaction,
// numbering and chaining them after the last row. The write lock is taken
// first (BEGIN IMMEDIATE), so the server and the CLI appending at the same
// time still form one chain. The records are returned as stored.
func (s *Store) AppendAudit(ctx context.Context, recs []AuditRecord, chain ChainFunc) ([]AuditRecord, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: audit append: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, fmt.Errorf("store: audit append: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	var seq int64
	var prev []byte
	err = conn.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: audit append: %w", err)
	}
	out := make([]AuditRecord, len(recs))
	for i, r := range recs {
		seq++
		r.Seq = seq
		r.Hash = chain(prev, r)
		if _, err := conn.ExecContext(ctx, `INSERT INTO audit (seq, at, type, source, target, count, first_at, last_at, detail, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.Seq, unixMilli(r.At), r.Type, r.Source, r.Target, r.Count,
			unixMilli(r.First), unixMilli(r.Last), r.Detail, r.Hash); err != nil {
			return nil, fmt.Errorf("store: audit append: %w", err)
		}
		prev, out[i] = r.Hash, r
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return nil, fmt.Errorf("store: audit commit: %w", err)
	}
	ok = true
	return out, nil
}

// AuditFilter selects records for AuditRecords.
type AuditFilter struct {
	Type, Source string
	Since        time.Time
	AfterSeq     int64 // records with seq > AfterSeq
	Limit        int   // <= 0: no limit
	Newest       bool  // newest first (else oldest first)
}

// AuditRecords reads records matching f.
func (s *Store) AuditRecords(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	q := `SELECT seq, at, type, source, target, count, first_at, last_at, detail, hash FROM audit
		WHERE seq > ? AND at >= ? AND (? = '' OR type = ?) AND (? = '' OR source = ?)`
	if f.Newest {
		q += ` ORDER BY seq DESC`
	} else {
		q += ` ORDER BY seq`
	}
	limit := f.Limit
	if limit <= 0 {
		limit = -1
	}
	q += ` LIMIT ?`
	rows, err := s.db.QueryContext(ctx, q, f.AfterSeq, unixMilli(f.Since), f.Type, f.Type, f.Source, f.Source, limit)
	if err != nil {
		return nil, fmt.Errorf("store: read audit: %w", err)
	}
	defer rows.Close()
	var out []AuditRecord
	for rows.Next() {
		var r AuditRecord
		var at, first, last sql.NullInt64
		if err := rows.Scan(&r.Seq, &at, &r.Type, &r.Source, &r.Target, &r.Count, &first, &last, &r.Detail, &r.Hash); err != nil {
			return nil, fmt.Errorf("store: read audit: %w", err)
		}
		r.At, r.First, r.Last = fromMilli(at), fromMilli(first), fromMilli(last)
		out = append(out, r)
	}
	return out, rows.Err()
}

// AuditCheckpoint is a signed statement of the log's size and last hash.
type AuditCheckpoint struct {
	Size int64     `json:"size"`
	Hash []byte    `json:"hash"`
	At   time.Time `json:"time"`
	Sig  []byte    `json:"sig"`
}

// PutAuditCheckpoint stores a checkpoint.
func (s *Store) PutAuditCheckpoint(ctx context.Context, c AuditCheckpoint) error {
	_, err := s.db.ExecContext(ctx, `INSERT OR REPLACE INTO audit_checkpoints (size, hash, at, sig) VALUES (?, ?, ?, ?)`,
		c.Size, c.Hash, unixMilli(c.At), c.Sig)
	if err != nil {
		return fmt.Errorf("store: audit checkpoint: %w", err)
	}
	return nil
}

// AuditCheckpoints lists the checkpoints by size.
func (s *Store) AuditCheckpoints(ctx context.Context) ([]AuditCheckpoint, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT size, hash, at, sig FROM audit_checkpoints ORDER BY size`)
	if err != nil {
		return nil, fmt.Errorf("store: read audit checkpoints: %w", err)
	}
	defer rows.Close()
	var out []AuditCheckpoint
	for rows.Next() {
		var c AuditCheckpoint
		var at sql.NullInt64
		if err := rows.Scan(&c.Size, &c.Hash, &at, &c.Sig); err != nil {
			return nil, fmt.Errorf("store: read audit checkpoints: %w", err)
		}
		c.At = fromMilli(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// AuditAnchor returns where the log starts after pruning: the seq and
// hash of the last record removed (0 and nil if none ever was).
func (s *Store) AuditAnchor(ctx context.Context) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := s.db.QueryRowContext(ctx, `SELECT seq, hash FROM audit_anchor WHERE id = 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("store: read audit anchor: %w", err)
	}
	return seq, hash, nil
}

// PruneAudit removes records up to and including seq (and the checkpoints
// before it), and moves the anchor there, in one transaction.
func (s *Store) PruneAudit(ctx context.Context, upto int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: prune audit: %w", err)
	}
	defer tx.Rollback()
	var hash []byte
	if err := tx.QueryRowContext(ctx, `SELECT hash FROM audit WHERE seq = ?`, upto).Scan(&hash); err != nil {
		return fmt.Errorf("store: prune audit: record %d: %w", upto, err)
	}
	for _, q := range []string{`DELETE FROM audit WHERE seq <= ?`, `DELETE FROM audit_checkpoints WHERE size < ?`} {
		if _, err := tx.ExecContext(ctx, q, upto); err != nil {
			return fmt.Errorf("store: prune audit: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_anchor (id, seq, hash) VALUES (1, ?, ?)
		ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`, upto, hash); err != nil {
		return fmt.Errorf("store: prune audit: %w", err)
	}
	return tx.Commit()
}

// AuditSummary is the count of one type of event on one day.
type AuditSummary struct {
	Day   string // YYYY-MM-DD, UTC
	Type  string
	Count int64
	Rows  int64
}

// SummarizeAudit counts the events in records up to seq, per UTC day and type.
func (s *Store) SummarizeAudit(ctx context.Context, upto int64) ([]AuditSummary, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT strftime('%Y-%m-%d', first_at / 1000, 'unixepoch') AS day, type, sum(count), count(*)
		FROM audit WHERE seq <= ? GROUP BY day, type ORDER BY day, type`, upto)
	if err != nil {
		return nil, fmt.Errorf("store: summarize audit: %w", err)
	}
	defer rows.Close()
	var out []AuditSummary
	for rows.Next() {
		var a AuditSummary
		if err := rows.Scan(&a.Day, &a.Type, &a.Count, &a.Rows); err != nil {
			return nil, fmt.Errorf("store: summarize audit: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AuditPruneCandidate returns the last seq of records whose time is
// before cutoff, after keeping at least keep newest records; 0 if none.
func (s *Store) AuditPruneCandidate(ctx context.Context, cutoff time.Time, keepNewest int64) (int64, error) {
	var seq sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT max(seq) FROM audit WHERE at < ? AND seq <= (SELECT max(seq) FROM audit) - ?`,
		unixMilli(cutoff), keepNewest).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("store: audit prune candidate: %w", err)
	}
	return seq.Int64, nil
}

// AuditSize returns the number of records and their approximate bytes.
func (s *Store) AuditSize(ctx context.Context) (int64, int64, error) {
	var n, bytes sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT count(*), sum(length(type) + length(source) + length(target) + length(detail) + 80) FROM audit`).Scan(&n, &bytes)
	if err != nil {
		return 0, 0, fmt.Errorf("store: audit size: %w", err)
	}
	return n.Int64, bytes.Int64, nil
}
