package pbx

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/config"
)

// TestDialled: the text handed to the dialplan keeps every character that
// could change a number's meaning, so that the dialplan can refuse it.
func TestDialled(t *testing.T) {
	for _, c := range []struct{ uri, want string }{
		{"sip:00312345678@pbx", "00312345678"},
		{"sips:201@pbx", "201"},
		{"sip:0%23010232@pbx", "0%23010232"},
		{"sip:0312345678;phone-context=+81@pbx;user=phone", "0312345678;phone-context=+81"},
		{"tel:+23276123456", "+23276123456"},
		{"tel:0312345678;phone-context=+81", "0312345678;phone-context=+81"},
		{"tel:+1-876-555-0123", "+1-876-555-0123"},
		{"urn:service:sos", ""},
	} {
		var u sip.Uri
		if err := sip.ParseUri(c.uri, &u); err != nil {
			t.Fatalf("%s: %v", c.uri, err)
		}
		if got := dialled(u); got != c.want {
			t.Errorf("dialled(%s) = %q, want %q", c.uri, got, c.want)
		}
	}
}

// TestUnknownRegionRefused: the server does not start in a region whose
// emergency numbers and prefixes it does not know.
func TestUnknownRegionRefused(t *testing.T) {
	cfg := config.Default()
	cfg.Data, cfg.Region = t.TempDir(), "FR"
	err := Run(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "region") {
		t.Fatalf("Run in region FR: %v", err)
	}
}
