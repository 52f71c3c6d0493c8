// Package admin holds the changes people make to the PBX's settings, the
// same for the command line and the console: both validate and apply a
// change through here, so a number refused by `sekisho ext add` is refused
// by the console's form with the same words, and a check made in one
// cannot be skipped in the other.
//
// Errors about what a person typed are *FieldError, naming the field; the
// CLI turns the field into its flag, the console into the form field and
// the API's 400 body.
package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sekisho/sekisho/internal/config"
	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/dialplan"
	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/tollgate"
)

// FieldError is a refused input: which field, and what to do instead.
type FieldError struct {
	Field string
	Msg   string
	Err   error // the store's sentinel, when there is one (ErrExists, ErrNotFound)
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap lets errors.Is see the store's sentinel.
func (e *FieldError) Unwrap() error { return e.Err }

func refuse(field, format string, a ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// AddExtension creates extension number with a generated password and
// returns it with the password, which is never stored (only its digest
// hashes are) and so can be shown only now.
func AddExtension(ctx context.Context, st *store.Store, number, name string, offer credential.Offer) (store.Extension, string, error) {
	region, err := st.Setting(ctx, store.SettingRegion, "JP")
	if err != nil {
		return store.Extension{}, "", err
	}
	if err := dialplan.New(region).ValidExtension(number); err != nil {
		return store.Extension{}, "", refuse("number", "%v", err)
	}
	if _, err := st.Group(ctx, number); err == nil {
		return store.Extension{}, "", refuse("number", "%s is a ring group's number", number)
	}
	if len(name) > 64 || strings.ContainsAny(name, "\r\n\x00\"<>") {
		return store.Extension{}, "", refuse("name", "at most 64 characters, without quotes, < > or line breaks")
	}
	realm, err := st.Setting(ctx, store.SettingRealm, store.DefaultRealm)
	if err != nil {
		return store.Extension{}, "", err
	}
	pw, err := credential.NewPassword()
	if err != nil {
		return store.Extension{}, "", err
	}
	e := store.Extension{Number: number, Name: name, Realm: realm, Digest: string(offer)}
	SetHashes(&e, pw)
	if err := st.AddExtension(ctx, e); err != nil {
		if errors.Is(err, store.ErrExists) {
			return e, "", &FieldError{Field: "number", Msg: "extension " + number + " exists already", Err: err}
		}
		return e, "", err
	}
	return e, pw, nil
}

// SetHashes fills e's digest hashes for password. The password goes no further.
func SetHashes(e *store.Extension, password string) {
	e.HA1MD5 = credential.HA1(credential.MD5, e.Number, e.Realm, password)
	e.HA1SHA256 = credential.HA1(credential.SHA256, e.Number, e.Realm, password)
}

// ExtChange is an edit of an extension's policy; nil fields stay as they are.
type ExtChange struct {
	Class     *string // internal, domestic, mobile, international, or "default" (the profile's)
	Countries *string // ISO regions, or "none" (the profile's)
	Profile   *string // a profile name, or "default"
	Networks  *string // CIDR prefixes, or "default" (the PBX's phone networks)
}

// Empty tells whether the change changes nothing.
func (c ExtChange) Empty() bool {
	return c.Class == nil && c.Countries == nil && c.Profile == nil && c.Networks == nil
}

// SetExtension applies ch to extension number as one update (all fields
// valid, or nothing changed) and returns the extension with the policy it
// now runs under.
func SetExtension(ctx context.Context, st *store.Store, number string, ch ExtChange) (store.Extension, tollgate.Policy, error) {
	e, err := st.Extension(ctx, number)
	if err != nil {
		return e, tollgate.Policy{}, &FieldError{Field: "number", Msg: "no extension " + number, Err: err}
	}
	if ch.Class != nil {
		cl, err := policy.ParseClass(*ch.Class)
		if err != nil {
			return e, tollgate.Policy{}, refuse("class", "%v", err)
		}
		e.Class = string(cl)
	}
	if ch.Countries != nil {
		if e.Countries, err = policy.ParseCountries(*ch.Countries); err != nil {
			return e, tollgate.Policy{}, refuse("countries", "%v", err)
		}
	}
	if ch.Profile != nil {
		p := *ch.Profile
		if p == policy.DefaultProfile {
			p = ""
		} else if _, err := st.Profile(ctx, p); err != nil {
			return e, tollgate.Policy{}, &FieldError{Field: "profile", Msg: "no profile " + p + " (create it first: sekisho profile add " + p + ")", Err: err}
		}
		e.Profile = p
	}
	if ch.Networks != nil {
		n := *ch.Networks
		if n == "default" {
			n = ""
		}
		nets, err := config.ParseNetworks(n)
		if err != nil {
			return e, tollgate.Policy{}, refuse("networks", "%v", err)
		}
		parts := make([]string, len(nets))
		for i, p := range nets {
			parts[i] = p.String()
		}
		e.Networks = strings.Join(parts, ",")
	}
	if err := st.UpdateExtension(ctx, e); err != nil {
		return e, tollgate.Policy{}, err
	}
	p, err := PolicyOf(ctx, st, e)
	return e, p, err
}

// PolicyOf resolves an extension's policy as the server would.
func PolicyOf(ctx context.Context, st *store.Store, e store.Extension) (tollgate.Policy, error) {
	b, err := LoadPolicy(ctx, st)
	if err != nil {
		return tollgate.Policy{}, err
	}
	return tollgate.PolicyOf(e, b.Current()), nil
}

// LoadPolicy reads the policy the server would run with.
func LoadPolicy(ctx context.Context, st *store.Store) (*policy.Book, error) {
	b := policy.NewBook(st)
	if err := b.Reload(ctx); err != nil {
		return nil, err
	}
	return b, nil
}
