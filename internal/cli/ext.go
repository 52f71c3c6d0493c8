package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/sekisho/sekisho/internal/admin"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/tollgate"
)

// openStore opens the store a command works on; its writes wait up to
// cliBusy for a busy server's lock.
func openStore(ctx context.Context, dir string) (*store.Store, error) {
	return store.OpenWaiting(ctx, dir, cliBusy)
}

const cliBusy = time.Minute

type extJSON struct {
	Number    string `json:"number"`
	Name      string `json:"name,omitempty"`
	Digest    string `json:"digest"`
	Realm     string `json:"realm"`
	Password  string `json:"password,omitempty"`
	Class     string `json:"class,omitempty"`
	Countries string `json:"countries,omitempty"`
	Profile   string `json:"profile,omitempty"`
	Suspended string `json:"suspended,omitempty"` // the reason, when suspended
	Created   string `json:"created,omitempty"`
	Updated   string `json:"updated,omitempty"`
}

func ext(args []string, env Env) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: ext needs a subcommand: add, list, del, set, passwd or unlock", ErrUsage)
	}
	ctx := context.Background()
	var c common
	fs := newFlags("ext "+args[0], env)
	c.bind(fs)
	switch args[0] {
	case "add":
		name := fs.String("name", "", "display name")
		dig := fs.String("digest", string(credential.OfferMD5), "digest algorithms offered: md5 (works with every phone), sha256, or both (SHA-256 first; breaks phones that read only the first challenge)")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: ext add takes one NUMBER", ErrUsage)
		}
		offer, err := credential.ParseOffer(*dig)
		if err != nil {
			return fmt.Errorf("%w: --digest: %v", ErrUsage, err)
		}
		return extAdd(ctx, env, c, pos[0], *name, offer)
	case "list":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 0 {
			return fmt.Errorf("%w: ext list takes no arguments", ErrUsage)
		}
		return extList(ctx, env, c)
	case "del":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: ext del takes one NUMBER", ErrUsage)
		}
		st, err := openStore(ctx, c.data)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.DeleteExtension(ctx, pos[0]); err != nil {
			return err
		}
		if c.json {
			return printJSON(env.Stdout, map[string]string{"deleted": pos[0]})
		}
		fmt.Fprintf(env.Stdout, "extension %s deleted\n", pos[0])
		return nil
	case "set":
		class := fs.String("class", "", "class of service: internal, domestic, mobile, international, or default (the profile's)")
		countries := fs.String("countries", "", "ISO 3166 regions it may call abroad, comma-separated (US,SL); \"none\" uses the profile's")
		profile := fs.String("profile", "", "policy profile (see sekisho profile list); \"default\" for the default")
		networks := fs.String("networks", "", "CIDR prefixes this extension may register and call from, comma-separated; \"default\" for the PBX's phone networks")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: ext set takes one NUMBER", ErrUsage)
		}
		var ch admin.ExtChange
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "class":
				ch.Class = class
			case "countries":
				ch.Countries = countries
			case "profile":
				ch.Profile = profile
			case "networks":
				ch.Networks = networks
			}
		})
		if ch.Empty() {
			return fmt.Errorf("%w: ext set needs --class, --countries, --profile and/or --networks", ErrUsage)
		}
		return extSet(ctx, env, c, pos[0], ch)
	case "unlock":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: ext unlock takes one NUMBER", ErrUsage)
		}
		return extUnlock(ctx, env, c, pos[0])
	case "passwd":
		file := fs.String("password-file", "", "read the new password from FILE instead of generating one (first line; at least 16 characters)")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: ext passwd takes one NUMBER", ErrUsage)
		}
		return extPasswd(ctx, env, c, pos[0], *file)
	}
	return fmt.Errorf("%w: unknown ext subcommand %q: use add, list, del, set, passwd or unlock", ErrUsage, args[0])
}

func extAdd(ctx context.Context, env Env, c common, number, name string, offer credential.Offer) error {
	return withStore(ctx, c, func(st *store.Store) error {
		e, pw, err := admin.AddExtension(ctx, st, number, name, offer)
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("extension %s already exists: use `sekisho ext passwd %s` for a new password", number, number)
		}
		if err != nil {
			return flagError(err)
		}
		return showPassword(env, c, e, pw, "created")
	})
}

func showPassword(env Env, c common, e store.Extension, pw, what string) error {
	if c.json {
		return printJSON(env.Stdout, extJSON{Number: e.Number, Name: e.Name, Digest: e.Digest, Realm: e.Realm, Password: pw})
	}
	fmt.Fprintf(env.Stdout, "extension %s %s\n", e.Number, what)
	fmt.Fprintf(env.Stdout, "  SIP user:  %s\n  password:  %s\n  realm:     %s\n  digest:    %s\n", e.Number, pw, e.Realm, e.Digest)
	fmt.Fprintln(env.Stdout, "The password is shown only now; sekisho keeps only digest hashes of it.")
	return nil
}

// withExtension runs fn with the store and extension number, which must exist.
func withExtension(ctx context.Context, c common, number string, fn func(*store.Store, store.Extension) error) error {
	return withStore(ctx, c, func(st *store.Store) error {
		e, err := st.Extension(ctx, number)
		if err != nil {
			return err
		}
		return fn(st, e)
	})
}

func extPasswd(ctx context.Context, env Env, c common, number, file string) error {
	return withExtension(ctx, c, number, func(st *store.Store, e store.Extension) error {
		var err error
		var pw string
		if file != "" {
			if pw, err = readSecretFile(file); err != nil {
				return err
			}
			if err := credential.CheckChosen(number, pw, e.Name); err != nil {
				return fmt.Errorf("--password-file: %w", err)
			}
		} else if pw, err = credential.NewPassword(); err != nil {
			return err
		}
		realm, err := st.Setting(ctx, store.SettingRealm, store.DefaultRealm)
		if err != nil {
			return err
		}
		e.Realm = realm
		admin.SetHashes(&e, pw)
		if err := st.UpdateExtension(ctx, e); err != nil {
			return err
		}
		if file != "" {
			// A password the person chose is not echoed back.
			pw = ""
			if !c.json {
				fmt.Fprintf(env.Stdout, "extension %s: password changed\n", number)
				return nil
			}
		}
		return showPassword(env, c, e, pw, "has a new password")
	})
}

// readSecretFile returns the first line of a --password-file. Secrets come
// from files, never from the command line, where `ps` and shell history
// would show them.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--password-file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimRight(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("%w: --password-file %s: first line is empty", ErrUsage, path)
	}
	return pw, nil
}

func extSet(ctx context.Context, env Env, c common, number string, ch admin.ExtChange) error {
	return withStore(ctx, c, func(st *store.Store) error {
		e, p, err := admin.SetExtension(ctx, st, number, ch)
		if err != nil {
			return flagError(err)
		}
		if c.json {
			return printJSON(env.Stdout, map[string]string{"number": e.Number, "class": string(p.Profile.Class),
				"countries": p.Profile.Countries, "profile": p.Profile.Name, "networks": e.Networks})
		}
		nets := e.Networks
		if nets == "" {
			nets = "the phone networks"
		}
		fmt.Fprintf(env.Stdout, "extension %s: profile %s, class %s, countries abroad: %s, may come from: %s\n", e.Number, p.Profile.Name, p.Profile.Class, orNone(p.Profile.Countries), nets)
		return nil
	})
}

// extUnlock lifts a suspension. The running server sees it on the next
// call attempt and starts the extension's counters afresh.
func extUnlock(ctx context.Context, env Env, c common, number string) error {
	return withExtension(ctx, c, number, func(st *store.Store, e store.Extension) error {
		was, err := st.Unlock(ctx, number, time.Now())
		if err != nil {
			return err
		}
		if c.json {
			return printJSON(env.Stdout, map[string]any{"number": number, "was_suspended": was, "reason": e.SuspendReason})
		}
		if !was {
			fmt.Fprintf(env.Stdout, "extension %s was not suspended; its limit counters start afresh\n", number)
			return nil
		}
		fmt.Fprintf(env.Stdout, "extension %s unlocked (was suspended: %s)\n", number, e.SuspendReason)
		return nil
	})
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func extList(ctx context.Context, env Env, c common) error {
	st, err := openStore(ctx, c.data)
	if err != nil {
		return err
	}
	defer st.Close()
	es, err := st.Extensions(ctx)
	if err != nil {
		return err
	}
	b, err := admin.LoadPolicy(ctx, st)
	if err != nil {
		return err
	}
	if c.json {
		out := make([]extJSON, 0, len(es))
		for _, e := range es {
			p := tollgate.PolicyOf(e, b.Current())
			out = append(out, extJSON{Number: e.Number, Name: e.Name, Digest: e.Digest, Realm: e.Realm,
				Class: string(p.Profile.Class), Countries: p.Profile.Countries, Profile: p.Profile.Name, Suspended: p.Suspended,
				Created: e.Created.UTC().Format(time.RFC3339), Updated: e.Updated.UTC().Format(time.RFC3339)})
		}
		return printJSON(env.Stdout, out)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tNAME\tDIGEST\tPROFILE\tCLASS\tABROAD\tSTATE\tCREATED")
	for _, e := range es {
		p := tollgate.PolicyOf(e, b.Current())
		state := "ok"
		if p.Suspended != "" {
			state = "SUSPENDED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Number, e.Name, e.Digest, p.Profile.Name, p.Profile.Class,
			orNone(p.Profile.Countries), state, e.Created.Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}
