package vpn

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/sekisho/sekisho/internal/store"
)

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	k, err := LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeyFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if string(b) != k.String()+"\n" {
		t.Fatalf("key file %q is not the key in base64 on one line", b)
	}
	// Clamped as `wg genkey` does.
	if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
		t.Fatalf("key not clamped: %x", k)
	}
	again, err := LoadKey(dir)
	if err != nil || again != k {
		t.Fatalf("second load: %v, same key %v", err, again == k)
	}
	pub, err := ServerPublicKey(dir)
	if err != nil || pub != k.Public().String() {
		t.Fatalf("public key %q %v", pub, err)
	}

	// A key others can read is refused.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group/other readable key: %v", err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(dir); err == nil {
		t.Fatal("group-readable key accepted")
	}
	// A damaged key is refused, never replaced (peers hold its public key).
	os.WriteFile(path, []byte("c2hvcnQ=\n"), 0o600)
	os.Chmod(path, 0o600)
	if _, err := LoadKey(dir); err == nil || !strings.Contains(err.Error(), "32") {
		t.Fatalf("short key: %v", err)
	}
}

func TestPublicKeyRFC7748(t *testing.T) {
	// RFC 7748 section 6.1: Alice's key pair.
	var priv Key
	b, _ := hex.DecodeString("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	copy(priv[:], b)
	pub := priv.Public()
	if got := hex.EncodeToString(pub[:]); got != "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a" {
		t.Fatalf("public key %s", got)
	}
}

func TestParseKey(t *testing.T) {
	k, _ := NewPrivateKey()
	if got, err := ParseKey(" " + k.String() + "\n"); err != nil || got != k {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{"", "not base64!", "c2hvcnQ=", Key{}.String()} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func TestNextAddress(t *testing.T) {
	unit := netip.MustParsePrefix("10.77.0.1/24")
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	tests := []struct {
		unit string
		used []string
		want string
	}{
		{"10.77.0.1/24", nil, "10.77.0.2"},
		{"10.77.0.1/24", []string{"10.77.0.2", "10.77.0.3"}, "10.77.0.4"},
		{"10.77.0.1/24", []string{"10.77.0.3"}, "10.77.0.2"}, // a deleted peer's address is reused
		{"10.77.0.254/24", nil, "10.77.0.1"},                 // wraps, skipping .255 and .0
		{"10.77.0.1/30", []string{"10.77.0.2"}, ""},          // full: .0 network, .1 unit, .2 peer, .3 broadcast
		{"10.77.0.2/30", nil, "10.77.0.1"},
	}
	for _, tt := range tests {
		var used []netip.Addr
		for _, u := range tt.used {
			used = append(used, a(u))
		}
		got, err := NextAddress(netip.MustParsePrefix(tt.unit), used)
		if tt.want == "" {
			if err == nil || !strings.Contains(err.Error(), "taken") {
				t.Errorf("%s %v: got %v %v, want full", tt.unit, tt.used, got, err)
			}
			continue
		}
		if err != nil || got != a(tt.want) {
			t.Errorf("%s %v: got %v %v, want %s", tt.unit, tt.used, got, err, tt.want)
		}
	}
	// Every host address of a /24 but the unit's can be handed out, once.
	var used []netip.Addr
	for range 253 {
		n, err := NextAddress(unit, used)
		if err != nil {
			t.Fatalf("after %d: %v", len(used), err)
		}
		if n == unit.Addr() || n == a("10.77.0.0") || n == a("10.77.0.255") {
			t.Fatalf("handed out %v", n)
		}
		used = append(used, n)
	}
	if _, err := NextAddress(unit, used); err == nil {
		t.Fatal("254th peer in a /24 got an address")
	}
}

func TestPeerConfig(t *testing.T) {
	k1, _ := NewPrivateKey()
	k2, _ := NewPrivateKey()
	p1 := Peer{Name: "a", Key: k1.Public(), Address: netip.MustParseAddr("10.77.0.2")}
	p2 := Peer{Name: "b", Key: k2.Public(), Address: netip.MustParseAddr("10.77.0.3")}
	text := peerConfig([]Peer{p1, p2})
	if text != peerConfig([]Peer{p2, p1}) {
		t.Fatal("the text depends on the order of the peers")
	}
	if !strings.HasPrefix(text, "replace_peers=true\n") {
		t.Fatalf("no replace_peers first:\n%s", text)
	}
	for _, p := range []Peer{p1, p2} {
		want := fmt.Sprintf("public_key=%s\nallowed_ip=%s/32\n", hex.EncodeToString(p.Key[:]), p.Address)
		if !strings.Contains(text, want) {
			t.Fatalf("missing %q in\n%s", want, text)
		}
	}
	if peerConfig(nil) != "replace_peers=true\n" {
		t.Fatalf("no peers: %q", peerConfig(nil))
	}

	// Rows the device cannot use are left out, named.
	unit := netip.MustParsePrefix("10.77.0.1/24")
	var skipped []string
	got := peersFrom([]store.VPNPeer{
		{Name: "ok", PublicKey: k1.Public().String(), Address: "10.77.0.2"},
		{Name: "badkey", PublicKey: "xx", Address: "10.77.0.3"},
		{Name: "outside", PublicKey: k2.Public().String(), Address: "10.88.0.2"},
		{Name: "unit", PublicKey: k2.Public().String(), Address: "10.77.0.1"},
		{Name: "broadcast", PublicKey: k2.Public().String(), Address: "10.77.0.255"},
	}, unit, func(r store.VPNPeer, err error) { skipped = append(skipped, r.Name) })
	if len(got) != 1 || got[0].Name != "ok" || strings.Join(skipped, ",") != "badkey,outside,unit,broadcast" {
		t.Fatalf("usable %+v, skipped %v", got, skipped)
	}
}

func TestPeerFile(t *testing.T) {
	k, _ := NewPrivateKey()
	unit := netip.MustParsePrefix("10.77.0.1/24")
	f, err := NewPeerFile("vendor", netip.MustParseAddr("10.77.0.2"), k.Public(), unit, ":51820", "AB:CD")
	if err != nil {
		t.Fatal(err)
	}
	conf := f.WGQuick()
	for _, want := range []string{
		"[Interface]\nAddress = 10.77.0.2/32\nPrivateKey = <the peer's own private key>\n",
		"[Peer]\nPublicKey = " + k.Public().String() + "\nAllowedIPs = 10.77.0.1/32\n",
		"replace PBX-ADDRESS with",
		"Endpoint = PBX-ADDRESS:51820\nPersistentKeepalive = 25\n",
		"# Console: https://10.77.0.1/\n",
		"# AB:CD\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("missing %q in\n%s", want, conf)
		}
	}
	if !f.EndpointHostUnknown || f.ConsoleURL != "https://10.77.0.1/" {
		t.Errorf("file %+v", f)
	}
	f, err = NewPeerFile("vendor", netip.MustParseAddr("10.77.0.2"), k.Public(), unit, "192.0.2.10:51820", "AB:CD")
	if err != nil || f.EndpointHostUnknown || !strings.Contains(f.WGQuick(), "Endpoint = 192.0.2.10:51820\n") || strings.Contains(f.WGQuick(), "PBX-ADDRESS") {
		t.Errorf("named host: %v\n%s", err, f.WGQuick())
	}
	for _, bad := range []string{"51820", "1.2.3.4:0", "1.2.3.4:99999"} {
		if _, err := NewPeerFile("v", netip.MustParseAddr("10.77.0.2"), k.Public(), unit, bad, ""); err == nil {
			t.Errorf("endpoint %q accepted", bad)
		}
	}
}

func TestFingerprint(t *testing.T) {
	// SHA-256 of the empty string.
	want := "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
	if got := Fingerprint(nil); got != want {
		t.Fatalf("got %s", got)
	}
}

// peerList is a PeerSource the test edits.
type peerList struct {
	mu   sync.Mutex
	rows []store.VPNPeer
}

func (p *peerList) VPNPeers(context.Context) ([]store.VPNPeer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]store.VPNPeer(nil), p.rows...), nil
}

func (p *peerList) set(rows ...store.VPNPeer) {
	p.mu.Lock()
	p.rows = rows
	p.mu.Unlock()
}

// TestTunnel: a peer in the list reaches a listener on the unit's tunnel
// address through a second, in-process WireGuard interface; once it is
// removed from the list it no longer does; a stranger's key never does.
// All UDP stays on 127.0.0.1.
func TestTunnel(t *testing.T) {
	peerKey, _ := NewPrivateKey()
	list := &peerList{}
	list.set(store.VPNPeer{Name: "vendor", PublicKey: peerKey.Public().String(), Address: "10.77.0.2"})
	tun, err := Start(context.Background(), Config{Dir: t.TempDir(), Listen: "127.0.0.1:0", Net: netip.MustParsePrefix("10.77.0.1/24"),
		Peers: list, Reload: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	if tun.Peers() != 1 || !strings.HasPrefix(tun.UDPAddr(), "127.0.0.1:") {
		t.Fatalf("peers %d, udp %q", tun.Peers(), tun.UDPAddr())
	}
	l, err := tun.Listen(443)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello %s\n", c.RemoteAddr())
			c.Close()
		}
	}()

	dial := func(key Key, addr string, wait time.Duration) (string, error) {
		tdev, tnet, err := netstack.CreateNetTUN([]netip.Addr{netip.MustParseAddr(addr)}, nil, mtu)
		if err != nil {
			t.Fatal(err)
		}
		dev := device.NewDevice(tdev, newUDPBind("127.0.0.1:0"), device.NewLogger(device.LogLevelSilent, ""))
		defer dev.Close()
		conf := fmt.Sprintf("private_key=%s\npublic_key=%s\nendpoint=%s\nallowed_ip=10.77.0.1/32\n", key.hex(), tun.PublicKey().hex(), tun.UDPAddr())
		if err := dev.IpcSet(conf); err != nil {
			t.Fatal(err)
		}
		if err := dev.Up(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		c, err := tnet.DialContextTCPAddrPort(ctx, netip.MustParseAddrPort("10.77.0.1:443"))
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		b, err := io.ReadAll(c)
		return string(b), err
	}
	got, err := dial(peerKey, "10.77.0.2", 5*time.Second)
	if err != nil || !strings.HasPrefix(got, "hello 10.77.0.2:") {
		t.Fatalf("peer: %q %v", got, err)
	}
	stranger, _ := NewPrivateKey()
	if got, err := dial(stranger, "10.77.0.2", time.Second); err == nil {
		t.Fatalf("a stranger's key got through: %q", got)
	}
	// Removed from the list: out within a reload.
	list.set()
	deadline := time.Now().Add(5 * time.Second)
	for tun.Peers() != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got, err := dial(peerKey, "10.77.0.2", time.Second); err == nil {
		t.Fatalf("a removed peer got through: %q", got)
	}
}
