package fleet

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/audit"
	"github.com/sekisho/sekisho/internal/policy"
	"github.com/sekisho/sekisho/internal/store"
	"github.com/sekisho/sekisho/internal/wire"
)

// fakeCentre is an in-process stand-in for the centre: a CA, a TLS
// server with HTTP/2, enrolment and a stream handler the test steers.
type fakeCentre struct {
	srv      *httptest.Server
	ca       *x509.Certificate
	caKey    *ecdsa.PrivateKey
	bundle   ed25519.PrivateKey
	enrols   atomic.Int32
	mu       sync.Mutex
	hellos   []wire.Hello
	acks     []wire.Ack
	statuses int
	alerts   []wire.Alert
	declined []wire.Declined
	tunnels  chan *wire.Conn // the unit's maintenance tunnels, as they open
	// onStream writes the centre's side after the Hello.
	onStream func(enc *json.Encoder, flush func(), h wire.Hello)
}

func newFakeCentre(t *testing.T) *fakeCentre {
	t.Helper()
	f := &fakeCentre{tunnels: make(chan *wire.Conn, 4)}
	f.caKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test centre CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &f.caKey.PublicKey, f.caKey)
	f.ca, _ = x509.ParseCertificate(der)
	_, f.bundle, _ = ed25519.GenerateKey(nil)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	stmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	sder, _ := x509.CreateCertificate(rand.Reader, stmpl, f.ca, &srvKey.PublicKey, f.caKey)
	pool := x509.NewCertPool()
	pool.AddCert(f.ca)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+wire.EnrolPath, f.enrol)
	mux.HandleFunc("POST "+wire.StreamPath, f.stream)
	mux.HandleFunc("POST "+wire.TunnelPath+"{session}", f.tunnel)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.EnableHTTP2 = true
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{sder, der}, PrivateKey: srvKey}},
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCentre) token() string {
	sum := sha256.Sum256(f.ca.Raw)
	return "secret-part." + hex.EncodeToString(sum[:])
}

func (f *fakeCentre) enrol(w http.ResponseWriter, r *http.Request) {
	f.enrols.Add(1)
	var e wire.Enrol
	json.NewDecoder(r.Body).Decode(&e)
	blk, _ := pem.Decode(e.CSR)
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if e.Token != "secret-part" || err != nil || csr.CheckSignature() != nil {
		http.Error(w, "no", http.StatusForbidden)
		return
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "unit-1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, f.ca, csr.PublicKey, f.caKey)
	json.NewEncoder(w).Encode(wire.Enrolled{UnitID: "unit-1", Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		CA: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ca.Raw}), BundleKey: hex.EncodeToString(f.bundle.Public().(ed25519.PublicKey))})
}

func (f *fakeCentre) stream(w http.ResponseWriter, r *http.Request) {
	if len(r.TLS.PeerCertificates) == 0 {
		http.Error(w, "client certificate required", http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusOK)
	flush := func() { http.NewResponseController(w).Flush() }
	flush()
	sc := bufio.NewScanner(r.Body)
	enc := json.NewEncoder(w)
	first := true
	for sc.Scan() {
		var m wire.Message
		json.Unmarshal(sc.Bytes(), &m)
		f.mu.Lock()
		switch m.Type {
		case wire.TypeHello:
			f.hellos = append(f.hellos, *m.Hello)
		case wire.TypeAck:
			f.acks = append(f.acks, *m.Ack)
		case wire.TypeStatus:
			f.statuses++
		case wire.TypeAlert:
			f.alerts = append(f.alerts, *m.Alert)
		case wire.TypeDeclined:
			f.declined = append(f.declined, *m.Declined)
		}
		on := f.onStream
		f.mu.Unlock()
		if first && m.Type == wire.TypeHello && on != nil {
			on(enc, flush, *m.Hello)
		}
		first = false
	}
}

// tunnel hands the unit's maintenance tunnel to the test, and holds
// the request open until the tunnel closes.
func (f *fakeCentre) tunnel(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	c := wire.NewConn(r.Body, w, rc.Flush, nil, wire.Addr("centre"), wire.Addr("unit"))
	f.tunnels <- c
	select {
	case <-c.Done():
	case <-r.Context().Done():
		c.Close() // before the handler ends: no write after it
	}
}

func (f *fakeCentre) sign(t *testing.T, b wire.Bundle) wire.SignedBundle {
	sb, err := wire.Sign(f.bundle, b)
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

type events struct {
	mu  sync.Mutex
	got []audit.Event
}

func (e *events) Record(ev audit.Event) { e.mu.Lock(); e.got = append(e.got, ev); e.mu.Unlock() }
func (e *events) has(typ string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.got {
		if ev.Type == typ {
			return true
		}
	}
	return false
}

func (e *events) find(typ string) *audit.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.got {
		if e.got[i].Type == typ {
			ev := e.got[i]
			return &ev
		}
	}
	return nil
}

func TestParseToken(t *testing.T) {
	if _, _, err := ParseToken("abc"); err == nil {
		t.Fatal("token without fingerprint accepted")
	}
	if _, _, err := ParseToken("abc.1234"); err == nil {
		t.Fatal("short fingerprint accepted")
	}
	sec, sum, err := ParseToken(" s." + strings.Repeat("ab", 32) + "\n")
	if err != nil || sec != "s" || len(sum) != 32 {
		t.Fatalf("%q %x %v", sec, sum, err)
	}
}

// TestJoinPinsTheCA: a token whose fingerprint is not the centre's CA
// sends nothing to the centre; the right one joins, keeps a 0600 key and
// a second join is refused until the unit leaves.
func TestJoinPinsTheCA(t *testing.T) {
	f := newFakeCentre(t)
	dir := t.TempDir()
	ctx := context.Background()
	wrong := "secret-part." + strings.Repeat("00", 32)
	if _, err := Join(ctx, dir, f.srv.URL, wrong, "office", "test"); err == nil || f.enrols.Load() != 0 {
		t.Fatalf("wrong pin: %v, enrolments %d", err, f.enrols.Load())
	}
	if _, err := Join(ctx, dir, "http://"+strings.TrimPrefix(f.srv.URL, "https://"), f.token(), "office", "test"); err == nil {
		t.Fatal("plain http accepted")
	}
	j, err := Join(ctx, dir, f.srv.URL, f.token(), "office", "test")
	if err != nil || j.UnitID != "unit-1" {
		t.Fatalf("join: %+v %v", j, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, KeyFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode().Perm())
	}
	if _, err := Join(ctx, dir, f.srv.URL, f.token(), "office", "test"); err == nil {
		t.Fatal("joined twice")
	}
	if _, _, err := Load(dir); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o644)
	if _, _, err := Load(dir); err == nil {
		t.Fatal("a key readable by others was loaded")
	}
	if err := Leave(dir); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(dir); err != ErrNotJoined {
		t.Fatalf("after leave: %v", err)
	}
}

func joined(t *testing.T, f *fakeCentre) (*Link, *store.Store, *policy.Book, *events) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := Join(ctx, dir, f.srv.URL, f.token(), "office", "test"); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	book := policy.NewBook(st)
	if err := book.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	l, err := New(Config{Dir: dir, Store: st, Policy: book, Evidence: ev, Version: "test", StatusEvery: 50 * time.Millisecond, AlertEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return l, st, book, ev
}

// TestApply: only bundles signed with the pinned key are applied, never
// an older one; the policy the gate reads changes at once.
func TestApply(t *testing.T) {
	f := newFakeCentre(t)
	l, st, book, ev := joined(t, f)
	ctx := context.Background()
	_, other, _ := ed25519.GenerateKey(nil)
	forged, _ := wire.Sign(other, wire.Bundle{Seq: 9, BlockInternational: true})
	if a := l.Apply(ctx, forged); a.OK || !ev.has(audit.BundleRefused) {
		t.Fatalf("forged bundle: %+v", a)
	}
	if b, _ := st.FleetBundle(ctx); b.Seq != 0 {
		t.Fatal("a forged bundle changed the state")
	}
	block := f.sign(t, wire.Bundle{Seq: 2, BlockInternational: true, Note: "SL wave"})
	if a := l.Apply(ctx, block); !a.OK || a.Hash != block.Hash() || a.Seq != 2 {
		t.Fatalf("block: %+v", a)
	}
	if book.Current().Freeze.Fleet != "bundle 2: SL wave" {
		t.Fatalf("the gate does not see the block: %+v", book.Current().Freeze)
	}
	if a := l.Apply(ctx, block); !a.OK {
		t.Fatalf("the same bundle again: %+v", a)
	}
	lift := f.sign(t, wire.Bundle{Seq: 1})
	if a := l.Apply(ctx, lift); a.OK {
		t.Fatalf("an older bundle that lifts the block was applied: %+v", a)
	}
	if book.Current().Freeze.Fleet == "" {
		t.Fatal("block lifted by an older bundle")
	}
}

// TestLinkSyncsBeforeCalls: on connecting, outside calls wait until the
// centre's newest bundle is applied and the centre says synced; the unit
// reports its applied bundle, acks, status and alerts.
func TestLinkSyncsBeforeCalls(t *testing.T) {
	f := newFakeCentre(t)
	l, st, book, _ := joined(t, f)
	release := make(chan struct{})
	heldDuring := make(chan string, 1)
	f.onStream = func(enc *json.Encoder, flush func(), h wire.Hello) {
		enc.Encode(wire.Message{Type: wire.TypeBundle, Bundle: ptr(f.sign(t, wire.Bundle{Seq: 3, BlockInternational: true}))})
		flush()
		<-release
		heldDuring <- l.Holding()
		enc.Encode(wire.Message{Type: wire.TypeSynced})
		flush()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)
	// Stored, then put in the gate's policy: wait for the second, which
	// must come before the centre says synced (checked below).
	waitFor(t, "bundle applied", func() bool {
		b, _ := st.FleetBundle(ctx)
		return b.Seq == 3 && book.Current().Freeze.Fleet != ""
	})
	close(release)
	if h := <-heldDuring; h == "" {
		t.Fatal("outside calls were not held before the centre said synced")
	}
	waitFor(t, "hold released", func() bool { return l.Holding() == "" })
	st.AppendAudit(ctx, []store.AuditRecord{{At: time.Now(), Type: audit.Suspension, Source: "pbx", Target: "extension 201", Count: 1,
		First: time.Now(), Last: time.Now(), Detail: "intl-per-hour exceeded"}}, audit.Hash)
	waitFor(t, "ack, status and alert", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.acks) == 1 && f.acks[0].OK && f.acks[0].Seq == 3 && f.statuses > 0 && len(f.alerts) == 1 && f.alerts[0].Kind == audit.Suspension
	})
	f.mu.Lock()
	h := f.hellos[0]
	f.mu.Unlock()
	if h.Applied != 0 || h.Version != "test" {
		t.Fatalf("hello %+v", h)
	}
}

func ptr[T any](v T) *T { return &v }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
