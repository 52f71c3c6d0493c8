package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/voicemail"
)

// voicemailCmd manages mailboxes: sekisho voicemail enable EXT
// [--email ADDR] (prints a new random PIN once), voicemail pin EXT (a new
// PIN; also lifts a lock), voicemail greeting EXT FILE.wav|--clear,
// voicemail disable EXT, voicemail list [EXT],
// voicemail del EXT ID. There is no way to choose a PIN here: a chosen
// PIN is a guessable one (1234, the extension), and a default PIN is how
// mailboxes are broken into.
func voicemailCmd(args []string, env Env) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: voicemail needs a subcommand: enable, pin, greeting, disable, list or del", ErrUsage)
	}
	ctx := context.Background()
	var c common
	fs := newFlags("voicemail "+args[0], env)
	c.bind(fs)
	svc := func(st *store.Store) *voicemail.Service {
		return &voicemail.Service{Store: st, Dir: filepath.Join(c.data, "voicemail"), Log: slog.New(slog.DiscardHandler)}
	}
	switch args[0] {
	case "enable", "pin":
		email := fs.String("email", "", "address to mail new messages to (enable only; kept for a later release)")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: voicemail %s takes one extension", ErrUsage, args[0])
		}
		return withStore(ctx, c, func(st *store.Store) error {
			if _, err := st.Extension(ctx, pos[0]); err != nil {
				return fmt.Errorf("voicemail: extension %s: %w", pos[0], err)
			}
			box, had, err := st.GetMailbox(ctx, pos[0])
			if err != nil {
				return err
			}
			if args[0] == "pin" && !had {
				return fmt.Errorf("voicemail: %s has no mailbox: sekisho voicemail enable %s", pos[0], pos[0])
			}
			addr := *email
			if args[0] == "pin" {
				addr = box.Email
			}
			pin, err := svc(st).Enable(ctx, pos[0], addr)
			if err != nil {
				return err
			}
			if c.json {
				return printJSON(env.Stdout, map[string]any{"ext": pos[0], "pin": pin})
			}
			fmt.Fprintf(env.Stdout, "mailbox %s: PIN %s (shown once; dial %s from the phone to listen)\n", pos[0], pin, "*97")
			return nil
		})
	case "greeting":
		clear := fs.Bool("clear", false, "remove the extension's own greeting (the built-in chime plays again)")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) < 1 || len(pos) > 2 || (len(pos) == 2) == *clear {
			return fmt.Errorf("%w: voicemail greeting EXT FILE.wav, or voicemail greeting EXT --clear", ErrUsage)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			if _, ok, err := st.GetMailbox(ctx, pos[0]); err != nil || !ok {
				return fmt.Errorf("voicemail: %s has no mailbox: sekisho voicemail enable %s", pos[0], pos[0])
			}
			file := ""
			if len(pos) == 2 {
				file = pos[1]
			}
			if err := svc(st).SetGreeting(pos[0], file); err != nil {
				return fmt.Errorf("%w (want 8000 Hz mono 16-bit PCM: sox in.wav -r 8000 -c 1 -b 16 out.wav)", err)
			}
			if c.json {
				return printJSON(env.Stdout, map[string]any{"ext": pos[0], "greeting": file != ""})
			}
			if file == "" {
				fmt.Fprintf(env.Stdout, "mailbox %s: built-in greeting\n", pos[0])
			} else {
				fmt.Fprintf(env.Stdout, "mailbox %s: greeting from %s\n", pos[0], file)
			}
			return nil
		})
	case "disable":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: voicemail disable takes one extension", ErrUsage)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			msgs, err := st.Voicemails(ctx, pos[0])
			if err != nil {
				return err
			}
			if err := st.DeleteMailbox(ctx, pos[0]); err != nil {
				return err
			}
			for _, m := range msgs {
				os.Remove(m.File)
			}
			if c.json {
				return printJSON(env.Stdout, map[string]any{"ext": pos[0], "deleted_messages": len(msgs)})
			}
			fmt.Fprintf(env.Stdout, "mailbox %s removed with %d message(s)\n", pos[0], len(msgs))
			return nil
		})
	case "list":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) > 1 {
			return fmt.Errorf("%w: voicemail list takes at most one extension", ErrUsage)
		}
		ext := ""
		if len(pos) == 1 {
			ext = pos[0]
		}
		return withStore(ctx, c, func(st *store.Store) error {
			msgs, err := st.Voicemails(ctx, ext)
			if err != nil {
				return err
			}
			if c.json {
				if msgs == nil {
					msgs = []store.Voicemail{}
				}
				return printJSON(env.Stdout, msgs)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "EXT\tID\tFROM\tRECEIVED\tSECONDS\tHEARD\tFILE")
			for _, m := range msgs {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.1f\t%v\t%s\n", m.Ext, m.ID, m.Caller, m.Received.Local().Format("2006-01-02 15:04"), m.Duration.Seconds(), m.Heard, m.File)
			}
			return tw.Flush()
		})
	case "del":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 2 {
			return fmt.Errorf("%w: voicemail del takes an extension and a message id", ErrUsage)
		}
		id, err := strconv.ParseInt(pos[1], 10, 64)
		if err != nil {
			return fmt.Errorf("%w: voicemail del: message id %q is not a number", ErrUsage, pos[1])
		}
		return withStore(ctx, c, func(st *store.Store) error {
			file, err := st.DeleteVoicemail(ctx, pos[0], id)
			if err != nil {
				return err
			}
			if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("voicemail: message %d removed, but not its file: %w", id, err)
			}
			if c.json {
				return printJSON(env.Stdout, map[string]any{"ext": pos[0], "deleted": id})
			}
			fmt.Fprintf(env.Stdout, "message %d of %s deleted\n", id, pos[0])
			return nil
		})
	}
	return fmt.Errorf("%w: unknown voicemail subcommand %q: use enable, pin, greeting, disable, list or del", ErrUsage, args[0])
}
