// Package storetest is an in-memory stand-in for the lookups the call
// chain's stages make in the store, for unit tests only.
package storetest

import (
	"context"
	"errors"

	"github.com/sekisho/sekisho/internal/store"
)

// ErrBroken is what a lookup of Accounts.Broken returns: a store failure,
// not a missing row, so tests can check that stages fail closed.
var ErrBroken = errors.New("storetest: store failure")

// Accounts answers Extension and LookupDID from maps. Safe for concurrent
// reads; not for writes while in use.
type Accounts struct {
	Exts   map[string]store.Extension
	DIDs   map[string]store.DID
	Groups map[string]store.Group
	Broken string // a number whose lookups fail with ErrBroken
}

// Extension implements the stages' Accounts interfaces.
func (a Accounts) Extension(_ context.Context, n string) (store.Extension, error) {
	if n == a.Broken && n != "" {
		return store.Extension{}, ErrBroken
	}
	if e, ok := a.Exts[n]; ok {
		return e, nil
	}
	return store.Extension{}, store.ErrNotFound
}

// LookupDID implements route.Accounts.
func (a Accounts) LookupDID(_ context.Context, n string) (store.DID, error) {
	if d, ok := a.DIDs[n]; ok {
		return d, nil
	}
	return store.DID{}, store.ErrNotFound
}

// Group implements route.Accounts.
func (a Accounts) Group(_ context.Context, n string) (store.Group, error) {
	if g, ok := a.Groups[n]; ok {
		return g, nil
	}
	return store.Group{}, store.ErrNotFound
}
