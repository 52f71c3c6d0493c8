package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenWALAndPrivate(t *testing.T) {
	s := open(t)
	var mode string
	s.db.QueryRow("PRAGMA journal_mode").Scan(&mode)
	if mode != "wal" {
		t.Fatalf("journal mode %q", mode)
	}
	fi, err := os.Stat(filepath.Join(s.Dir(), DBFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("db mode %v, want 0600", fi.Mode().Perm())
	}
	// Re-opening an existing store must not re-run migrations.
	s2, err := Open(context.Background(), s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
}

func TestExtensions(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	e := Extension{Number: "201", Realm: "r", HA1MD5: "a", HA1SHA256: "b", Digest: "md5"}
	if err := s.AddExtension(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := s.AddExtension(ctx, e); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	e.HA1MD5 = "c"
	if err := s.UpdateExtension(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, err := s.Extension(ctx, "201")
	if err != nil || got.HA1MD5 != "c" {
		t.Fatalf("read back %+v %v", got, err)
	}
	if err := s.DeleteExtension(ctx, "201"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Extension(ctx, "201"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := s.DeleteExtension(ctx, "201"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

func TestCDRInterrupted(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	err := s.WriteCDRs(ctx, func(tx *CDRTx) error {
		_, err := tx.Insert(ctx, CDR{CallID: "x", State: CDRActive, Started: time.Now(), Caller: "201", Dialled: "202"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.MarkInterrupted(ctx, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("mark: %d %v", n, err)
	}
	rs, _ := s.ListCDRs(ctx, CDRFilter{})
	if len(rs) != 1 || rs[0].State != CDRInterrupted || rs[0].Ended.IsZero() {
		t.Fatalf("record: %+v", rs)
	}
}
