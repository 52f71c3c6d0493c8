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
