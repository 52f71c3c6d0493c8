package centre

import (
	"bufio"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/wire"
)

// TestAlertMailed runs the notifier against a small SMTP server on
// 127.0.0.1 (no STARTTLS offered: the mail goes plain, as configured).
func TestAlertMailed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		say := func(s string) { c.Write([]byte(s + "\r\n")) }
		say("220 test ESMTP")
		var data strings.Builder
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cmd := strings.ToUpper(strings.TrimSpace(line))
			switch {
			case strings.HasPrefix(cmd, "EHLO"):
				say("250-test")
				say("250 8BITMIME")
			case strings.HasPrefix(cmd, "DATA"):
				say("354 go on")
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if l == ".\r\n" {
						break
					}
					data.WriteString(l)
				}
				say("250 queued")
				got <- data.String()
			case strings.HasPrefix(cmd, "QUIT"):
				say("221 bye")
				return
			default:
				say("250 ok")
			}
		}
	}()
	st, err := OpenStore(t.Context(), t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.AddAlert(t.Context(), "u-1", wire.Alert{Seq: 3, At: time.Now(), Kind: "ban", Subject: "198.51.100.9", Detail: "REGISTER scan"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	n, err := NewNotifier(st, []byte("0123456789abcdef"), nil, Mail{Addr: ln.Addr().String(), From: "centre@example.jp", To: []string{"noc@example.jp"}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !n.deliver(t.Context()) {
		t.Fatal("delivery failed")
	}
	select {
	case m := <-got:
		if !strings.Contains(m, "Subject: [sekisho] u-1: ban 198.51.100.9") || !strings.Contains(m, "REGISTER scan") || !strings.Contains(m, "To: <noc@example.jp>") {
			t.Fatalf("mail:\n%s", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no mail")
	}
	if p, _ := st.PendingAlerts(t.Context(), 10); len(p) != 0 {
		t.Fatalf("%d alerts still pending after the mail went", len(p))
	}
	if _, err := NewNotifier(st, nil, nil, Mail{Addr: "relay:25", From: "centre@example.jp"}, nil); err == nil || !strings.Contains(err.Error(), "--alert-email") {
		t.Fatalf("mail without recipients: %v", err)
	}
	if _, err := NewNotifier(st, nil, []string{"ftp://hooks.example/x"}, Mail{}, nil); err == nil || strings.Contains(err.Error(), "/x") {
		t.Fatalf("a bad webhook: %v (and its path must not be shown)", err)
	}
}
