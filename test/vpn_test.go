package test

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// addPeerOut mirrors `sekisho vpn add-peer --json`.
type addPeerOut struct {
	Name                string `json:"name"`
	Address             string `json:"address"`
	ServerPublicKey     string `json:"server_public_key"`
	AllowedIPs          string `json:"allowed_ips"`
	Endpoint            string `json:"endpoint"`
	EndpointHostUnknown bool   `json:"endpoint_host_unknown"`
	PersistentKeepalive int    `json:"persistent_keepalive"`
	ConsoleURL          string `json:"console_url"`
	TLSSHA256           string `json:"tls_sha256"`
	Config              string `json:"config"`
}

// TestVPNConsole: a vendor's laptop, played by a second WireGuard
// interface with its own userspace TCP/IP stack in this process, reaches
// the console over HTTPS inside the tunnel with the configuration that
// `sekisho vpn add-peer` printed; the tunnel's service is not on any host
// port, the WireGuard port answers nothing to a stranger, and a peer
// deleted with `vpn del` is out within seconds. Every UDP packet goes
// over 127.0.0.1; the tunnel's addresses exist only inside the two
// stacks.
func TestVPNConsole(t *testing.T) {
	p := startPBX(t, withVPN)
	udp := net.JoinHostPort(p.IP, fmt.Sprint(p.VPNPort))

	// The vendor makes its key pair; the PBX only ever sees the public key.
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := base64.StdEncoding.EncodeToString(priv.PublicKey().Bytes())
	var peer addPeerOut
	out := p.run(t, "vpn", "add-peer", "vendor", "--pubkey", pub, "--json")
	if err := json.Unmarshal(out, &peer); err != nil {
		t.Fatalf("add-peer: %v\n%s", err, out)
	}
	if peer.Address != "10.77.0.2/32" || peer.AllowedIPs != "10.77.0.1/32" || peer.Endpoint != udp || peer.EndpointHostUnknown ||
		peer.ConsoleURL != "https://10.77.0.1/" || peer.PersistentKeepalive != 25 || len(peer.TLSSHA256) != 95 {
		t.Fatalf("add-peer output %+v", peer)
	}
	for _, want := range []string{"[Interface]\nAddress = 10.77.0.2/32\nPrivateKey = <", "[Peer]\nPublicKey = " + peer.ServerPublicKey + "\n",
		"Endpoint = " + udp + "\n", "https://10.77.0.1/", peer.TLSSHA256} {
		if !strings.Contains(peer.Config, want) {
			t.Errorf("add-peer config lacks %q:\n%s", want, peer.Config)
		}
	}
	if strings.Contains(string(out), base64.StdEncoding.EncodeToString(priv.Bytes())) {
		t.Fatal("the peer's private key appears in add-peer's output")
	}
	if !strings.Contains(p.Log(), peer.ServerPublicKey) {
		t.Errorf("the server did not log the public key add-peer printed")
	}
	audit := string(p.run(t, "audit", "list", "--type", "config-change", "--json"))
	if !strings.Contains(audit, `"target": "vpn add-peer"`) || !strings.Contains(audit, pub) {
		t.Errorf("add-peer is not in the evidence log:\n%s", audit)
	}

	client := vendorPeer(t, priv.Bytes(), peer, "10.77.0.2")
	get := func(timeout time.Duration) (*http.Response, []byte, error) {
		client.Timeout = timeout
		res, err := client.Get(peer.ConsoleURL + "api/me")
		if err != nil {
			return nil, nil, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res, b, err
	}
	// Within the reload (2 s) the running server takes the new peer.
	var res *http.Response
	var body []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, body, err = get(2 * time.Second)
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("console through the tunnel: %v", err)
	}
	var msg map[string]any
	if res.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &msg) != nil {
		t.Fatalf("GET /api/me through the tunnel: %d %s %q, want 401 with a JSON body", res.StatusCode, res.Header.Get("Content-Type"), body)
	}

	// The tunnel's service is on no host port: not 443 on the PBX's IP,
	// not TCP on the WireGuard port.
	for _, addr := range []string{net.JoinHostPort(p.IP, "443"), udp} {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("tcp %s accepts connections", addr)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("tcp %s: %v, want connection refused", addr, err)
		}
	}
	// The console's own listener is not the tunnel's: plain HTTP there
	// answers as before, and the SIP address answers no HTTP.
	quick := &http.Client{Timeout: 2 * time.Second}
	if res, err := quick.Get(fmt.Sprintf("http://%s/api/me", p.ConsoleAddr())); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("the console's own listener: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	if _, err := quick.Get(fmt.Sprintf("http://%s/api/me", p.SIPAddr())); err == nil {
		t.Error("the SIP address answers HTTP")
	}

	// Not an open door: datagrams that are not a handshake from a known
	// key get no answer at all.
	probe, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	junk := make([]byte, 148) // the size of a handshake initiation
	junk[0] = 1
	rand.Read(junk[4:])
	for _, d := range [][]byte{[]byte("hello\n"), junk} {
		probe.Write(d)
	}
	probe.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := probe.Read(make([]byte, 2048)); err == nil {
		t.Errorf("the WireGuard port answered a stranger with %d bytes", n)
	}

	// Deleted: out after the next reload.
	p.run(t, "vpn", "del", "vendor")
	client.Transport.(*http.Transport).CloseIdleConnections()
	deadline = time.Now().Add(10 * time.Second)
	for {
		if _, _, err := get(time.Second); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a deleted peer still reaches the console after 10 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// And it stays out, from a fresh interface too.
	if _, err := vendorPeer(t, priv.Bytes(), peer, "10.77.0.2").Get(peer.ConsoleURL + "api/me"); err == nil {
		t.Fatal("a deleted peer reached the console again")
	}
}

// vendorPeer brings up the vendor's side of the tunnel in this process
// (a netstack and a WireGuard device, configured as the wg-quick file
// says) and returns an HTTPS client that dials through it and accepts
// only the certificate whose fingerprint add-peer printed.
func vendorPeer(t *testing.T, priv []byte, peer addPeerOut, addr string) *http.Client {
	t.Helper()
	tdev, tnet, err := netstack.CreateNetTUN([]netip.Addr{netip.MustParseAddr(addr)}, nil, 1420)
	if err != nil {
		t.Fatal(err)
	}
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), device.NewLogger(device.LogLevelSilent, ""))
	t.Cleanup(dev.Close)
	serverKey, err := base64.StdEncoding.DecodeString(peer.ServerPublicKey)
	if err != nil || len(serverKey) != 32 {
		t.Fatalf("server public key %q", peer.ServerPublicKey)
	}
	if err := dev.IpcSet(fmt.Sprintf("private_key=%s\npublic_key=%s\nendpoint=%s\nallowed_ip=%s\npersistent_keepalive_interval=%d\n",
		hex.EncodeToString(priv), hex.EncodeToString(serverKey), peer.Endpoint, peer.AllowedIPs, peer.PersistentKeepalive)); err != nil {
		t.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{
		DialContext:       tnet.DialContext,
		DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{
			// The unit's certificate is self-signed: it is pinned by the
			// fingerprint add-peer printed instead.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
				if got := strings.ToUpper(hex.EncodeToString(sum[:])); got != strings.ReplaceAll(peer.TLSSHA256, ":", "") {
					return fmt.Errorf("certificate fingerprint %s, add-peer printed %s", got, peer.TLSSHA256)
				}
				return nil
			},
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * time.Second}
}
