package centre

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/wire"
)

// PGEnv names the environment variable holding a PostgreSQL DSN for the
// tests; unset, only SQLite is tested.
const PGEnv = "SEKISHO_TEST_PG"

type backend struct {
	name string
	open func(t *testing.T) *Store
}

// backends are the stores every store test runs on: SQLite always,
// PostgreSQL when SEKISHO_TEST_PG holds a DSN.
func backends(t *testing.T) []backend {
	bs := []backend{{SQLite, func(t *testing.T) *Store {
		st, err := OpenStore(t.Context(), t.TempDir(), "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}}}
	dsn := os.Getenv(PGEnv)
	if dsn == "" {
		t.Logf("PostgreSQL not tested: set %s to a DSN such as postgres://sekisho:sekisho@127.0.0.1:5432/sekisho_test?sslmode=disable (scripts/test.sh does)", PGEnv)
		return bs
	}
	return append(bs, backend{Postgres, func(t *testing.T) *Store {
		return openPG(t, pgSchemaDSN(t, dsn))
	}})
}

func openPG(t *testing.T, dsn string) *Store {
	t.Helper()
	st, err := OpenStore(t.Context(), t.TempDir(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// pgSchemaDSN makes a schema of the test's own and returns dsn with its
// search_path set to it: runs (and tests) never see each other's
// tables. The schema is dropped when the test ends.
func pgSchemaDSN(t *testing.T, dsn string) string {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := make([]byte, 6)
	rand.Read(b)
	schema := "sekisho_t_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("%s: create schema: %v", PGEnv, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// eachBackend runs f as a subtest on each backend.
func eachBackend(t *testing.T, f func(t *testing.T, st *Store)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { f(t, b.open(t)) })
	}
}

// testCentre is a centre serving on 127.0.0.1 over real TLS.
type testCentre struct {
	*Server
	st   *Store
	keys *Keys
	url  string
	dir  string
}

func startCentre(t *testing.T, st *Store, mod func(*Config)) *testCentre {
	t.Helper()
	dir := t.TempDir()
	keys, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Data: dir, Listen: ln.Addr().String(), PollEvery: 50 * time.Millisecond, PingEvery: 2 * time.Second,
		HelloWithin: 2 * time.Second, Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(st, keys, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the centre did not stop within 10 s")
		}
	})
	return &testCentre{Server: s, st: st, keys: keys, url: "https://" + ln.Addr().String(), dir: dir}
}

// testWriter sends the centre's log to the test's, while it runs.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	defer func() { recover() }() // a log line after the test ended
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (c *testCentre) token(t *testing.T, group string, valid time.Duration) string {
	t.Helper()
	tok, _, err := NewToken(t.Context(), c.st, c.keys, group, valid)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// pinned trusts only the CA whose certificate hashes to the token's
// fingerprint, found in the chain the centre presents: what a unit does
// before it sends its token.
func pinned(t *testing.T, tok string) *tls.Config {
	_, fp, ok := strings.Cut(tok, ".")
	if !ok {
		t.Fatalf("token %q has no fingerprint", tok)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, VerifyConnection: func(cs tls.ConnectionState) error {
		for _, c := range cs.PeerCertificates {
			if sum := sha256.Sum256(c.Raw); hex.EncodeToString(sum[:]) == fp {
				pool := x509.NewCertPool()
				pool.AddCert(c)
				_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"})
				return err
			}
		}
		return errors.New("the centre did not present the pinned CA")
	}}
}

// testUnit is a simulated unit: its key, and what enrolment gave it.
type testUnit struct {
	id        string
	key       *ecdsa.PrivateKey
	cert      tls.Certificate
	roots     *x509.CertPool
	bundleKey ed25519.PublicKey
	centre    string
}

func newCSR(t *testing.T, key *ecdsa.PrivateKey, cn string) []byte {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// post sends an enrolment as a unit does (the token's secret only).
func postEnrol(t *testing.T, c *testCentre, tok string, req wire.Enrol) (*http.Response, []byte) {
	t.Helper()
	body, _ := json.Marshal(req)
	tr := &http.Transport{TLSClientConfig: pinned(t, tok), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Post(c.url+wire.EnrolPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// enrol enrols a unit called name with tok, failing the test if refused.
func enrol(t *testing.T, c *testCentre, tok, name string) *testUnit {
	t.Helper()
	u, err := tryEnrol(t, c, tok, name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func tryEnrol(t *testing.T, c *testCentre, tok, name string) (*testUnit, error) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	secret, _, _ := strings.Cut(tok, ".")
	res, b := postEnrol(t, c, tok, wire.Enrol{Token: secret, Name: name, Version: "test", CSR: newCSR(t, key, name)})
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("enrol: %s: %s", res.Status, strings.TrimSpace(string(b)))
	}
	var got wire.Enrolled
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	cert, err := tls.X509KeyPair(got.Cert, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	if err != nil {
		t.Fatalf("the issued certificate is not for the unit's key: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(got.CA) {
		t.Fatal("no CA in the answer")
	}
	pub, err := hex.DecodeString(got.BundleKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		t.Fatalf("bundle key %q", got.BundleKey)
	}
	return &testUnit{id: got.UnitID, key: key, cert: cert, roots: roots, bundleKey: pub, centre: c.url}, nil
}

// testStream is one unit's open stream.
type testStream struct {
	t      *testing.T
	u      *testUnit
	msgs   chan wire.Message // the centre's lines, closed when its side ends
	mu     sync.Mutex
	enc    *json.Encoder
	pw     *io.PipeWriter
	cancel context.CancelFunc
	tr     *http.Transport
	proto  int
}

// errRefused carries the HTTP status of a refused stream.
type errRefused struct {
	code int
	body string
}

func (e errRefused) Error() string { return fmt.Sprintf("stream refused: %d %s", e.code, e.body) }

// connect opens the unit's stream over mutual TLS and HTTP/2 and sends
// its Hello.
func (u *testUnit) connect(t *testing.T, hello wire.Hello) (*testStream, error) {
	t.Helper()
	return u.connectFirst(t, &wire.Message{Type: wire.TypeHello, Hello: &hello})
}

// connectFirst opens the stream and sends first (nil: nothing).
func (u *testUnit) connectFirst(t *testing.T, first *wire.Message) (*testStream, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{u.cert}, RootCAs: u.roots, ServerName: "127.0.0.1"}}
	s := &testStream{t: t, u: u, msgs: make(chan wire.Message, 64), enc: json.NewEncoder(pw), pw: pw, cancel: cancel, tr: tr}
	if first != nil {
		go s.send(*first)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u.centre+wire.StreamPath, pr)
	req.Header.Set("Content-Type", "application/x-ndjson")
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		s.close()
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		s.close()
		return nil, errRefused{res.StatusCode, strings.TrimSpace(string(b))}
	}
	s.proto = res.ProtoMajor
	go func() {
		defer close(s.msgs)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			var m wire.Message
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("a line from the centre: %v", err)
				return
			}
			s.msgs <- m
		}
	}()
	t.Cleanup(s.close)
	return s, nil
}

func (u *testUnit) mustConnect(t *testing.T, applied uint64) *testStream {
	t.Helper()
	s, err := u.connect(t, wire.Hello{Version: "test", Applied: applied})
	if err != nil {
		t.Fatal(err)
	}
	if s.proto != 2 {
		t.Fatalf("stream over HTTP/%d, want HTTP/2", s.proto)
	}
	return s
}

func (s *testStream) send(m wire.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enc.Encode(m) // an error: the stream is closed, which the test sees
}

func (s *testStream) close() {
	s.cancel()
	s.pw.Close()
	s.tr.CloseIdleConnections()
}

// next returns the centre's next message other than a ping; ok is false
// if the stream ended or nothing came within d.
func (s *testStream) next(d time.Duration) (m wire.Message, ok bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case m, ok = <-s.msgs:
			if ok && m.Type == wire.TypePing {
				continue
			}
			return m, ok
		case <-timer.C:
			return m, false
		}
	}
}

// expect fails the test unless the next message is of type typ.
func (s *testStream) expect(typ string) wire.Message {
	s.t.Helper()
	m, ok := s.next(5 * time.Second)
	if !ok {
		s.t.Fatalf("unit %s: no %s message: the stream ended or was silent", s.u.id, typ)
	}
	if m.Type != typ {
		s.t.Fatalf("unit %s: got a %s message, want %s", s.u.id, m.Type, typ)
	}
	return m
}

// expectBundle reads a bundle, verifies it with the pinned key, checks
// its seq, and acknowledges it as applied.
func (s *testStream) expectBundle(seq uint64) wire.Bundle {
	s.t.Helper()
	m := s.expect(wire.TypeBundle)
	b, err := m.Bundle.Verify(s.u.bundleKey)
	if err != nil {
		s.t.Fatalf("unit %s: bundle does not verify: %v", s.u.id, err)
	}
	if b.Seq != seq {
		s.t.Fatalf("unit %s: got bundle %d, want %d", s.u.id, b.Seq, seq)
	}
	s.send(wire.Message{Type: wire.TypeAck, Ack: &wire.Ack{Seq: b.Seq, Hash: m.Bundle.Hash(), OK: true}})
	return b
}

// quiet fails the test if a message other than a ping comes within d.
func (s *testStream) quiet(d time.Duration) {
	s.t.Helper()
	if m, ok := s.next(d); ok {
		s.t.Fatalf("unit %s: unexpected %s message", s.u.id, m.Type)
	}
}

// ended fails the test unless the centre ends the stream within d.
func (s *testStream) ended(d time.Duration) {
	s.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case _, ok := <-s.msgs:
			if !ok {
				return
			}
		case <-deadline:
			s.t.Fatalf("unit %s: the stream is still open after %v", s.u.id, d)
		}
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func parsePEMCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
