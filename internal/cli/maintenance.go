package cli

import (
	"context"
	"fmt"

	"github.com/sekisho/sekisho/internal/console"
	"github.com/sekisho/sekisho/internal/store"
)

// maintenanceCmd is the office's switch for the vendor's access, beside
// the console's settings page: sekisho maintenance on|off|show. It is the
// same setting, read on every request, so switching it off ends the
// vendor's console logins and the centre's maintenance sessions at once.
func maintenanceCmd(args []string, env Env) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: maintenance needs on, off or show", ErrUsage)
	}
	var c common
	fs := newFlags("maintenance "+args[0], env)
	c.bind(fs)
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: maintenance %s takes no arguments", ErrUsage, args[0])
	}
	ctx := context.Background()
	return withStore(ctx, c, func(st *store.Store) error {
		switch args[0] {
		case "on", "off":
			if err := st.SetSetting(ctx, console.SettingMaintenance, args[0]); err != nil {
				return err
			}
		case "show":
		default:
			return fmt.Errorf("%w: maintenance %q: want on, off or show", ErrUsage, args[0])
		}
		v, err := st.Setting(ctx, console.SettingMaintenance, "")
		if err != nil {
			return err
		}
		state := map[string]string{"on": "on", "off": "off", "": "as the server's --maintenance flag says"}[v]
		if c.json {
			return printJSON(env.Stdout, map[string]string{"maintenance": v})
		}
		fmt.Fprintf(env.Stdout, "vendor maintenance access: %s\n", state)
		return nil
	})
}
