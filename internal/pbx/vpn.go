package pbx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/sekisho/sekisho/internal/console"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/vpn"
)

// VPNConsolePort is the console's port inside the tunnel: plain
// https://10.77.0.1/ for the vendor. It needs no privilege: the port is
// in the process's own TCP/IP stack, not the host's.
const VPNConsolePort = 443

// startVPN serves the console inside the console's WireGuard interface
// when --vpn-listen is set: the same console (code, store, evidence log)
// over HTTPS on the unit's tunnel address, reachable only by the peers in
// the store. cc is the console's configuration and tmpl its HTTP server,
// whose limits the tunnel's server copies. It returns the stop function.
func (s *Server) startVPN(ctx context.Context, cc console.Config, tmpl *http.Server) (func(), error) {
	// `sekisho vpn add-peer` prints what the server really uses.
	if err := s.store.SetSetting(ctx, store.SettingVPNListen, s.cfg.VPNListen); err != nil {
		return nil, err
	}
	if s.cfg.VPNListen == "" {
		s.log.Info("vpn: off (--vpn-listen is empty); the console is reachable only at its own address")
		return func() {}, nil
	}
	prefix, err := s.cfg.VPNPrefix()
	if err != nil {
		return nil, err
	}
	// Secure cookies need HTTPS to a non-loopback address. The unit's
	// certificate: made here on first start if SIP over TLS did not make
	// it already (then for the tunnel address, which the browser sees).
	cert, err := serverCert(s.cfg.Data, s.cfg.TLSCert, s.cfg.TLSKey, prefix.Addr().String())
	if err != nil {
		return nil, err
	}
	tun, err := vpn.Start(ctx, vpn.Config{Dir: s.cfg.Data, Listen: s.cfg.VPNListen, Net: prefix, Peers: s.store, Log: s.log})
	if err != nil {
		return nil, fmt.Errorf("pbx: %w (set --vpn-listen to a free UDP port, or to \"\" for no VPN)", err)
	}
	ok := false
	defer func() {
		if !ok {
			tun.Close()
		}
	}()
	listen := s.cfg.VPNListen
	if h, p, _ := net.SplitHostPort(listen); p == "0" {
		// Asked for any port: record the one bound.
		_, bound, _ := net.SplitHostPort(tun.UDPAddr())
		listen = net.JoinHostPort(h, bound)
	}
	for k, v := range map[string]string{store.SettingVPNListen: listen, store.SettingVPNNet: prefix.String(),
		store.SettingVPNTLSCert: s.cfg.TLSCert, store.SettingVPNTLSKey: s.cfg.TLSKey} {
		if err := s.store.SetSetting(ctx, k, v); err != nil {
			return nil, err
		}
	}
	l, err := tun.Listen(VPNConsolePort)
	if err != nil {
		return nil, err
	}
	// The tunnel's prefix is allowed on this listener only: on the
	// console's own listener an address in it would be a stranger on the
	// LAN using the same range. Inside the tunnel a peer can send only
	// from its own /32 (WireGuard drops anything else), so the console
	// sees the peer's real tunnel address.
	cc.AdminNetworks = append(slices.Clone(cc.AdminNetworks), tun.Prefix())
	srv := &http.Server{Handler: console.New(cc),
		ReadHeaderTimeout: tmpl.ReadHeaderTimeout, ReadTimeout: tmpl.ReadTimeout, WriteTimeout: tmpl.WriteTimeout,
		IdleTimeout: tmpl.IdleTimeout, MaxHeaderBytes: tmpl.MaxHeaderBytes,
		// Failed TLS handshakes from peers are the server's business,
		// at debug level, not lines on stderr.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := srv.Serve(tls.NewListener(l, tlsConfig(cert))); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("vpn: console stopped", "err", err)
		}
	}()
	ok = true
	fp := ""
	if len(cert.Certificate) > 0 {
		fp = vpn.Fingerprint(cert.Certificate[0])
	}
	s.log.Info("vpn: console listening in the tunnel", "url", "https://"+tun.Addr().String()+"/",
		"tunnel", prefix.String(), "udp", tun.UDPAddr(), "public_key", tun.PublicKey().String(),
		"peers", tun.Peers(), "tls_sha256", fp, "add_peer", "sekisho vpn add-peer NAME --pubkey KEY")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		tun.Close()
	}, nil
}

// ConsoleCertificate returns the certificate the console serves in the
// VPN: certFile and keyFile if given (--tls-cert, --tls-key), else
// DATA/tls.crt, made now if it does not exist yet, by the same function
// the server uses (host is the name it is made for). `sekisho vpn
// add-peer` prints its fingerprint.
func ConsoleCertificate(dir, certFile, keyFile, host string) (tls.Certificate, error) {
	return serverCert(dir, certFile, keyFile, host)
}
