package admin

import (
	"context"
	"sort"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// CountryToday is a count of today's outbound calls to one country.
type CountryToday struct {
	Country string `json:"country"`
	Calls   int    `json:"calls"`
	Spend   int64  `json:"spend"`
}

// Today counts the outbound calls since local midnight that reached the
// carrier, by country, costliest first, and their total estimated spend.
// Attempts the gate refused are not calls (they are in the evidence log).
func Today(ctx context.Context, st *store.Store, now time.Time) ([]CountryToday, int64, error) {
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, now.Location())
	cdrs, err := st.ListCDRs(ctx, store.CDRFilter{Since: midnight, Direction: "outbound", Limit: 1 << 20})
	if err != nil {
		return nil, 0, err
	}
	by := map[string]*CountryToday{}
	var total int64
	for _, c := range cdrs {
		if c.SentNumber == "" {
			continue
		}
		k := c.Country
		if k == "" {
			k = "-"
		}
		if by[k] == nil {
			by[k] = &CountryToday{Country: k}
		}
		by[k].Calls++
		by[k].Spend += c.Cost
		total += c.Cost
	}
	out := make([]CountryToday, 0, len(by))
	for _, v := range by {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Spend != out[j].Spend {
			return out[i].Spend > out[j].Spend
		}
		return out[i].Country < out[j].Country
	})
	return out, total, nil
}
