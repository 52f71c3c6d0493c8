package cli

import (
	"bytes"
	"encoding/json"
	"github.com/sekisho/sekisho/internal/admin"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, Env{Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func TestExtAddStoresNoPlaintext(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, "ext", "add", "201", "--data", dir, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r extJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Password) < 20 || r.Number != "201" {
		t.Fatalf("output %q: %v", out, err)
	}
	// The password must not be anywhere in the data directory.
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(r.Password)) {
			t.Errorf("plaintext password found in %s", p)
		}
		return nil
	})
	code, out, _ = runCLI(t, "ext", "list", "--data", dir)
	if code != 0 || !strings.Contains(out, "201") || strings.Contains(out, r.Password) {
		t.Fatalf("list: %d %q", code, out)
	}
	// A new password differs and the old one is not shown again.
	_, out2, _ := runCLI(t, "ext", "passwd", "201", "--data", dir, "--json")
	var r2 extJSON
	json.Unmarshal([]byte(out2), &r2)
	if r2.Password == "" || r2.Password == r.Password {
		t.Fatalf("passwd output %q", out2)
	}
}

func TestErrorsNameTheFix(t *testing.T) {
	dir := t.TempDir()
	weak := filepath.Join(dir, "pw")
	os.WriteFile(weak, []byte("201201\n"), 0o600)
	runCLI(t, "ext", "add", "201", "--data", dir)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ext", "add", "0123", "--data", dir}, 2, "must not start with 0"},
		{[]string{"ext", "add", "119", "--data", dir}, 2, "emergency"},
		{[]string{"ext", "add", "2#1", "--data", dir}, 2, "digits only"},
		{[]string{"ext", "add", "201", "--data", dir}, 1, "ext passwd 201"},
		{[]string{"ext", "add", "202", "--digest", "sha1", "--data", dir}, 2, "use md5, sha256 or both"},
		{[]string{"ext", "passwd", "201", "--password-file", weak, "--data", dir}, 1, "too weak"},
		{[]string{"ext", "del", "999", "--data", dir}, 1, "not found"},
		{[]string{"serve", "--sip-udp", "nope", "--data", dir}, 1, "sip-udp"},
		{[]string{"serve", "--bogus"}, 2, "bogus"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"cdr", "list", "--limit", "0", "--data", dir}, 2, "--limit"},
	}
	for _, tt := range tests {
		code, _, errs := runCLI(t, tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d stderr %q; want exit %d mentioning %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
}

func TestTrunkSecretSealed(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("Carrier-Pass-77\n"), 0o600)
	code, _, errs := runCLI(t, "trunk", "add", "carrier", "--peer", "192.0.2.1:5060", "--username", "acct", "--password-file", pw, "--caller-id", "+81312345678", "--data", dir)
	if code != 0 {
		t.Fatalf("trunk add: %d %s", code, errs)
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || p == pw {
			return err
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("Carrier-Pass-77")) {
			t.Errorf("trunk password in clear in %s", p)
		}
		return nil
	})
	_, out, _ := runCLI(t, "trunk", "list", "--json", "--data", dir)
	if !strings.Contains(out, `"has_password": true`) || strings.Contains(out, "Carrier-Pass") {
		t.Fatalf("trunk list: %s", out)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"trunk", "add", "x", "--peer", "nohost", "--data", dir}, "--peer"},
		{[]string{"trunk", "add", "x", "--peer", "h:5060", "--transport", "sctp", "--data", dir}, "--transport"},
		{[]string{"trunk", "add", "x", "--peer", "h:5060", "--username", "u", "--data", dir}, "go together"},
		{[]string{"trunk", "add", "x", "--peer", "h:5060", "--register", "--data", dir}, "--register"},
		{[]string{"trunk", "add", "x", "--peer", "h:5060", "--caller-id", "#010", "--data", dir}, "--caller-id"},
		{[]string{"trunk", "add", "Bad Name", "--peer", "h:5060", "--data", dir}, "trunk name"},
		{[]string{"did", "add", "0312345678", "--ext", "999", "--data", dir}, "ext add 999"},
		{[]string{"did", "add", "03-1234", "--ext", "201", "--data", dir}, "digits only"},
	}
	for _, tt := range tests {
		code, _, errs := runCLI(t, tt.args...)
		if code == 0 || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d %q, want failure mentioning %q", tt.args, code, errs, tt.want)
		}
	}
}

func TestCheckNumber(t *testing.T) {
	dir := t.TempDir()
	runCLI(t, "ext", "add", "201", "--data", dir)
	for _, tt := range []struct {
		dial, kind, decision string
		status               int
	}{
		{"0#01023276123456", "invalid", "deny", 484},
		{"%23001023276123456", "invalid", "deny", 484},
		{"001023276123456", "international", "deny", 403},
		{"0003301023276123456", "international", "deny", 403},
		{"018401023276123456", "international", "deny", 403},
		{"00990123456", "premium", "deny", 403},
		{"00312345678", "fixed", "allow", 0},
		{"119", "emergency", "allow", 0},
	} {
		code, out, errs := runCLI(t, "check-number", "--from", "201", "--json", "--data", dir, tt.dial)
		var r admin.Check
		if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
			t.Fatalf("%s: exit %d %s %s", tt.dial, code, out, errs)
		}
		if r.Kind != tt.kind || r.Decision != tt.decision || r.SIPStatus != tt.status || len(r.Reasons) == 0 {
			t.Errorf("%s: %+v, want %s %s %d", tt.dial, r, tt.kind, tt.decision, tt.status)
		}
	}
	if code, _, errs := runCLI(t, "check-number", "--from", "999", "--data", dir, "201"); code == 0 || !strings.Contains(errs, "999") {
		t.Errorf("unknown --from: %d %s", code, errs)
	}
}
