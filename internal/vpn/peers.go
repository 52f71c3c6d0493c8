package vpn

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/sekisho/sekisho/internal/store"
)

// Peer is a peer as the device is configured with it.
type Peer struct {
	Name    string
	Key     Key        // its public key
	Address netip.Addr // its one tunnel address
}

// peersFrom turns store rows into peers. A row that cannot be used (a bad
// key, an address outside the unit's prefix or the unit's own) is left
// out and reported through skip: that peer gets no tunnel, the others do.
func peersFrom(rows []store.VPNPeer, unit netip.Prefix, skip func(store.VPNPeer, error)) []Peer {
	out := make([]Peer, 0, len(rows))
	for _, r := range rows {
		k, err := ParseKey(r.PublicKey)
		if err != nil {
			skip(r, fmt.Errorf("public key: %v", err))
			continue
		}
		a, err := netip.ParseAddr(r.Address)
		switch {
		case err != nil:
			skip(r, fmt.Errorf("address %q: not an IP address", r.Address))
			continue
		case !unit.Contains(a) || a == unit.Addr() || a == unit.Masked().Addr() || a == lastAddr(unit):
			skip(r, fmt.Errorf("address %s is not a peer's address in --vpn-net %s: delete the peer and add it again", a, unit))
			continue
		}
		out = append(out, Peer{Name: r.Name, Key: k, Address: a})
	}
	return out
}

// peerConfig is the part of wireguard-go's configuration (its UAPI text)
// that lists the peers: replace_peers first, so that a peer deleted from
// the store is removed from the device too; each peer may use its own
// /32 only. The text is the same for the same set of peers in any order,
// so comparing it tells whether the set changed.
func peerConfig(peers []Peer) string {
	sorted := append([]Peer(nil), peers...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Key.hex() < sorted[j].Key.hex() })
	var b strings.Builder
	b.WriteString("replace_peers=true\n")
	for _, p := range sorted {
		// allowed_ip is WireGuard's cryptokey routing: a packet from
		// this peer whose inner source is not its /32 is dropped, so
		// one peer cannot pose as another (or as loopback) to the
		// console, which decides by source address.
		fmt.Fprintf(&b, "public_key=%s\nallowed_ip=%s\n", p.Key.hex(), netip.PrefixFrom(p.Address, 32))
	}
	return b.String()
}

// NextAddress returns the address a new peer gets: the first one after
// the unit's address in its prefix (wrapping around) that is neither the
// unit's, nor the network or broadcast address, nor in used.
func NextAddress(unit netip.Prefix, used []netip.Addr) (netip.Addr, error) {
	if !unit.Addr().Is4() || unit.Bits() > 30 {
		return netip.Addr{}, fmt.Errorf("vpn: %s: want an IPv4 prefix of /30 or shorter", unit)
	}
	taken := make(map[netip.Addr]bool, len(used))
	for _, a := range used {
		taken[a.Unmap()] = true
	}
	first, last := unit.Masked().Addr(), lastAddr(unit)
	a := unit.Addr()
	for range 1 << (32 - unit.Bits()) {
		a = a.Next()
		if a == last || !unit.Contains(a) {
			a = first // wrap; the network address itself is skipped below
			continue
		}
		if a != unit.Addr() && !taken[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("vpn: every address in %s is taken: delete a peer, or set a larger --vpn-net", unit.Masked())
}

// lastAddr is the highest (broadcast) address of the IPv4 prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= uint32(1)<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Fingerprint is the SHA-256 fingerprint of a DER certificate as browsers
// show it: upper-case hex pairs separated by colons.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, c := range sum {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

// EndpointPlaceholder stands for the unit's address in a peer's
// configuration when --vpn-listen names no host: wg-quick refuses it, so a
// peer is never silently pointed at 0.0.0.0.
const EndpointPlaceholder = "PBX-ADDRESS"

// PeerFile is what the vendor gets for one peer: everything its wg-quick
// configuration needs except its private key, which the PBX never sees.
type PeerFile struct {
	Name            string `json:"name"`
	Address         string `json:"address"` // the peer's tunnel address, "10.77.0.2/32"
	ServerPublicKey string `json:"server_public_key"`
	AllowedIPs      string `json:"allowed_ips"` // the unit only, "10.77.0.1/32"
	Endpoint        string `json:"endpoint"`
	// EndpointHostUnknown: Endpoint's host is EndpointPlaceholder, to be
	// replaced with the unit's address as the vendor reaches it.
	EndpointHostUnknown bool   `json:"endpoint_host_unknown"`
	PersistentKeepalive int    `json:"persistent_keepalive"`
	ConsoleURL          string `json:"console_url"`
	TLSSHA256           string `json:"tls_sha256"` // the console certificate's fingerprint
}

// NewPeerFile describes the peer name at address for the unit (its
// public key and tunnel prefix), reached at endpoint (--vpn-listen, or
// the address the vendor should use), serving a certificate whose
// Fingerprint is fingerprint.
func NewPeerFile(name string, address netip.Addr, server Key, unit netip.Prefix, endpoint, fingerprint string) (PeerFile, error) {
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return PeerFile{}, fmt.Errorf("endpoint %q: want host:port", endpoint)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil || port == "0" {
		return PeerFile{}, fmt.Errorf("endpoint %q: want a port number 1-65535", endpoint)
	}
	unknown := host == ""
	if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
		unknown = true
	}
	if unknown {
		host = EndpointPlaceholder
	}
	return PeerFile{
		Name: name, Address: netip.PrefixFrom(address, 32).String(), ServerPublicKey: server.String(),
		AllowedIPs: netip.PrefixFrom(unit.Addr(), 32).String(), Endpoint: net.JoinHostPort(host, port),
		EndpointHostUnknown: unknown, PersistentKeepalive: 25,
		ConsoleURL: "https://" + unit.Addr().String() + "/", TLSSHA256: fingerprint,
	}, nil
}

// WGQuick returns the peer's configuration for wg-quick.
func (f PeerFile) WGQuick() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# sekisho console VPN, peer %q. Save as sekisho.conf, put your private key in\n", f.Name)
	b.WriteString("# (the one whose public key was given to `sekisho vpn add-peer`), then: wg-quick up ./sekisho.conf\n")
	fmt.Fprintf(&b, "# Console: %s\n", f.ConsoleURL)
	fmt.Fprintf(&b, "# Its TLS certificate's SHA-256 fingerprint (check it in the browser before logging in):\n# %s\n", f.TLSSHA256)
	b.WriteString("\n[Interface]\n")
	fmt.Fprintf(&b, "Address = %s\n", f.Address)
	b.WriteString("PrivateKey = <the peer's own private key>\n")
	b.WriteString("\n[Peer]\n")
	fmt.Fprintf(&b, "PublicKey = %s\n", f.ServerPublicKey)
	fmt.Fprintf(&b, "AllowedIPs = %s\n", f.AllowedIPs)
	if f.EndpointHostUnknown {
		fmt.Fprintf(&b, "# The PBX listens on every address: replace %s with the one you reach it at.\n", EndpointPlaceholder)
	}
	fmt.Fprintf(&b, "Endpoint = %s\n", f.Endpoint)
	fmt.Fprintf(&b, "PersistentKeepalive = %d\n", f.PersistentKeepalive)
	return b.String()
}
