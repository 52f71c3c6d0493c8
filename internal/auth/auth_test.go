package auth

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	icdigest "github.com/icholy/digest"

	"github.com/sekisho/sekisho/internal/chain"
	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/digest"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/store/storetest"
)

func TestStage(t *testing.T) {
	v, err := digest.New("sekisho", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pw := "a-password-of-some-length"
	ext := func(n, realm string) store.Extension {
		return store.Extension{Number: n, Realm: realm, Digest: "md5",
			HA1MD5: credential.HA1(credential.MD5, n, realm, pw), HA1SHA256: credential.HA1(credential.SHA256, n, realm, pw)}
	}
	remote := ext("210", "sekisho")
	remote.Networks = "203.0.113.0/24"
	acc := storetest.Accounts{Exts: map[string]store.Extension{"201": ext("201", "sekisho"), "209": ext("209", "old-realm"), "210": remote}, Broken: "211"}
	var failures []string
	a := New(v, acc, Config{
		PhoneNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, TLSOutside: true,
		OnFailure: func(_ context.Context, src netip.Addr, user, reason string) {
			failures = append(failures, src.String()+" "+user+" "+reason)
		},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	answer := func(user string) string {
		ch, _ := icdigest.ParseChallenge(v.DefaultChallenges(false)[0])
		cr, _ := icdigest.Digest(ch, icdigest.Options{Method: "INVITE", URI: "sip:202@pbx", Username: user, Password: pw, Count: 1})
		return cr.String()
	}
	tests := []struct {
		name   string
		from   string
		header string
		action chain.Action
		caller string
		source string // "" is 127.0.0.3
		secure bool
	}{
		{"no credentials", "201", "", chain.Challenge, "", "", false},
		{"good", "201", answer("201"), chain.Continue, "201", "", false},
		// Right password, wrong place: answered like a wrong password.
		{"outside the phone networks", "201", answer("201"), chain.Challenge, "", "198.51.100.7", false},
		{"outside its own networks", "210", answer("210"), chain.Challenge, "", "127.0.0.3", false},
		{"own network without TLS", "210", answer("210"), chain.Challenge, "", "203.0.113.9", false},
		{"own network over TLS", "210", answer("210"), chain.Continue, "210", "203.0.113.9", true},
		// Authenticated as 201 but claiming to be 202 in From.
		{"caller id spoof", "202", answer("201"), chain.Reject, "", "", false},
		{"hash for another realm never verifies", "209", answer("209"), chain.Challenge, "", "", false},
		// The store cannot answer (overloaded): 503, and not a failed
		// guess, so a flood cannot get the office's own phones banned.
		{"store unavailable", "211", answer("211"), chain.Reject, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.source
			if src == "" {
				src = "127.0.0.3"
			}
			at := &chain.Attempt{Method: "INVITE", FromUser: tt.from, AuthHeader: tt.header, Source: src + ":5060", Secure: tt.secure}
			got := Stage{A: a}.Run(context.Background(), at)
			if got.Action != tt.action || at.Caller != tt.caller {
				t.Fatalf("%v caller %q (%s), want %v caller %q", got.Action, at.Caller, got.Reason, tt.action, tt.caller)
			}
			if tt.name == "store unavailable" && got.Status != 503 {
				t.Fatalf("store unavailable: status %d, want 503", got.Status)
			}
			if got.Action == chain.Challenge && (len(got.Challenges) == 0 || !strings.Contains(got.Challenges[0], `qop="auth"`)) {
				t.Fatalf("challenge without qop=auth: %v", got.Challenges)
			}
		})
	}
	// Every failed check with credentials reached the ban counters; the
	// ones without credentials did not.
	if len(failures) != 4 {
		t.Errorf("failures reported: %q, want 4 (three forbidden sources, one other realm)", failures)
	}
}

// TestFeatureOnBehalf: an attempt the PBX creates for a feature takes the
// responsible extension as caller; with none (a carrier's transfer) it is
// refused, never run as anonymous.
func TestFeatureOnBehalf(t *testing.T) {
	a := &chain.Attempt{Feature: "transfer", OnBehalfOf: "201"}
	if v := (Stage{}).Run(context.Background(), a); v.Action != chain.Continue || a.Caller != "201" {
		t.Fatalf("on behalf of 201: %+v caller %q", v, a.Caller)
	}
	a = &chain.Attempt{Feature: "transfer"}
	if v := (Stage{}).Run(context.Background(), a); v.Action != chain.Reject || v.Status != 403 || a.Caller != "" {
		t.Fatalf("no one responsible: %+v caller %q", v, a.Caller)
	}
}
