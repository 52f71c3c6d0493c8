package audit

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// TestExportTLS: a tls:// collector gets octet-counted RFC 5424 messages
// (RFC 5425) over a verified connection, the record then the checkpoint.
func TestExportTLS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "collector"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 4)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			var n int
			if _, err := fmt.Fscanf(r, "%d ", &n); err != nil {
				return
			}
			b := make([]byte, n)
			if _, err := r.Read(b); err != nil {
				return
			}
			got <- string(b)
		}
	}()

	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	akey, _ := LoadKey(dir)
	rec := New(Config{}, st, akey, nil, slog.New(slog.DiscardHandler))
	rec.Record(Event{Type: Ban, Source: "203.0.113.7", Detail: "scanner"})
	rec.Flush(ctx)
	cs, err := ParseCollectors("tls://" + l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	e := NewExporter(cs[0], st, rec, akey.Public().(ed25519.PublicKey), roots, slog.New(slog.DiscardHandler))
	if err := e.send(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sekisho - ban [sekisho@32473 seq=\"1\"", "sekisho - checkpoint [sekisho-checkpoint@32473 size=\"1\""} {
		select {
		case m := <-got:
			if !strings.HasPrefix(m, "<108>1 ") && !strings.HasPrefix(m, "<109>1 ") || !strings.Contains(m, want) {
				t.Errorf("message %q, want %q", m, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no message %q", want)
		}
	}
	if _, err := ParseCollectors("http://x:1"); err == nil {
		t.Error("an http:// collector was accepted")
	}
}
