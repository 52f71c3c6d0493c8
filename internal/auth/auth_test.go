package auth

import (
	"context"
	"io"
	"log/slog"
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
	acc := storetest.Accounts{Exts: map[string]store.Extension{"201": ext("201", "sekisho"), "209": ext("209", "old-realm")}}
	a := New(v, acc, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
	}{
		{"no credentials", "201", "", chain.Challenge, ""},
		{"good", "201", answer("201"), chain.Continue, "201"},
		// Authenticated as 201 but claiming to be 202 in From.
		{"caller id spoof", "202", answer("201"), chain.Reject, ""},
		{"hash for another realm never verifies", "209", answer("209"), chain.Challenge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := &chain.Attempt{Method: "INVITE", FromUser: tt.from, AuthHeader: tt.header}
			got := Stage{A: a}.Run(context.Background(), at)
			if got.Action != tt.action || at.Caller != tt.caller {
				t.Fatalf("%v caller %q (%s), want %v caller %q", got.Action, at.Caller, got.Reason, tt.action, tt.caller)
			}
			if got.Action == chain.Challenge && (len(got.Challenges) == 0 || !strings.Contains(got.Challenges[0], `qop="auth"`)) {
				t.Fatalf("challenge without qop=auth: %v", got.Challenges)
			}
		})
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
