// Package vpn is the console's private door: an embedded WireGuard
// interface (wireguard-go) whose TCP/IP stack runs in the process (gVisor's
// netstack), so it needs no root, no TUN device and no routes on the host,
// and nothing but what sekisho listens on inside it is reachable through
// it. The unit takes one address of --vpn-net; each peer (a vendor's
// laptop) is a public key with the next free address, kept in the store
// by `sekisho vpn add-peer` and picked up without a restart.
//
// The UDP port is not an open door: WireGuard answers nothing, not even an
// error, to a packet that is not a valid handshake from a key it knows
// (the handshake's first message is authenticated with the unit's public
// key and the peer's static key), so a scanner sees a closed port and a
// stranger cannot even learn that sekisho is there. Only a peer in the
// store gets a session, and inside the tunnel it can send only from its
// own address.
package vpn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/sekisho/sekisho/internal/store"
)

// Defaults of --vpn-listen and --vpn-net.
const (
	DefaultListen = ":51820"
	DefaultNet    = "10.77.0.1/24"
)

// ReloadEvery is how often the peers are read from the store again.
const ReloadEvery = 2 * time.Second

// mtu is WireGuard's usual inner MTU (1500 less its overhead over IPv6).
const mtu = 1420

// PeerSource lists the peers; *store.Store is one.
type PeerSource interface {
	VPNPeers(ctx context.Context) ([]store.VPNPeer, error)
}

// Config is what Start needs.
type Config struct {
	Dir    string       // data directory: the unit's key is Dir/vpn.key
	Listen string       // UDP host:port (--vpn-listen)
	Net    netip.Prefix // the unit's tunnel address and the peers' prefix (--vpn-net)
	Peers  PeerSource
	Log    *slog.Logger
	Reload time.Duration // how often Peers is read again; 0: ReloadEvery
}

// Tunnel is a running WireGuard interface.
type Tunnel struct {
	cfg  Config
	dev  *device.Device
	net  *netstack.Net
	bind *udpBind
	pub  Key

	mu      sync.Mutex
	applied string // the peer configuration in force
	peers   int

	stop context.CancelFunc
	done chan struct{}
	once sync.Once
}

// Start brings the interface up with the peers in cfg.Peers and keeps it
// in step with them until Close. ctx bounds only the start.
func Start(ctx context.Context, cfg Config) (*Tunnel, error) {
	if cfg.Listen == "" {
		return nil, errors.New("vpn: no listen address (--vpn-listen)")
	}
	if !cfg.Net.Addr().Is4() || cfg.Net.Bits() > 30 {
		return nil, fmt.Errorf("vpn: --vpn-net %s: want an IPv4 address with a prefix of /30 or shorter", cfg.Net)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Reload <= 0 {
		cfg.Reload = ReloadEvery
	}
	key, err := LoadKey(cfg.Dir)
	if err != nil {
		return nil, err
	}
	rows, err := cfg.Peers.VPNPeers(ctx)
	if err != nil {
		return nil, fmt.Errorf("vpn: read peers: %w", err)
	}
	tdev, tnet, err := netstack.CreateNetTUN([]netip.Addr{cfg.Net.Addr()}, nil, mtu)
	if err != nil {
		return nil, fmt.Errorf("vpn: userspace network stack: %w", err)
	}
	t := &Tunnel{cfg: cfg, net: tnet, bind: newUDPBind(cfg.Listen), pub: key.Public(), done: make(chan struct{})}
	wlog := cfg.Log.With("component", "wireguard")
	t.dev = device.NewDevice(tdev, t.bind, &device.Logger{
		Verbosef: func(f string, a ...any) { wlog.Debug(fmt.Sprintf(f, a...)) },
		Errorf:   func(f string, a ...any) { wlog.Warn(fmt.Sprintf(f, a...)) },
	})
	peers := t.usable(rows)
	text := peerConfig(peers)
	if err := t.dev.IpcSet("private_key=" + key.hex() + "\n" + text); err != nil {
		t.dev.Close()
		return nil, fmt.Errorf("vpn: configure: %w", err)
	}
	if err := t.dev.Up(); err != nil {
		t.dev.Close()
		return nil, fmt.Errorf("vpn: listen-udp %s: %w", cfg.Listen, err)
	}
	t.applied, t.peers = text, len(peers)
	wctx, stop := context.WithCancel(context.Background())
	t.stop = stop
	go t.watch(wctx)
	return t, nil
}

// usable keeps the rows that can be peers, logging the others.
func (t *Tunnel) usable(rows []store.VPNPeer) []Peer {
	return peersFrom(rows, t.cfg.Net, func(r store.VPNPeer, err error) {
		t.cfg.Log.Warn("vpn: peer left out", "peer", r.Name, "err", err)
	})
}

// watch re-reads the peers every cfg.Reload and applies them when the set
// changed, so that `sekisho vpn add-peer` and `vpn del` take effect
// without a restart: a deleted peer's sessions end within one period.
func (t *Tunnel) watch(ctx context.Context) {
	defer close(t.done)
	tick := time.NewTicker(t.cfg.Reload)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := t.reload(ctx); err != nil && ctx.Err() == nil {
			// Fail in place: the peers in force stay in force.
			t.cfg.Log.Error("vpn: peer reload failed; the previous peers stay in force", "err", err)
		}
	}
}

// reload applies the store's peers if they differ from those in force.
func (t *Tunnel) reload(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rows, err := t.cfg.Peers.VPNPeers(rctx)
	if err != nil {
		return err
	}
	peers := t.usable(rows)
	text := peerConfig(peers)
	t.mu.Lock()
	defer t.mu.Unlock()
	if text == t.applied {
		return nil
	}
	if err := t.dev.IpcSet(text); err != nil {
		return err
	}
	t.applied, t.peers = text, len(peers)
	t.cfg.Log.Info("vpn: peers changed", "peers", len(peers))
	return nil
}

// Listen returns a TCP listener on the unit's tunnel address: reachable
// only by peers, through the tunnel, and not on any host interface.
func (t *Tunnel) Listen(port uint16) (net.Listener, error) {
	l, err := t.net.ListenTCPAddrPort(netip.AddrPortFrom(t.cfg.Net.Addr(), port))
	if err != nil {
		return nil, fmt.Errorf("vpn: listen %s port %d in the tunnel: %w", t.cfg.Net.Addr(), port, err)
	}
	return l, nil
}

// Addr is the unit's tunnel address.
func (t *Tunnel) Addr() netip.Addr { return t.cfg.Net.Addr() }

// Prefix is the tunnel's prefix, where peers' addresses come from.
func (t *Tunnel) Prefix() netip.Prefix { return t.cfg.Net.Masked() }

// PublicKey is the unit's WireGuard public key.
func (t *Tunnel) PublicKey() Key { return t.pub }

// UDPAddr is the bound WireGuard UDP address ("" once closed).
func (t *Tunnel) UDPAddr() string {
	if a := t.bind.localAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Peers is how many peers are in force.
func (t *Tunnel) Peers() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.peers
}

// Close stops the reload and takes the interface down: the UDP port
// closes and every connection in the tunnel ends.
func (t *Tunnel) Close() error {
	t.once.Do(func() {
		t.stop()
		<-t.done
		t.dev.Close()
	})
	return nil
}
