package pbx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/sekisho/sekisho/internal/console"
)

// startConsole serves the console on its own listener and, on a first
// start, prints the one-time setup token. It returns the stop function.
func (s *Server) startConsole(adminNets []netip.Prefix) (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := console.Setup(ctx, s.store, time.Now())
	if err != nil {
		return nil, fmt.Errorf("pbx: console setup: %w", err)
	}
	l, err := net.Listen("tcp", s.cfg.Console)
	if err != nil {
		return nil, fmt.Errorf("pbx: listen console %s: %w", s.cfg.Console, err)
	}
	ccfg := s.consoleConfig(adminNets)
	h := console.New(ccfg)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("console: stopped", "err", err)
		}
	}()
	if tok != "" {
		// Printed once, to the terminal, never to the log: whoever
		// started the PBX sets up the first account.
		fmt.Fprintf(os.Stdout, "sekisho: no console account yet. Within an hour, create the first one at:\nhttp://%s/setup?token=%s\n", l.Addr(), tok)
	}
	s.log.Info("console: listening", "addr", l.Addr().String())
	stopVPN, err := s.startVPN(ctx, ccfg, srv) // the same console, inside the VPN
	if err != nil {
		srv.Close()
		return nil, err
	}
	return func() {
		stopVPN()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// consoleConfig is the console's wiring, for its listener, the VPN and
// the centre's maintenance sessions alike.
func (s *Server) consoleConfig(adminNets []netip.Prefix) console.Config {
	return console.Config{
		Store: s.store, Evidence: s.audit, AdminNetworks: adminNets, Log: s.log,
		Registered:         func(ext string) bool { return len(s.reg.Lookup(ext)) > 0 },
		MaintenanceAllowed: func() bool { return s.cfg.Maintenance },
		Vault:              s.vault,
		Calls:              func() int { return s.b2b.Active() },
		SIPAddress:         sipAddress(s.cfg.SIPUDP, s.cfg.SIPTCP),
	}
}

// sipAddress is where phones register, for the console's provisioning
// code: the UDP (else TCP) listen address.
func sipAddress(udp, tcp string) string {
	if udp != "" {
		return udp
	}
	return tcp
}
