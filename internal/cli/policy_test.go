package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestPolicyCommands: the command names and flags of the toll policy are
// a contract for scripts; each works, and a mistake names the flag.
func TestPolicyCommands(t *testing.T) {
	dir := t.TempDir()
	ok := func(want string, args ...string) {
		t.Helper()
		code, out, errs := runCLI(t, append(args, "--data", dir)...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("sekisho %s: exit %d, out %q, err %q; want %q", strings.Join(args, " "), code, out, errs, want)
		}
	}
	bad := func(want string, args ...string) {
		t.Helper()
		code, _, errs := runCLI(t, append(args, "--data", dir)...)
		if code == 0 || !strings.Contains(errs, want) {
			t.Fatalf("sekisho %s: exit %d, err %q; want an error naming %q", strings.Join(args, " "), code, errs, want)
		}
	}
	ok("profile sales: class international, abroad SL,US, hours mon-fri 08:00-20:00",
		"profile", "add", "sales", "--class", "international", "--countries", "us,SL", "--hours", "mon-fri 08:00-20:00", "--intl-per-hour", "4")
	ok("intl-per-hour 4", "profile", "set", "sales", "--daily-spend", "900")
	ok("sales", "profile", "list")
	bad("--hours", "profile", "set", "sales", "--hours", "weekends")
	bad("--class", "profile", "add", "x", "--class", "all")
	bad("max-calls", "profile", "set", "sales", "--max-calls", "-1")
	runCLI(t, "ext", "add", "201", "--data", dir)
	ok("profile sales", "ext", "set", "201", "--profile", "sales")
	bad("--profile", "ext", "set", "201", "--profile", "nobody")
	bad("used by 1 extension", "profile", "del", "sales")
	ok("was not suspended", "ext", "unlock", "201")
	ok("pbx: max-calls 8", "limits", "set", "--max-calls", "8")
	bad("--trunk", "limits", "set", "--trunk", "nope", "--max-calls", "1")
	ok("not frozen", "limits", "show")
	ok("were not frozen", "limits", "unfreeze")
	ok("rate +232: 300 a minute", "rate", "set", "+232", "300")
	bad("prefix", "rate", "set", "232", "300")
	ok("+232", "rate", "list")
	ok("deleted", "rate", "del", "+232")
	ok("ID", "alert", "list")
	ok("[]", "alert", "list", "--json")
}

// TestChangesRecorded: every change made with the CLI is in the evidence
// log with who, the command, and the thing before and after; never a
// password hash.
func TestChangesRecorded(t *testing.T) {
	dir := t.TempDir()
	runCLI(t, "ext", "add", "201", "--data", dir)
	if code, _, errs := runCLI(t, "ext", "set", "201", "--class", "domestic", "--data", dir); code != 0 {
		t.Fatal(errs)
	}
	_, out, _ := runCLI(t, "audit", "list", "--json", "--data", dir)
	var recs []struct {
		Type, Source, Target, Detail string
	}
	if err := json.Unmarshal([]byte(out), &recs); err != nil || len(recs) != 2 {
		t.Fatalf("records %q: %v", out, err)
	}
	set := recs[0] // newest first
	if set.Type != "config-change" || set.Target != "ext set" || !strings.HasPrefix(set.Source, "cli:") ||
		!strings.Contains(set.Detail, `"before":{"Number":"201"`) || !strings.Contains(set.Detail, `"Class":"domestic"`) {
		t.Errorf("change record %+v", set)
	}
	if strings.Contains(out, "HA1") || strings.Contains(out, "ha1") {
		t.Error("a password hash reached the evidence log")
	}
	if code, out, _ := runCLI(t, "audit", "verify", "--data", dir); code != 0 || !strings.HasPrefix(out, "ok:") {
		t.Errorf("verify: %d %s", code, out)
	}
}
