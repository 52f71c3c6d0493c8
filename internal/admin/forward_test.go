package admin

import (
	"context"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/credential"
)

// TestSetForward: a forward is stored only when the gate lets the
// extension dial its number; the refusal names the field and gives the
// gate's reasons; deleting the extension deletes its forwards.
func TestSetForward(t *testing.T) {
	ctx := context.Background()
	st := open(t)
	AddExtension(ctx, st, "201", "", credential.OfferMD5)
	AddExtension(ctx, st, "202", "", credential.OfferMD5)
	now := time.Now()
	for _, c := range []struct {
		ext, when, to, field string
	}{
		{"201", "sometimes", "202", "when"},
		{"201", "always", " ", "to"},
		{"201", "always", "201", "to"},
		{"209", "always", "202", "from"},
		{"201", "always", "001023276123456", "to"}, // abroad: the default profile may not
		{"201", "busy", "0010*#", "to"},
		{"201", "always", "110", "to"}, // emergency: never a forward
	} {
		if _, err := SetForward(ctx, st, c.ext, c.when, c.to, now); field(err) != c.field {
			t.Errorf("forward %s %s to %q: %v, want an error on %q", c.ext, c.when, c.to, err, c.field)
		}
	}
	if fw, _ := st.Forwards(ctx, ""); len(fw) != 0 {
		t.Fatalf("refused forwards stored: %+v", fw)
	}
	if _, err := SetForward(ctx, st, "201", "always", "202", now); err != nil {
		t.Fatal(err)
	}
	c, err := SetForward(ctx, st, "201", "noanswer", "00312345678", now)
	if err != nil || c.E164 != "+81312345678" {
		t.Fatalf("domestic forward: %+v %v", c, err)
	}
	if fw, _ := st.Forwards(ctx, "201"); len(fw) != 2 {
		t.Fatalf("forwards: %+v", fw)
	}
	if err := st.DeleteExtension(ctx, "201"); err != nil {
		t.Fatal(err)
	}
	if fw, _ := st.Forwards(ctx, ""); len(fw) != 0 {
		t.Fatalf("forwards outlived their extension: %+v", fw)
	}
}
