// Package trunk knows the carrier trunks: which source addresses belong to
// which trunk (a request is from a trunk only if it comes from that trunk's
// configured address), which trunk carries outbound calls, and the trunk
// credentials, opened from the vault only when a challenge needs them.
// It also keeps registrations to carriers that want them.
package trunk

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/vault"
)

// Trunk is a configured trunk with its resolved addresses.
type Trunk struct {
	store.Trunk
	Host  string       // peer host
	Port  int          // peer port
	Addrs []netip.Addr // addresses the peer host resolved to
}

// Directory is the current set of trunks. Safe for concurrent use; Reload
// swaps in a new set atomically.
type Directory struct {
	st    *store.Store
	vault *vault.Vault
	log   *slog.Logger

	mu     sync.RWMutex
	trunks []Trunk            // by name; guarded by mu
	bySrc  map[netip.Addr]int // source address -> index in trunks; guarded by mu
	sig    string             // fingerprint of the loaded rows; guarded by mu
}

// NewDirectory returns an empty directory; call Reload to fill it.
func NewDirectory(st *store.Store, v *vault.Vault, log *slog.Logger) *Directory {
	return &Directory{st: st, vault: v, log: log, bySrc: map[netip.Addr]int{}}
}

// Reload reads the trunks from the store and resolves their hosts. It
// reports whether anything changed.
func (d *Directory) Reload(ctx context.Context) (bool, error) {
	rows, err := d.st.Trunks(ctx)
	if err != nil {
		return false, err
	}
	sig := ""
	for _, r := range rows {
		sig += fmt.Sprintf("%s|%s|%s|%s|%x|%v|%s|%s\n", r.Name, r.Peer, r.Transport, r.Username, r.PasswordSealed, r.Register, r.CallerID, r.NumberFormat)
	}
	d.mu.RLock()
	same := sig == d.sig
	d.mu.RUnlock()
	if same {
		return false, nil
	}
	trunks := make([]Trunk, 0, len(rows))
	bySrc := map[netip.Addr]int{}
	for _, r := range rows {
		host, portStr, err := net.SplitHostPort(r.Peer)
		if err != nil {
			d.log.Error("trunk: bad peer, trunk ignored", "trunk", r.Name, "peer", r.Peer, "err", err)
			continue
		}
		var port int
		fmt.Sscan(portStr, &port)
		t := Trunk{Trunk: r, Host: host, Port: port}
		if a, err := netip.ParseAddr(host); err == nil {
			t.Addrs = []netip.Addr{a.Unmap()}
		} else {
			ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			if err != nil {
				d.log.Error("trunk: cannot resolve peer; inbound calls from it are refused until it resolves", "trunk", r.Name, "peer", host, "err", err)
			}
			for _, ip := range ips {
				t.Addrs = append(t.Addrs, ip.Unmap())
			}
		}
		for _, a := range t.Addrs {
			if _, dup := bySrc[a]; !dup {
				bySrc[a] = len(trunks)
			}
		}
		trunks = append(trunks, t)
	}
	d.mu.Lock()
	d.trunks, d.bySrc, d.sig = trunks, bySrc, sig
	d.mu.Unlock()
	d.log.Info("trunk: loaded", "count", len(trunks))
	return true, nil
}

// FromSource returns the trunk whose peer address is the request's source
// address (host:port; the port is not compared, carriers send from
// several). Only this check makes a request "from the carrier": a From
// header or any other claim in the message counts for nothing, so a
// stranger cannot pose as the carrier to get unauthenticated calls routed.
func (d *Directory) FromSource(source string) (Trunk, bool) {
	ap, err := netip.ParseAddrPort(source)
	if err != nil {
		return Trunk{}, false
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	i, ok := d.bySrc[ap.Addr().Unmap()]
	if !ok {
		return Trunk{}, false
	}
	return d.trunks[i], true
}

// IsPeer reports whether a is the address of a trunk peer.
func (d *Directory) IsPeer(a netip.Addr) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	_, ok := d.bySrc[a.Unmap()]
	return ok
}

// Outbound returns the trunk that carries outbound calls: the first by
// name. ok is false when there is none.
func (d *Directory) Outbound() (Trunk, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if len(d.trunks) == 0 {
		return Trunk{}, false
	}
	return d.trunks[0], true
}

// Get returns the trunk called name.
func (d *Directory) Get(name string) (Trunk, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, t := range d.trunks {
		if t.Name == name {
			return t, true
		}
	}
	return Trunk{}, false
}

// All returns the loaded trunks.
func (d *Directory) All() []Trunk {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return append([]Trunk(nil), d.trunks...)
}

// Password opens the trunk's password. Callers use it for one digest
// computation and drop it; it is never logged.
func (d *Directory) Password(t Trunk) (string, error) {
	if len(t.PasswordSealed) == 0 {
		return "", nil
	}
	pt, err := d.vault.Open(Label(t.Name), t.PasswordSealed)
	if err != nil {
		return "", fmt.Errorf("trunk %s: %w", t.Name, err)
	}
	return string(pt), nil
}

// Label is the vault label a trunk's password is sealed under; binding it
// to the name stops a sealed password being moved to another trunk's row.
func Label(name string) string { return "trunk:" + name }
