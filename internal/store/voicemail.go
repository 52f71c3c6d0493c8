package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Mailbox is an extension's voicemail box. PINHash is an argon2id hash
// (internal/voicemail); the PIN itself is never stored.
type Mailbox struct {
	Ext         string    `json:"ext"`
	PINHash     string    `json:"-"`
	Email       string    `json:"email,omitempty"`
	Fails       int       `json:"failed_pins"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
	Created     time.Time `json:"created"`
}

// Voicemail is one message left in a mailbox.
type Voicemail struct {
	ID       int64         `json:"id"`
	Ext      string        `json:"ext"`
	Caller   string        `json:"caller"`
	Received time.Time     `json:"received"`
	Duration time.Duration `json:"duration_ms"`
	File     string        `json:"file"`
	Heard    bool          `json:"heard"`
}

// SetMailbox creates ext's mailbox or replaces its PIN and email; a new
// PIN clears the failed tries and the lock.
func (s *Store) SetMailbox(ctx context.Context, m Mailbox) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO voicemail_boxes (ext, pin_hash, email, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (ext) DO UPDATE SET pin_hash = excluded.pin_hash, email = excluded.email, fails = 0, locked_until = 0`,
		m.Ext, m.PINHash, m.Email, unixMilli(m.Created))
	if err != nil {
		return fmt.Errorf("store: set mailbox of %s: %w", m.Ext, err)
	}
	return nil
}

// DeleteMailbox removes ext's mailbox and its messages' rows.
func (s *Store) DeleteMailbox(ctx context.Context, ext string) error {
	return s.deleteOne(ctx, "mailbox "+ext, `DELETE FROM voicemail_boxes WHERE ext = ?`, ext)
}

// GetMailbox returns ext's mailbox; ok is false when it has none.
func (s *Store) GetMailbox(ctx context.Context, ext string) (m Mailbox, ok bool, err error) {
	m, err = scanMailbox(s.db.QueryRowContext(ctx, `SELECT `+mailboxColumns+` FROM voicemail_boxes WHERE ext = ?`, ext))
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, false, nil
	}
	if err != nil {
		return Mailbox{}, false, fmt.Errorf("store: read mailbox of %s: %w", ext, err)
	}
	return m, true, nil
}

const mailboxColumns = `ext, pin_hash, email, fails, locked_until, created_at`

func scanMailbox(row interface{ Scan(...any) error }) (Mailbox, error) {
	var m Mailbox
	var created, locked int64
	if err := row.Scan(&m.Ext, &m.PINHash, &m.Email, &m.Fails, &locked, &created); err != nil {
		return Mailbox{}, err
	}
	m.Created = time.UnixMilli(created)
	if locked > 0 {
		m.LockedUntil = time.UnixMilli(locked)
	}
	return m, nil
}

// Mailboxes lists every mailbox, by extension.
func (s *Store) Mailboxes(ctx context.Context) ([]Mailbox, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+mailboxColumns+` FROM voicemail_boxes ORDER BY ext`)
	if err != nil {
		return nil, fmt.Errorf("store: list mailboxes: %w", err)
	}
	defer rows.Close()
	var out []Mailbox
	for rows.Next() {
		m, err := scanMailbox(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list mailboxes: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// MailboxPIN records a PIN try on ext's mailbox: a good one clears the
// failures, a wrong one counts and locks the box until lockedUntil.
func (s *Store) MailboxPIN(ctx context.Context, ext string, good bool, lockedUntil time.Time) error {
	q, args := `UPDATE voicemail_boxes SET fails = 0, locked_until = 0 WHERE ext = ?`, []any{ext}
	if !good {
		q, args = `UPDATE voicemail_boxes SET fails = fails + 1, locked_until = ? WHERE ext = ?`, []any{unixMilli(lockedUntil), ext}
	}
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("store: record a PIN try on mailbox %s: %w", ext, err)
	}
	return nil
}

// AddVoicemail stores a message and returns its id.
func (s *Store) AddVoicemail(ctx context.Context, v Voicemail) (int64, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO voicemail_messages (ext, caller, received_at, duration_ms, file) VALUES (?, ?, ?, ?, ?)`,
		v.Ext, v.Caller, unixMilli(v.Received), v.Duration.Milliseconds(), v.File)
	if err != nil {
		return 0, fmt.Errorf("store: add voicemail for %s: %w", v.Ext, err)
	}
	return res.LastInsertId()
}

// Voicemails lists ext's messages ("": every mailbox's), oldest first.
func (s *Store) Voicemails(ctx context.Context, ext string) ([]Voicemail, error) {
	q, args := `SELECT id, ext, caller, received_at, duration_ms, file, heard FROM voicemail_messages`, []any{}
	if ext != "" {
		q, args = q+` WHERE ext = ?`, append(args, ext)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY ext, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list voicemail: %w", err)
	}
	defer rows.Close()
	var out []Voicemail
	for rows.Next() {
		var v Voicemail
		var at, ms int64
		if err := rows.Scan(&v.ID, &v.Ext, &v.Caller, &at, &ms, &v.File, &v.Heard); err != nil {
			return nil, fmt.Errorf("store: list voicemail: %w", err)
		}
		v.Received, v.Duration = time.UnixMilli(at), time.Duration(ms)*time.Millisecond
		out = append(out, v)
	}
	return out, rows.Err()
}

// MarkHeard marks a message heard.
func (s *Store) MarkHeard(ctx context.Context, id int64) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE voicemail_messages SET heard = 1 WHERE id = ?`, id); err != nil {
		return fmt.Errorf("store: mark voicemail %d heard: %w", id, err)
	}
	return nil
}

// DeleteVoicemail removes message id of ext and returns its file.
func (s *Store) DeleteVoicemail(ctx context.Context, ext string, id int64) (string, error) {
	var file string
	err := s.db.QueryRowContext(ctx, `DELETE FROM voicemail_messages WHERE ext = ? AND id = ? RETURNING file`, ext, id).Scan(&file)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("store: mailbox %s has no message %d", ext, id)
	}
	if err != nil {
		return "", fmt.Errorf("store: delete voicemail %d: %w", id, err)
	}
	return file, nil
}
