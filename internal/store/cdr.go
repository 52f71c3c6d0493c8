package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// CDR states. A record is inserted as active when the attempt starts and
// finished when the call ends, so that a crash mid-call still leaves a row
// (marked interrupted on the next start) instead of losing the attempt.
const (
	CDRActive      = "active"
	CDRDone        = "done"
	CDRInterrupted = "interrupted"
)

// CDR is one call detail record: every attempt, answered or not.
type CDR struct {
	ID           int64
	CallID       string
	State        string
	Started      time.Time
	Answered     time.Time // zero if never answered
	Ended        time.Time // zero while active
	Duration     time.Duration
	Caller       string // authenticated extension, or "" if the attempt never authenticated
	Source       string // transport address the attempt came from
	Dialled      string // the dialled string as received, for evidence only
	Callee       string // canonical destination decided on (the extension number), "" if the dialled text was invalid
	ResultCode   int    // final SIP status given to the caller
	ResultReason string // internal reason (verdict trail), never sent to peers
	// HangupBy is who ended the attempt: "caller" (BYE or CANCEL),
	// "callee" (BYE, or a busy/decline answer), "pbx" (refused by the
	// chain, ring timeout, unreachable callee, shutdown).
	HangupBy string

	Direction   string // "internal", "outbound" (to a trunk) or "inbound" (from a trunk)
	Trunk       string // trunk used, "" for internal calls
	SentNumber  string // the number actually sent to the carrier (Request-URI user), "" if none
	PacketsAtoB uint64 // media packets relayed caller -> callee
	PacketsBtoA uint64 // media packets relayed callee -> caller
	// PacketsForeign counts media packets dropped because they came from a
	// source other than the one a side latched to: injection or hijack
	// attempts, evidence worth keeping with the call.
	PacketsForeign uint64

	// The canonical destination's kind, E.164 form and region, for the
	// limits that count calls abroad, and the call's estimated cost in
	// the rate table's unit.
	DestKind string
	DestE164 string
	Country  string
	Cost     int64
}

func nullMilli(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// CDRTx applies a batch of record writes in one transaction, so that a
// burst of calls costs one fsync rather than one per record.
type CDRTx struct {
	tx             *sql.Tx
	insert, update *sql.Stmt // the store's prepared statements, bound to tx
}

// cdrInsertSQL and cdrUpdateSQL are prepared once (Open): parsing them
// for every write was a third of the record writer's CPU at 600 calls/s.
const cdrInsertSQL = `INSERT INTO cdr
		(call_id, state, started_at, answered_at, ended_at, duration_ms, caller, source, dialled, callee, result_code, result_reason, hangup_by,
		 direction, trunk, sent_number, packets_a_to_b, packets_b_to_a, packets_foreign, dest_kind, dest_e164, country, cost)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

const cdrUpdateSQL = `UPDATE cdr SET state = ?, answered_at = ?, ended_at = ?, duration_ms = ?,
		caller = ?, callee = ?, result_code = ?, result_reason = ?, hangup_by = ?,
		direction = ?, trunk = ?, sent_number = ?, packets_a_to_b = ?, packets_b_to_a = ?, packets_foreign = ?,
		dest_kind = ?, dest_e164 = ?, country = ?, cost = ? WHERE id = ?`

// WriteCDRs runs fn inside one transaction and commits it.
func (s *Store) WriteCDRs(ctx context.Context, fn func(*CDRTx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin cdr batch: %w", err)
	}
	c := &CDRTx{tx: tx, insert: tx.StmtContext(ctx, s.cdrInsert), update: tx.StmtContext(ctx, s.cdrUpdate)}
	if err := fn(c); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit cdr batch: %w", err)
	}
	return nil
}

// Insert adds a record and returns its row ID.
func (c *CDRTx) Insert(ctx context.Context, r CDR) (int64, error) {
	res, err := c.insert.ExecContext(ctx,
		r.CallID, r.State, r.Started.UnixMilli(), nullMilli(r.Answered), nullMilli(r.Ended), r.Duration.Milliseconds(),
		r.Caller, r.Source, r.Dialled, r.Callee, r.ResultCode, r.ResultReason, r.HangupBy,
		direction(r.Direction), r.Trunk, r.SentNumber, int64(r.PacketsAtoB), int64(r.PacketsBtoA), int64(r.PacketsForeign),
		r.DestKind, r.DestE164, r.Country, r.Cost)
	if err != nil {
		return 0, fmt.Errorf("store: insert cdr %s: %w", r.CallID, err)
	}
	return res.LastInsertId()
}

// Update rewrites the mutable fields of record r.ID.
func (c *CDRTx) Update(ctx context.Context, r CDR) error {
	_, err := c.update.ExecContext(ctx,
		r.State, nullMilli(r.Answered), nullMilli(r.Ended), r.Duration.Milliseconds(),
		r.Caller, r.Callee, r.ResultCode, r.ResultReason, r.HangupBy,
		direction(r.Direction), r.Trunk, r.SentNumber, int64(r.PacketsAtoB), int64(r.PacketsBtoA), int64(r.PacketsForeign),
		r.DestKind, r.DestE164, r.Country, r.Cost, r.ID)
	if err != nil {
		return fmt.Errorf("store: update cdr %d: %w", r.ID, err)
	}
	return nil
}

// MarkInterrupted closes records left active by a previous process that
// stopped without finishing them (crash, kill -9, power loss).
func (s *Store) MarkInterrupted(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE cdr SET state = ?, ended_at = ?, result_reason =
		CASE WHEN result_reason = '' THEN 'pbx: process stopped during call' ELSE result_reason END
		WHERE state = ?`, CDRInterrupted, now.UnixMilli(), CDRActive)
	if err != nil {
		return 0, fmt.Errorf("store: mark interrupted cdrs: %w", err)
	}
	return res.RowsAffected()
}

// CDRFilter selects records for ListCDRs.
type CDRFilter struct {
	Since     time.Time // zero: no lower bound
	Limit     int       // <= 0: 100
	Direction string    // "": every direction
	// Search keeps records whose caller, callee, dialled or sent number,
	// or country, contains it ("": all).
	Search string
}

// ListCDRs returns records, newest first.
func (s *Store) ListCDRs(ctx context.Context, f CDRFilter) ([]CDR, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, call_id, state, started_at, answered_at, ended_at, duration_ms,
		caller, source, dialled, callee, result_code, result_reason, hangup_by,
		direction, trunk, sent_number, packets_a_to_b, packets_b_to_a, packets_foreign, dest_kind, dest_e164, country, cost
		FROM cdr WHERE started_at >= ? AND (? = '' OR direction = ?)
		AND (? = '' OR instr(caller, ?) > 0 OR instr(callee, ?) > 0 OR instr(dialled, ?) > 0 OR instr(sent_number, ?) > 0 OR instr(country, ?) > 0)
		ORDER BY id DESC LIMIT ?`,
		f.Since.UnixMilli(), f.Direction, f.Direction, f.Search, f.Search, f.Search, f.Search, f.Search, f.Search, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: list cdrs: %w", err)
	}
	defer rows.Close()
	var out []CDR
	for rows.Next() {
		var r CDR
		var started, answered, ended sql.NullInt64
		var dur, ab, ba, foreign int64
		if err := rows.Scan(&r.ID, &r.CallID, &r.State, &started, &answered, &ended, &dur,
			&r.Caller, &r.Source, &r.Dialled, &r.Callee, &r.ResultCode, &r.ResultReason, &r.HangupBy,
			&r.Direction, &r.Trunk, &r.SentNumber, &ab, &ba, &foreign, &r.DestKind, &r.DestE164, &r.Country, &r.Cost); err != nil {
			return nil, fmt.Errorf("store: list cdrs: %w", err)
		}
		r.Started, r.Answered, r.Ended = fromMilli(started), fromMilli(answered), fromMilli(ended)
		r.Duration = time.Duration(dur) * time.Millisecond
		r.PacketsAtoB, r.PacketsBtoA, r.PacketsForeign = uint64(ab), uint64(ba), uint64(foreign)
		out = append(out, r)
	}
	return out, rows.Err()
}

func direction(d string) string {
	if d == "" {
		return "internal"
	}
	return d
}
