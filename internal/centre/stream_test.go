package centre

import (
	"testing"
	"time"
)

func TestBucketAllowsABurstThenARate(t *testing.T) {
	var b bucket
	now := time.Now()
	for i := range msgBurst {
		if !b.take(now) {
			t.Fatalf("message %d of the burst refused", i)
		}
	}
	if b.take(now) {
		t.Fatal("a message past the burst was let through")
	}
	now = now.Add(time.Second)
	n := 0
	for b.take(now) {
		n++
	}
	if n != msgRate {
		t.Fatalf("%d messages a second later, want %d", n, msgRate)
	}
}
