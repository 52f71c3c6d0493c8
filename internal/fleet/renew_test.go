package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/centre"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/wire"
)

// TestRenewal runs the real centre: a unit whose certificate is due gets
// a new one for the same key over its stream, saves it and connects with
// it; from then on the old certificate opens nothing.
func TestRenewal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cdir := t.TempDir()
	cst, err := centre.OpenStore(ctx, cdir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cst.Close()
	keys, err := centre.LoadKeys(cdir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := centre.New(cst, keys, centre.Config{Data: cdir, Name: "127.0.0.1", Listen: ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()
	url := "https://" + ln.Addr().String()

	tok, _, err := centre.NewToken(ctx, cst, keys, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	j, err := Join(ctx, dir, url, tok, "office", "test")
	if err != nil {
		t.Fatal(err)
	}
	oldCert, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	run := func(renewBefore time.Duration) (*Link, context.CancelFunc) {
		l, err := New(Config{Dir: dir, Store: st, Version: "test", RenewBefore: renewBefore})
		if err != nil {
			t.Fatal(err)
		}
		lctx, lcancel := context.WithCancel(ctx)
		go l.Run(lctx)
		return l, lcancel
	}
	// Two years before expiry: a one-year certificate is due at once.
	_, stop := run(2 * 365 * 24 * time.Hour)
	waitFor(t, "a renewed certificate saved", func() bool {
		now, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
		return string(now) != string(oldCert)
	})
	stop()
	_, _, err = Load(dir)
	if err != nil {
		t.Fatalf("after renewal: %v", err)
	}
	// Back with the new certificate (and no renewal due).
	l, stop := run(time.Hour)
	waitFor(t, "connected with the new certificate", l.Online)
	waitFor(t, "the old certificate forgotten", func() bool { fp, _ := cst.PrevFingerprint(ctx, j.UnitID); return fp == "" })
	stop()

	// The old certificate, presented by whoever kept a copy, is refused.
	var old Joined
	if err := jsonUnmarshalFile(oldCert, &old); err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	oldPair, err := tls.X509KeyPair([]byte(old.Cert), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(old.CA))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{oldPair}, RootCAs: pool, ServerName: "127.0.0.1"}}}
	res, err := client.Post(url+wire.StreamPath, "application/x-ndjson", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("the replaced certificate opened a stream: %s", res.Status)
	}
}

func jsonUnmarshalFile(b []byte, v any) error { return json.Unmarshal(b, v) }
