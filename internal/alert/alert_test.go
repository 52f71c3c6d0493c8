package alert

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// TestDeliveryRetriesUntilTaken: an alert raised while the receiver fails
// is kept and delivered once it recovers, signed, and marked delivered;
// the webhook's secret path never appears in what is recorded.
func TestDeliveryRetriesUntilTaken(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, err := LoadKey(st.Dir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	fail := 2
	var got []Payload
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if fail > 0 {
			fail--
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get(SignatureHeader) != Sign(key, body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p Payload
		json.Unmarshal(body, &p)
		got = append(got, p)
	}))
	defer srv.Close()
	hook := srv.URL + "/hooks/SECRET-TOKEN"
	n := New(st, []string{hook}, key, "office", slog.New(slog.DiscardHandler))
	go n.Run(ctx)
	if err := n.Raise(ctx, "suspended", "extension 201", "intl-per-minute exceeded"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		as, _ := st.Alerts(ctx, 10)
		if len(as) == 1 && !as[0].Delivered.IsZero() {
			if as[0].Attempts != 3 {
				t.Errorf("attempts %d, want 3 (two failures, then delivery)", as[0].Attempts)
			}
			break
		}
		if len(as) == 1 && strings.Contains(as[0].LastError, "SECRET") {
			t.Fatalf("the webhook's secret path was recorded: %q", as[0].LastError)
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert never delivered: %+v", as)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Kind != "suspended" || got[0].Subject != "extension 201" || got[0].Unit != "office" || got[0].ID == 0 {
		t.Fatalf("receiver got %+v", got)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadKey(dir)
	if err != nil || len(k1) != 32 {
		t.Fatal(k1, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, KeyFile))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode().Perm())
	}
	k2, _ := LoadKey(dir)
	if string(k1) != string(k2) {
		t.Error("key changed between loads")
	}
	os.WriteFile(filepath.Join(dir, KeyFile), []byte("short"), 0o600)
	if _, err := LoadKey(dir); err == nil {
		t.Error("a bad key file was accepted")
	}
	if w := Where("https://hooks.example/services/T0/B0/XYZ?token=1"); w != "https://hooks.example" {
		t.Errorf("Where = %q", w)
	}
}
