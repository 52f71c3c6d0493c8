package centre

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/alert"
	"github.com/sekisho/sekisho/internal/wire"
)

// eachCentre runs f on a centre over each backend.
func eachCentre(t *testing.T, mod func(*Config), f func(t *testing.T, c *testCentre)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { f(t, startCentre(t, b.open(t), mod)) })
	}
}

func TestHealthAndStreamNeedsCertificate(t *testing.T) {
	eachCentre(t, nil, func(t *testing.T, c *testCentre) {
		tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: pinned(t, c.token(t, "", time.Hour))}
		defer tr.CloseIdleConnections()
		cl := &http.Client{Transport: tr}
		res, err := cl.Get(c.url + HealthPath)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 || res.TLS.Version != tls.VersionTLS13 {
			t.Fatalf("health: %s over HTTP/%d, TLS %x", res.Status, res.ProtoMajor, res.TLS.Version)
		}
		res, err = cl.Post(c.url+wire.StreamPath, "application/x-ndjson", strings.NewReader(`{"type":"hello","hello":{}}`+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a stream without a client certificate: %s, want 401", res.Status)
		}
	})
}

func TestEnrolTwoUnitsTokenOnceAndExpiry(t *testing.T) {
	eachCentre(t, nil, func(t *testing.T, c *testCentre) {
		tok1, tok2 := c.token(t, "", time.Hour), c.token(t, "", time.Hour)
		a, b := enrol(t, c, tok1, "Tokyo office"), enrol(t, c, tok2, "Osaka office")
		if a.id == b.id || !strings.HasPrefix(a.id, "u-") {
			t.Fatalf("unit ids %q and %q", a.id, b.id)
		}
		for _, u := range []*testUnit{a, b} {
			leaf := u.cert.Leaf
			life := time.Until(leaf.NotAfter)
			if leaf.Subject.CommonName != u.id || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth ||
				life < 364*24*time.Hour || life > 366*24*time.Hour {
				t.Fatalf("unit certificate: CN %q, EKU %v, valid for %v", leaf.Subject.CommonName, leaf.ExtKeyUsage, life)
			}
			row, err := c.st.Unit(t.Context(), u.id)
			if err != nil || row.CertFingerprint != CertFingerprint(leaf.Raw) {
				t.Fatalf("stored unit %+v, %v", row, err)
			}
		}
		// Each token is good once.
		if _, err := tryEnrol(t, c, tok1, "again"); err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("a used token: %v, want 403", err)
		}
		// A token past its time is refused.
		short := c.token(t, "", 100*time.Millisecond)
		time.Sleep(200 * time.Millisecond)
		if _, err := tryEnrol(t, c, short, "late"); err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("an expired token: %v, want 403", err)
		}
		// The whole token is accepted too, but only with this centre's
		// CA fingerprint in it.
		whole := c.token(t, "", time.Hour)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		secret, _, _ := strings.Cut(whole, ".")
		res, body := postEnrol(t, c, whole, wire.Enrol{Token: secret + "." + strings.Repeat("0", 64), CSR: newCSR(t, key, "x")})
		if res.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "another centre") {
			t.Fatalf("a token for another centre: %s %s", res.Status, body)
		}
		if res, body := postEnrol(t, c, whole, wire.Enrol{Token: whole, CSR: newCSR(t, key, "x")}); res.StatusCode != http.StatusOK {
			t.Fatalf("the whole token: %s %s", res.Status, body)
		}
		us, _ := c.st.Units(t.Context())
		if len(us) != 3 {
			t.Fatalf("%d units, want 3", len(us))
		}
	})
}

func TestEnrolBadCSRRefusedTokenKept(t *testing.T) {
	eachCentre(t, nil, func(t *testing.T, c *testCentre) {
		tok := c.token(t, "", time.Hour)
		secret, _, _ := strings.Cut(tok, ".")
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr := newCSR(t, key, "x")
		blk, _ := pem.Decode(csr)
		blk.Bytes[len(blk.Bytes)-3] ^= 0xff // breaks the signature
		bad := pem.EncodeToMemory(blk)
		for name, b := range map[string][]byte{"broken signature": bad, "not PEM": []byte("hello"), "a certificate": c.keys.CAPEM()} {
			res, body := postEnrol(t, c, tok, wire.Enrol{Token: secret, CSR: b})
			if res.StatusCode != http.StatusBadRequest {
				t.Fatalf("%s: %s %s, want 400", name, res.Status, body)
			}
		}
		if us, _ := c.st.Units(t.Context()); len(us) != 0 {
			t.Fatalf("%d units after bad requests", len(us))
		}
		enrol(t, c, tok, "good at last") // the token was not used up
	})
}

func TestPushReachesEveryUnitAndCoverage(t *testing.T) {
	eachCentre(t, nil, func(t *testing.T, c *testCentre) {
		a, b := enrol(t, c, c.token(t, "", time.Hour), "a"), enrol(t, c, c.token(t, "", time.Hour), "b")
		sa, sb := a.mustConnect(t, 0), b.mustConnect(t, 0)
		sa.expect(wire.TypeSynced)
		sb.expect(wire.TypeSynced)
		waitFor(t, 2*time.Second, "both online", func() bool { return c.Online(a.id) && c.Online(b.id) })

		pushed, err := Push(t.Context(), c.st, c.keys, wire.Bundle{BlockInternational: true, Note: "fraud wave"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []*testStream{sa, sb} {
			got := s.expectBundle(pushed.Seq)
			if !got.BlockInternational || got.Note != "fraud wave" {
				t.Fatalf("bundle %+v", got)
			}
		}
		waitFor(t, 3*time.Second, "coverage 2 of 2", func() bool {
			cv, err := c.st.Coverage(t.Context(), 0)
			return err == nil && cv.Applied == 2 && cv.Total == 2 && len(cv.Stragglers) == 0
		})
		us, _ := c.st.Units(t.Context())
		for _, u := range us {
			if !u.Online || u.Applied != pushed.Seq {
				t.Fatalf("unit %s: online %v, applied %d", u.ID, u.Online, u.Applied)
			}
		}
	})
}

func TestOfflineUnitGetsNewestFirstThenSynced(t *testing.T) {
	eachCentre(t, nil, func(t *testing.T, c *testCentre) {
		a, b := enrol(t, c, c.token(t, "", time.Hour), "a"), enrol(t, c, c.token(t, "", time.Hour), "b")
		sa := a.mustConnect(t, 0)
		sa.expect(wire.TypeSynced)
		// b is away for two pushes.
		Push(t.Context(), c.st, c.keys, wire.Bundle{BlockInternational: true})
		sa.expectBundle(1)
		second, _ := Push(t.Context(), c.st, c.keys, wire.Bundle{BlockInternational: false, Note: "all clear"})
		sa.expectBundle(second.Seq)
		waitFor(t, 3*time.Second, "b the one straggler", func() bool {
			cv, err := c.st.Coverage(t.Context(), 0)
			return err == nil && cv.Applied == 1 && len(cv.Stragglers) == 1 && cv.Stragglers[0].UnitID == b.id
		})
		// Back: the newest (only) comes first thing after Hello, then synced.
		sb := b.mustConnect(t, 0)
		if got := sb.expectBundle(second.Seq); got.Note != "all clear" {
			t.Fatalf("b got %+v", got)
		}
		sb.expect(wire.TypeSynced)
		// A unit that has the newest gets only synced.
		sb.close()
		sb2 := b.mustConnect(t, second.Seq)
		sb2.expect(wire.TypeSynced)
		sb2.quiet(300 * time.Millisecond)
		waitFor(t, 3*time.Second, "coverage 2 of 2", func() bool {
			cv, err := c.st.Coverage(t.Context(), 0)
			return err == nil && cv.Applied == 2 && cv.Total == 2
		})
	})
}

func TestRevokedUnitRefusedAndCutOff(t *testing.T) {
	eachCentre(t, nil, func(t *testing.T, c *testCentre) {
		a := enrol(t, c, c.token(t, "", time.Hour), "a")
		b := enrol(t, c, c.token(t, "", time.Hour), "b")
		d := enrol(t, c, c.token(t, "", time.Hour), "d")
		sa, sb, sd := a.mustConnect(t, 0), b.mustConnect(t, 0), d.mustConnect(t, 0)
		for _, s := range []*testStream{sa, sb, sd} {
			s.expect(wire.TypeSynced)
		}
		// Revoked through this centre: b's stream ends at once.
		if err := c.Revoke(t.Context(), b.id); err != nil {
			t.Fatal(err)
		}
		sb.ended(time.Second)
		// Revoked from another process (`sekisho centre revoke`): d's
		// ends within the poll.
		if err := c.st.RevokeUnit(t.Context(), d.id, time.Now()); err != nil {
			t.Fatal(err)
		}
		sd.ended(2 * time.Second)
		// Neither can come back.
		for _, u := range []*testUnit{b, d} {
			var ref errRefused
			if _, err := u.connect(t, wire.Hello{}); !errors.As(err, &ref) || ref.code != http.StatusForbidden {
				t.Fatalf("a revoked unit reconnecting: %v, want 403", err)
			}
		}
		// a is unaffected: still connected, still gets bundles.
		if !c.Online(a.id) || c.Online(b.id) || c.Online(d.id) {
			t.Fatalf("online: a %v, b %v, d %v", c.Online(a.id), c.Online(b.id), c.Online(d.id))
		}
		p, _ := Push(t.Context(), c.st, c.keys, wire.Bundle{BlockInternational: true})
		sa.expectBundle(p.Seq)
		waitFor(t, 3*time.Second, "coverage 1 of 1 (revoked units do not count)", func() bool {
			cv, err := c.st.Coverage(t.Context(), 0)
			return err == nil && cv.Applied == 1 && cv.Total == 1
		})
	})
}

func TestCertificateNotOnRecordRefused(t *testing.T) {
	eachCentre(t, nil, func(t *testing.T, c *testCentre) {
		a := enrol(t, c, c.token(t, "", time.Hour), "a")
		// A certificate the CA really issued for a's id, but not the one
		// on record (say, a copy kept from before a re-issue).
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		certPEM, _, err := c.keys.IssueUnit(newCSR(t, key, "x"), a.id, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(key)
		other, _ := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
		impostor := *a
		impostor.cert = other
		var ref errRefused
		if _, err := impostor.connect(t, wire.Hello{}); !errors.As(err, &ref) || ref.code != http.StatusForbidden {
			t.Fatalf("a certificate not on record: %v, want 403", err)
		}
	})
}

func TestAlertKeptOnceAndWebhookSigned(t *testing.T) {
	type hit struct {
		body []byte
		sig  string
	}
	var (
		mu   sync.Mutex
		hits []hit
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		hits = append(hits, hit{b, r.Header.Get(alert.SignatureHeader)})
		if len(hits) == 1 {
			http.Error(w, "not now", http.StatusServiceUnavailable) // the first try fails: retried
		}
	}))
	defer hook.Close()
	eachCentre(t, func(c *Config) { c.Webhooks = []string{hook.URL + "/secret-path"} }, func(t *testing.T, c *testCentre) {
		mu.Lock()
		hits = nil
		mu.Unlock()
		u := enrol(t, c, c.token(t, "", time.Hour), "a")
		s := u.mustConnect(t, 0)
		s.expect(wire.TypeSynced)
		al := wire.Alert{Seq: 77, At: time.Now().UTC().Truncate(time.Second), Kind: "suspension", Subject: "201", Detail: "intl-per-minute\r\nBcc: evil", Count: 1}
		s.send(wire.Message{Type: wire.TypeAlert, Alert: &al})
		s.send(wire.Message{Type: wire.TypeAlert, Alert: &al})
		// The link drops and the unit sends it again after reconnecting.
		s.close()
		s2 := u.mustConnect(t, 0)
		s2.expect(wire.TypeSynced)
		s2.send(wire.Message{Type: wire.TypeAlert, Alert: &al})
		waitFor(t, 5*time.Second, "the webhook took the alert", func() bool {
			as, _ := c.st.Alerts(t.Context(), 10)
			return len(as) == 1 && !as[0].Delivered.IsZero()
		})
		time.Sleep(300 * time.Millisecond) // room for a wrong second delivery
		as, _ := c.st.Alerts(t.Context(), 10)
		if len(as) != 1 || as[0].UnitSeq != 77 || as[0].UnitName != "a" || strings.ContainsAny(as[0].Detail, "\r\n") {
			t.Fatalf("alerts stored: %+v", as)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(hits) != 2 {
			t.Fatalf("the webhook was called %d times, want 2 (one failure, one retry)", len(hits))
		}
		for _, h := range hits {
			if h.sig != alert.Sign(c.keys.WebhookKey, h.body) {
				t.Fatalf("signature %q does not match the body under the webhook key", h.sig)
			}
			var p Payload
			if err := json.Unmarshal(h.body, &p); err != nil || p.Unit != u.id || p.UnitSeq != 77 || p.Kind != "suspension" {
				t.Fatalf("payload %s: %v", h.body, err)
			}
		}
	})
}

func TestGroupTargeting(t *testing.T) {
	eachCentre(t, nil, func(t *testing.T, c *testCentre) {
		tokyo := enrol(t, c, c.token(t, "tokyo", time.Hour), "tokyo")
		plain := enrol(t, c, c.token(t, "", time.Hour), "plain")
		st, sp := tokyo.mustConnect(t, 0), plain.connectClaiming(t, "tokyo")
		st.expect(wire.TypeSynced)
		sp.expect(wire.TypeSynced)
		g, _ := Push(t.Context(), c.st, c.keys, wire.Bundle{Group: "tokyo", BlockInternational: true})
		st.expectBundle(g.Seq)
		// plain claimed "tokyo" in its Hello: its row says otherwise.
		sp.quiet(400 * time.Millisecond)
		waitFor(t, 3*time.Second, "coverage 1 of 1 for the group's bundle", func() bool {
			cv, err := c.st.Coverage(t.Context(), g.Seq)
			return err == nil && cv.Applied == 1 && cv.Total == 1
		})
		all, _ := Push(t.Context(), c.st, c.keys, wire.Bundle{BlockInternational: false})
		st.expectBundle(all.Seq)
		sp.expectBundle(all.Seq)
		waitFor(t, 3*time.Second, "coverage 2 of 2 for the bundle for all", func() bool {
			cv, err := c.st.Coverage(t.Context(), all.Seq)
			return err == nil && cv.Applied == 2 && cv.Total == 2
		})
	})
}

// connectClaiming connects saying group g in the Hello.
func (u *testUnit) connectClaiming(t *testing.T, g string) *testStream {
	t.Helper()
	s, err := u.connect(t, wire.Hello{Version: "test", Group: g})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStatusAndOnline(t *testing.T) {
	eachCentre(t, nil, func(t *testing.T, c *testCentre) {
		u := enrol(t, c, c.token(t, "", time.Hour), "a")
		s := u.mustConnect(t, 0)
		s.expect(wire.TypeSynced)
		s.send(wire.Message{Type: wire.TypeStatus, Status: &wire.Status{At: time.Now(), Extensions: 12, Registered: 9, Calls: 2,
			Today: []wire.CountryToday{{Country: "JP", Calls: 30}}}})
		waitFor(t, 2*time.Second, "status stored", func() bool {
			row, err := c.st.Unit(t.Context(), u.id)
			var st wire.Status
			return err == nil && row.Online && json.Unmarshal(row.Status, &st) == nil && st.Registered == 9
		})
		s.close()
		waitFor(t, 2*time.Second, "offline after the stream ends", func() bool {
			row, err := c.st.Unit(t.Context(), u.id)
			return err == nil && !row.Online && !c.Online(u.id)
		})
	})
}

func TestStreamWithoutHelloClosed(t *testing.T) {
	eachCentre(t, func(c *Config) { c.HelloWithin = 300 * time.Millisecond }, func(t *testing.T, c *testCentre) {
		u := enrol(t, c, c.token(t, "", time.Hour), "a")
		// A first message other than hello ends the stream.
		s, err := u.connectFirst(t, &wire.Message{Type: wire.TypeStatus, Status: &wire.Status{}})
		if err != nil {
			t.Fatal(err)
		}
		s.ended(2 * time.Second)
		// So does silence past HelloWithin.
		s, err = u.connectFirst(t, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.ended(2 * time.Second)
		// The same unit opening a second stream replaces the first.
		s2 := u.mustConnect(t, 0)
		s2.expect(wire.TypeSynced)
		s3 := u.mustConnect(t, 0)
		s3.expect(wire.TypeSynced)
		s2.ended(2 * time.Second)
		time.Sleep(100 * time.Millisecond)
		row, _ := c.st.Unit(t.Context(), u.id)
		if !c.Online(u.id) || !row.Online {
			t.Fatalf("the unit is not online on its new stream (hub %v, row %v)", c.Online(u.id), row.Online)
		}
	})
}
