package centre

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/wire"
)

// Push checks b, gives it the next seq, signs it with the bundle key and
// stores it; every centre serving the store sends it to the units of
// its group within PollEvery. A bundle the units would refuse (a bad
// rate) is refused here, before it is signed.
func Push(ctx context.Context, st *Store, k *Keys, b wire.Bundle) (Bundle, error) {
	b.Group = cleanText(b.Group, 64)
	b.Note = cleanText(b.Note, 256)
	for _, r := range b.Rates {
		if err := policy.ValidPrefix(r.Prefix); err != nil {
			return Bundle{}, fmt.Errorf("centre: rate %w", err)
		}
		if r.PerMinute < 0 {
			return Bundle{}, fmt.Errorf("centre: rate %s: per_minute %d is negative", r.Prefix, r.PerMinute)
		}
	}
	return st.AddBundle(ctx, k.Bundle, b)
}

// ReadRates reads a rate table file: a JSON array of
// {"prefix": "+232", "per_minute": 250, "note": "..."}.
func ReadRates(path string) ([]policy.Rate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--rates: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // a misspelt field would silently price a prefix at 0
	rates := []policy.Rate{}
	if err := dec.Decode(&rates); err != nil {
		return nil, fmt.Errorf("--rates %s: want a JSON array of {\"prefix\": \"+232\", \"per_minute\": 250}: %w", path, err)
	}
	seen := map[string]bool{}
	for _, r := range rates {
		if err := policy.ValidPrefix(r.Prefix); err != nil {
			return nil, fmt.Errorf("--rates %s: %w", path, err)
		}
		if r.PerMinute < 0 {
			return nil, fmt.Errorf("--rates %s: prefix %s: per_minute %d is negative", path, r.Prefix, r.PerMinute)
		}
		if seen[r.Prefix] {
			return nil, fmt.Errorf("--rates %s: prefix %s appears twice", path, r.Prefix)
		}
		seen[r.Prefix] = true
	}
	return rates, nil
}
