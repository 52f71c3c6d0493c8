package cli

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/centre"
)

func TestCentreOperatorAddListDel(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, "centre", "operator", "add", "alice", "--role", "admin", "--data", dir)
	if code != 0 {
		t.Fatalf("operator add: exit %d: %s", code, errs)
	}
	// No dashboard has run yet: the link names the default address.
	u, err := url.Parse(strings.TrimSpace(out))
	if err != nil || u.String() != strings.TrimSpace(out) || u.Scheme != "http" || u.Host != centre.DefaultConsoleListen || u.Path != "/setup" || len(u.Query().Get("token")) < 40 {
		t.Fatalf("operator add printed %q, want http://%s/setup?token=...", out, centre.DefaultConsoleListen)
	}
	if !strings.Contains(errs, "once") || !strings.Contains(errs, "--console-listen") {
		t.Fatalf("operator add's note: %q", errs)
	}
	// The link names where `centre serve` last served the dashboard.
	st, err := centre.OpenStore(t.Context(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetSetting(t.Context(), centre.SettingConsoleListen, "10.0.0.5:7444"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	code, out, errs = runCLI(t, "centre", "operator", "add", "vera", "--role", "viewer", "--json", "--data", dir)
	var added struct {
		Name, Role string
		SetupURL   string `json:"setup_url"`
		Expires    time.Time
	}
	if code != 0 || json.Unmarshal([]byte(out), &added) != nil || added.Name != "vera" || added.Role != "viewer" ||
		!strings.HasPrefix(added.SetupURL, "http://10.0.0.5:7444/setup?token=") || time.Until(added.Expires) > time.Hour {
		t.Fatalf("operator add --json: exit %d %s %s", code, out, errs)
	}
	code, out, _ = runCLI(t, "centre", "operator", "list", "--json", "--data", dir)
	var ops []centre.OperatorInfo
	if code != 0 || json.Unmarshal([]byte(out), &ops) != nil || len(ops) != 2 || ops[0].Name != "alice" || ops[0].Role != "admin" || ops[0].SetUp {
		t.Fatalf("operator list --json: exit %d %s", code, out)
	}
	if strings.Contains(out, "token") || strings.Contains(out, "hash") {
		t.Fatalf("operator list shows secrets: %s", out)
	}
	code, out, _ = runCLI(t, "centre", "operator", "list", "--data", dir)
	if code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "waiting for setup") {
		t.Fatalf("operator list: exit %d %s", code, out)
	}
	if code, out, _ = runCLI(t, "centre", "operator", "del", "vera", "--data", dir); code != 0 || !strings.Contains(out, "vera deleted") {
		t.Fatalf("operator del: exit %d %s", code, out)
	}
	// Each of those is in the operators' log.
	st, err = centre.OpenStore(t.Context(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log, err := st.Log(t.Context(), 10)
	if err != nil || len(log) != 3 || log[0].Action != "operator-delete" || log[2].Action != "operator-add" || !strings.HasPrefix(log[0].Operator, "cli:") {
		t.Fatalf("operators' log: %+v, %v", log, err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"add", "alice", "--role", "admin"}, 1, "operator del alice"},
		{[]string{"add", "Alice Smith", "--role", "admin"}, 2, "NAME"},
		{[]string{"add", "bob"}, 2, "--role"},
		{[]string{"add", "bob", "--role", "root"}, 2, "--role"},
		{[]string{"add", "--role", "admin"}, 2, "one operator NAME"},
		{[]string{"del", "nobody"}, 1, "no operator nobody"},
		{[]string{"list", "extra"}, 2, "no arguments"},
		{[]string{"frob"}, 2, "add, list or del"},
	} {
		code, _, errs := runCLI(t, append(append([]string{"centre", "operator"}, tt.args...), "--data", dir)...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("centre operator %v: exit %d %q; want exit %d mentioning %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
}

func TestCentreServeDashboardFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--console-listen", "0.0.0.0:7444"}, "every address"},
		{[]string{"--console-listen", "10.0.0.5:7444"}, "--admin-networks"},
		{[]string{"--console-listen", "10.0.0.5:7444", "--admin-networks", "10.0.0.0/24", "--listen", "10.0.0.5:7443"}, "units' listener"},
		{[]string{"--console-listen", "10.0.0.5:7444", "--admin-networks", "10.0.0.0/24", "--listen", "0.0.0.0:7443", "--name", "c.example"}, "units' listener"},
		{[]string{"--console-listen", "nope"}, "--console-listen"},
		{[]string{"--admin-networks", "10.0.0.0/33"}, "--admin-networks"},
	} {
		code, _, errs := runCLI(t, append([]string{"centre", "serve", "--data", dir}, tt.args...)...)
		if code != 2 || !strings.Contains(errs, tt.want) {
			t.Errorf("centre serve %v: exit %d %q; want exit 2 mentioning %q", tt.args, code, errs, tt.want)
		}
	}
}
