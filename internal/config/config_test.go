package config

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.SIPUDP != "0.0.0.0:5060" || c.SIPTCP != "0.0.0.0:5060" || c.Region != "JP" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestValidateNamesField(t *testing.T) {
	tests := []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.SIPUDP = "5060" }, "sip-udp"},
		{func(c *Config) { c.SIPTCP = "example.com:5060" }, "sip-tcp"},
		{func(c *Config) { c.RTPPorts = "20000-10000" }, "rtp-ports"},
		{func(c *Config) { c.Region = "japan" }, "region"},
		{func(c *Config) { c.Realm = `a"b` }, "realm"},
		{func(c *Config) { c.RingTimeout = 0 }, "ring-timeout"},
		{func(c *Config) { c.UDPBuffer = 10 }, "udp-buffer"},
		{func(c *Config) { c.LogLevel = "loud" }, "log-level"},
		{func(c *Config) { c.Data = "" }, "data"},
		{func(c *Config) { c.SIPUDP, c.SIPTCP = "", "" }, "sip-udp and sip-tcp"},
		{func(c *Config) { c.VPNListen = "51820" }, "vpn-listen"},
		{func(c *Config) { c.VPNNet = "10.77.0.1" }, "vpn-net"},
		{func(c *Config) { c.VPNNet = "fd00::1/64" }, "vpn-net"},
		{func(c *Config) { c.VPNNet = "10.77.0.0/24" }, "vpn-net"},
		{func(c *Config) { c.VPNNet = "10.77.0.255/24" }, "vpn-net"},
		{func(c *Config) { c.VPNNet = "10.77.0.1/31" }, "vpn-net"},
		{func(c *Config) { c.VPNNet = "127.0.0.1/24" }, "vpn-net"},
		{func(c *Config) { c.MemoryLimit = "lots" }, "memory-limit"},
		{func(c *Config) { c.MemoryLimit = "2048" }, "memory-limit"},
		{func(c *Config) { c.MemoryLimit = "64MiB" }, "memory-limit"},
		{func(c *Config) { c.MemoryLimit = "-1GiB" }, "memory-limit"},
		{func(c *Config) { c.PprofListen = "0.0.0.0:6060" }, "pprof-listen"},
		{func(c *Config) { c.PprofListen = ":6060" }, "pprof-listen"},
		{func(c *Config) { c.PprofListen = "192.168.1.2:6060" }, "pprof-listen"},
		{func(c *Config) { c.PprofListen = "localhost" }, "pprof-listen"},
	}
	for _, tt := range tests {
		c := Default()
		tt.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("want error naming %q, got %v", tt.want, err)
		}
	}
}

func TestMemoryLimitAndPprof(t *testing.T) {
	tests := []struct {
		in   string
		n    int64
		auto bool
	}{
		{"auto", 0, true},
		{"off", 0, false},
		{"128MiB", 128 << 20, false},
		{"1536MiB", 1536 << 20, false},
		{"2GiB", 2 << 30, false},
	}
	for _, tt := range tests {
		c := Default()
		c.MemoryLimit = tt.in
		n, auto, err := c.MemoryLimitBytes()
		if err != nil || n != tt.n || auto != tt.auto {
			t.Errorf("%q: got %d %v %v, want %d %v", tt.in, n, auto, err, tt.n, tt.auto)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%q: %v", tt.in, err)
		}
	}
	if Default().PprofListen != "" {
		t.Fatal("pprof must be off by default")
	}
	for _, a := range []string{"127.0.0.1:6060", "[::1]:6060", "127.0.0.5:0"} {
		c := Default()
		c.PprofListen = a
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
}

func TestVPNConfig(t *testing.T) {
	c := Default()
	if c.VPNListen != ":51820" || c.VPNNet != "10.77.0.1/24" {
		t.Fatalf("vpn defaults: %q %q", c.VPNListen, c.VPNNet)
	}
	p, err := c.VPNPrefix()
	if err != nil || p.String() != "10.77.0.1/24" {
		t.Fatalf("vpn prefix %v %v", p, err)
	}
	c.VPNListen = "" // no VPN
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.VPNNet = "192.168.50.9/30"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadAndFlags(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.json")
	os.WriteFile(p, []byte(`{"sip-udp": "127.0.0.1:5070", "ring-timeout": "10s"}`), 0o600)
	c := Default()
	if err := c.Load(p); err != nil {
		t.Fatal(err)
	}
	if c.SIPUDP != "127.0.0.1:5070" || time.Duration(c.RingTimeout) != 10*time.Second {
		t.Fatalf("loaded: %+v", c)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Bind(fs)
	if err := fs.Parse([]string{"--ring-timeout", "5s"}); err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.RingTimeout) != 5*time.Second {
		t.Fatal("flag did not override")
	}

	os.WriteFile(p, []byte(`{"sip_udp": "x"}`), 0o600)
	d := Default()
	if err := d.Load(p); err == nil || !strings.Contains(err.Error(), "sip_udp") {
		t.Fatalf("unknown key: %v", err)
	}
	os.WriteFile(p, []byte(`{"udp-buffer": "big"}`), 0o600)
	if err := d.Load(p); err == nil || !strings.Contains(err.Error(), "udp-buffer") {
		t.Fatalf("bad type: %v", err)
	}
}
