package tollgate

import (
	"context"
	"testing"

	"github.com/sekisho/sekisho/internal/chain"
)

func TestDenyByDefault(t *testing.T) {
	tests := []struct {
		kind   chain.Kind
		action chain.Action
		status int
	}{
		{chain.KindExtension, chain.Continue, 0},
		{chain.KindInvalid, chain.Reject, 403},
		{chain.Kind("international"), chain.Reject, 403},
		{chain.Kind(""), chain.Reject, 403},
	}
	for _, tt := range tests {
		a := &chain.Attempt{Caller: "201", Dest: chain.Destination{Kind: tt.kind, Number: "202"}}
		v := Stage{}.Run(context.Background(), a)
		if v.Action != tt.action || v.Status != tt.status {
			t.Errorf("kind %q: %v %d, want %v %d", tt.kind, v.Action, v.Status, tt.action, tt.status)
		}
	}
}
