package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/config"
	"github.com/sekisho/sekisho/internal/credential"
	"github.com/sekisho/sekisho/internal/pbx"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/vpn"
)

// vpnCmd edits the peers of the console's VPN: sekisho vpn
// add-peer|list|del. The running server picks changes up within 2
// seconds.
func vpnCmd(args []string, env Env) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: vpn needs a subcommand: add-peer, list or del", ErrUsage)
	}
	ctx := context.Background()
	var c common
	fs := newFlags("vpn "+args[0], env)
	c.bind(fs)
	switch args[0] {
	case "add-peer":
		pub := fs.String("pubkey", "", "the peer's WireGuard public key, base64 (on the peer: wg genkey | tee peer.key | wg pubkey)")
		endpoint := fs.String("endpoint", "", "HOST:PORT the peer reaches the PBX's WireGuard port at (default: --vpn-listen of the server)")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: vpn add-peer takes one NAME and --pubkey KEY", ErrUsage)
		}
		if !credential.ValidName(pos[0]) {
			return fmt.Errorf("%w: NAME %q: want 2 to 32 lower-case letters, digits, '-', '_' or '.', such as vendor", ErrUsage, pos[0])
		}
		if *pub == "" {
			return fmt.Errorf("%w: --pubkey: missing; give the peer's WireGuard public key (on the peer: wg genkey | tee peer.key | wg pubkey)", ErrUsage)
		}
		key, err := vpn.ParseKey(*pub)
		if err != nil {
			return fmt.Errorf("%w: --pubkey: %v", ErrUsage, err)
		}
		if *endpoint != "" {
			if _, port, err := config.SplitHostPort(*endpoint); err != nil || port == 0 {
				return fmt.Errorf("%w: --endpoint %q: want HOST:PORT with an IP address, such as 203.0.113.5:51820", ErrUsage, *endpoint)
			}
		}
		return withStore(ctx, c, func(st *store.Store) error {
			return vpnAddPeer(ctx, env, c, st, append([]string{"vpn"}, args...), pos[0], key, *endpoint)
		})
	case "list":
		if pos, err := parse(fs, args[1:]); err != nil {
			return err
		} else if len(pos) != 0 {
			return fmt.Errorf("%w: vpn list takes no arguments", ErrUsage)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			ps, err := st.VPNPeers(ctx)
			if err != nil {
				return err
			}
			if c.json {
				if ps == nil {
					ps = []store.VPNPeer{}
				}
				return printJSON(env.Stdout, ps)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tADDRESS\tPUBLIC KEY\tADDED")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Address, p.PublicKey, p.Created.Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		})
	case "del":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: vpn del takes one NAME", ErrUsage)
		}
		return withStore(ctx, c, func(st *store.Store) error {
			before, err := vpnPeer(ctx, st, pos[0])
			if err != nil {
				return err
			}
			if err := st.DeleteVPNPeer(ctx, pos[0]); err != nil {
				return err
			}
			if err := recordVPNChange(ctx, st, append([]string{"vpn"}, args...), before, nil); err != nil {
				return err
			}
			if c.json {
				return printJSON(env.Stdout, map[string]string{"deleted": pos[0]})
			}
			fmt.Fprintf(env.Stdout, "vpn peer %s deleted; its tunnel closes within 2 seconds\n", pos[0])
			return nil
		})
	}
	return fmt.Errorf("%w: unknown vpn subcommand %q: use add-peer, list or del", ErrUsage, args[0])
}

// vpnPeer returns the peer called name, or ErrNotFound.
func vpnPeer(ctx context.Context, st *store.Store, name string) (*store.VPNPeer, error) {
	ps, err := st.VPNPeers(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.Name == name {
			return &p, nil
		}
	}
	return nil, fmt.Errorf("vpn peer %s: %w (see sekisho vpn list)", name, store.ErrNotFound)
}

// peerFileJSON is add-peer's --json output: the peer file's fields and
// the wg-quick text itself.
type peerFileJSON struct {
	vpn.PeerFile
	Config string `json:"config"`
}

// vpnAddPeer stores the peer with the next free tunnel address and prints
// its wg-quick configuration. The peer's private key is never made or
// seen here: only its public key is given.
func vpnAddPeer(ctx context.Context, env Env, c common, st *store.Store, args []string, name string, key vpn.Key, endpoint string) error {
	def := config.Default()
	netText, err := st.Setting(ctx, store.SettingVPNNet, def.VPNNet)
	if err != nil {
		return err
	}
	listen, err := st.Setting(ctx, store.SettingVPNListen, def.VPNListen)
	if err != nil {
		return err
	}
	if listen == "" {
		fmt.Fprintln(env.Stderr, "sekisho: warning: the server last ran without the VPN (--vpn-listen empty, or no --console); the peer is stored but cannot connect until it runs with --vpn-listen")
		listen = def.VPNListen
	}
	if endpoint == "" {
		endpoint = listen
	}
	unit, err := (&config.Config{VPNNet: netText}).VPNPrefix()
	if err != nil {
		return fmt.Errorf("the server's recorded %w", err)
	}
	server, err := vpn.ServerPublicKey(c.data)
	if err != nil {
		return err
	}
	if server == key.String() {
		return fmt.Errorf("%w: --pubkey: that is the PBX's own public key; give the peer's", ErrUsage)
	}
	peers, err := st.VPNPeers(ctx)
	if err != nil {
		return err
	}
	var used []netip.Addr
	for _, p := range peers {
		switch {
		case p.Name == name:
			return fmt.Errorf("%w: NAME %s: a peer of that name exists; remove it with `sekisho vpn del %s` first, or choose another name", ErrUsage, name, name)
		case p.PublicKey == key.String():
			return fmt.Errorf("%w: --pubkey: peer %s has that key already; each peer needs its own key pair", ErrUsage, p.Name)
		}
		if a, err := netip.ParseAddr(p.Address); err == nil {
			used = append(used, a)
		}
	}
	addr, err := vpn.NextAddress(unit, used)
	if err != nil {
		return err
	}
	certFile, err := st.Setting(ctx, store.SettingVPNTLSCert, "")
	if err != nil {
		return err
	}
	keyFile, err := st.Setting(ctx, store.SettingVPNTLSKey, "")
	if err != nil {
		return err
	}
	// The certificate the server will serve, made now if the server has
	// not made it yet, so the fingerprint printed is the one the vendor
	// will see.
	cert, err := pbx.ConsoleCertificate(c.data, certFile, keyFile, unit.Addr().String())
	if err != nil {
		return err
	}
	serverKey, err := vpn.ParseKey(server)
	if err != nil {
		return err
	}
	file, err := vpn.NewPeerFile(name, addr, serverKey, unit, endpoint, vpn.Fingerprint(cert.Certificate[0]))
	if err != nil {
		return fmt.Errorf("%w: --endpoint (or the server's --vpn-listen): %v", ErrUsage, err)
	}
	p := store.VPNPeer{Name: name, PublicKey: key.String(), Address: addr.String(), Created: time.Now()}
	if err := st.AddVPNPeer(ctx, p); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("%w: another command took the name, key or address at the same time; run it again", err)
		}
		return err
	}
	if err := recordVPNChange(ctx, st, args, nil, &p); err != nil {
		return err
	}
	if c.json {
		return printJSON(env.Stdout, peerFileJSON{PeerFile: file, Config: file.WGQuick()})
	}
	_, err = fmt.Fprint(env.Stdout, file.WGQuick())
	return err
}

// recordVPNChange writes the evidence record of a change to the VPN's
// peers, as every mutating command's is written (see recordChange): who
// ran it, the command line (a public key is no secret), the peer before
// and after. A change that cannot be written down is reported, not
// hidden.
func recordVPNChange(ctx context.Context, st *store.Store, args []string, before, after *store.VPNPeer) error {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	detail, _ := json.Marshal(struct {
		Command string         `json:"command"`
		Before  *store.VPNPeer `json:"before"`
		After   *store.VPNPeer `json:"after"`
	}{"sekisho " + strings.Join(args, " "), before, after})
	now := time.Now()
	_, err := st.AppendAudit(ctx, []store.AuditRecord{{At: now, Type: audit.ConfigChange, Source: "cli:" + who,
		Target: args[0] + " " + args[1], Count: 1, First: now, Last: now, Detail: string(detail)}}, audit.Hash)
	if err != nil {
		return fmt.Errorf("the change was made but could not be written to the evidence log: %w", err)
	}
	return nil
}
