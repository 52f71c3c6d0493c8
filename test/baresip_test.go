package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBaresipCall places a real call between two headless baresip phones
// registered at sekisho: 201 plays one tone, 202 auto-answers and plays
// another, and each side must hear the other's tone. Media flows through
// the PBX's relay, so this checks that the B2BUA anchors both SDP bodies in
// the relay, relays the answer and the BYE, and writes a complete call
// record with the relayed packet counts.
func TestBaresipCall(t *testing.T) {
	requireTool(t, "baresip")

	const (
		callerTone = 440.0
		calleeTone = 880.0
		// callSeconds is the length of the caller's source WAV: baresip
		// hangs up when its audio source ends, so it sets the call length.
		callSeconds = 4.0
		// toleranceHz is how far a detected tone may be from the sent one.
		toleranceHz = 5.0
	)

	// One deadline for the whole test keeps it under a minute even if a
	// phone or the server hangs; the phones are killed when it passes.
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()

	pbx := startPBX(t)
	pw201 := pbx.AddExt(t, "201")
	pw202 := pbx.AddExt(t, "202")

	media := t.TempDir()
	callerWAV := filepath.Join(media, "caller-440.wav")
	calleeWAV := filepath.Join(media, "callee-880.wav")
	if err := writeToneWAV(callerWAV, callerTone, callSeconds, 8000); err != nil {
		t.Fatal(err)
	}
	// The callee's tone outlasts the call, so that it is the caller who
	// hangs up and the record's hangup_by is predictable.
	if err := writeToneWAV(calleeWAV, calleeTone, callSeconds+20, 8000); err != nil {
		t.Fatal(err)
	}

	caller := startBaresip(ctx, t, "caller-201", "201", pw201, pbx, callerWAV)
	callee := startBaresip(ctx, t, "callee-202", "202", pw202, pbx, calleeWAV)
	caller.waitRegistered(t, 10*time.Second)
	callee.waitRegistered(t, 10*time.Second)

	target := fmt.Sprintf("sip:202@%s", pbx.SIPAddr())
	if r, err := caller.command("dial", target); err != nil || !r.OK {
		t.Fatalf("caller: dial %s: reply %+v, error %v", target, r, err)
	}

	// The caller sees the call up when the PBX relays the callee's 200; a
	// close before that is a failed call, and its reason (the SIP status)
	// is the best evidence.
	upOrDown := func(m ctrlMsg) bool {
		return m.Event && (m.Type == "CALL_ESTABLISHED" || m.Type == "CALL_CLOSED")
	}
	ev, ok := caller.waitEvent(10*time.Second, upOrDown)
	switch {
	case !ok:
		t.Fatalf("caller: call not established within 10 s")
	case ev.Type == "CALL_CLOSED":
		t.Fatalf("caller: call closed before it was answered: %q", ev.Param)
	}
	established := time.Now()
	// baresip reports an incoming call established only when the ACK for
	// its 200 arrives (RFC 3261 13.3.1.4), so this checks that the PBX
	// acknowledges the callee's answer. The test goes on either way, so
	// that one run shows every symptom.
	ev, ok = callee.waitEvent(5*time.Second, upOrDown)
	switch {
	case !ok:
		t.Errorf("callee: call not established within 5 s of the caller's: no ACK for its 200?")
	case ev.Type == "CALL_CLOSED":
		t.Errorf("callee: call closed before it was established: %q", ev.Param)
	}

	// The caller's WAV ends after callSeconds; its BYE must reach the callee.
	closed, ok := caller.waitEvent(time.Duration(callSeconds+10)*time.Second, isEvent("CALL_CLOSED"))
	if !ok {
		t.Fatalf("caller: call did not end within %.0f s of being established", callSeconds+10)
	}
	t.Logf("caller closed the call after %v: %q", time.Since(established).Round(time.Millisecond), closed.Param)
	if _, ok := callee.waitEvent(5*time.Second, isEvent("CALL_CLOSED")); !ok {
		t.Errorf("callee: never saw the call end: the caller's BYE was not relayed")
	}

	// Stop both phones so that their recorders have closed their files.
	caller.stop()
	callee.stop()

	for _, c := range []struct {
		ua   *baresipUA
		want float64
	}{
		{caller, calleeTone},
		{callee, callerTone},
	} {
		path, err := c.ua.recording()
		if err != nil {
			t.Errorf("%s: %v", c.ua.name, err)
			continue
		}
		a, err := readWAV(path)
		if err != nil {
			t.Errorf("%s: %v", c.ua.name, err)
			continue
		}
		got, secs, err := dominantFrequency(a)
		if err != nil {
			t.Errorf("%s: received audio (%.2f s recorded): %v", c.ua.name, a.Seconds(), err)
			continue
		}
		t.Logf("%s heard %.0f Hz for %.2f s (recording %.2f s)", c.ua.name, got, secs, a.Seconds())
		if math.Abs(got-c.want) > toleranceHz {
			t.Errorf("%s heard %.0f Hz, want the other side's %.0f Hz", c.ua.name, got, c.want)
		}
		if secs < callSeconds/2 {
			t.Errorf("%s heard only %.2f s of audio in a %.0f s call", c.ua.name, secs, callSeconds)
		}
	}

	rs := pbx.waitCDRs(t, "a finished call from 201", func(rs []CDR) bool {
		for _, r := range rs {
			if r.Caller == "201" && r.Ended != "" {
				return true
			}
		}
		return false
	})
	var r CDR
	for _, c := range rs {
		if c.Caller == "201" && c.Ended != "" {
			r = c
			break
		}
	}
	t.Logf("call record: %+v", r)
	// The tones above went through the PBX's relay, not phone to phone:
	// about 50 packets a second each way for the length of the call.
	if min := uint64(r.DurationMS / 20 / 2); r.PacketsAtoB < min || r.PacketsBtoA < min {
		t.Errorf("relayed packets a->b %d, b->a %d; want at least %d each way for a %d ms call", r.PacketsAtoB, r.PacketsBtoA, min, r.DurationMS)
	}
	if r.Callee != "202" {
		t.Errorf("record callee = %q, want 202", r.Callee)
	}
	if !strings.Contains(r.Dialled, "202") {
		t.Errorf("record dialled = %q, want it to hold 202", r.Dialled)
	}
	if r.ResultCode != 200 {
		t.Errorf("record result_code = %d, want 200", r.ResultCode)
	}
	if r.Answered == "" {
		t.Errorf("record answered is empty for an answered call")
	}
	if r.HangupBy != "caller" {
		t.Errorf("record hangup_by = %q, want caller (201's source ended first)", r.HangupBy)
	}
	if d := time.Duration(r.DurationMS) * time.Millisecond; d < time.Duration(callSeconds/2*float64(time.Second)) || d > 20*time.Second {
		t.Errorf("record duration = %v, want about %.0f s", d, callSeconds)
	}
}

// isEvent matches a ctrl_tcp event of the given type.
func isEvent(typ string) func(ctrlMsg) bool {
	return func(m ctrlMsg) bool { return m.Event && m.Type == typ }
}

// ctrlMsg is one message from baresip's ctrl_tcp module: either the reply to
// a command (Response) or an event (Event).
type ctrlMsg struct {
	Response bool   `json:"response"`
	OK       bool   `json:"ok"`
	Data     string `json:"data"`
	Token    string `json:"token"`
	Event    bool   `json:"event"`
	Type     string `json:"type"`
	Class    string `json:"class"`
	PeerURI  string `json:"peeruri"`
	Param    string `json:"param"`
}

// baresipUA is one headless baresip phone, registered at the PBX and driven
// through ctrl_tcp (netstring-framed JSON on a local TCP port).
type baresipUA struct {
	name     string
	dir      string // config directory; recordings go to dir/rec
	sipPort  int
	ctrlPort int
	cmd      *exec.Cmd
	out      *syncBuffer // baresip's stdout and stderr, with its SIP trace
	done     chan struct{}
	conn     net.Conn

	// mu guards msgs, notify and token.
	mu     sync.Mutex
	msgs   []ctrlMsg     // every reply and event received so far
	notify chan struct{} // closed and replaced when a message arrives
	token  int
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// portFree reports whether port is free for both TCP and UDP on ip.
func portFree(ip string, port int) bool {
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// sipPortPair returns a free port whose successor is free too: baresip
// listens on the SIP port and binds the next one for TLS.
func sipPortPair(t *testing.T, ip string) int {
	t.Helper()
	for range 50 {
		p := freePort(t, ip)
		if p < 65535 && portFree(ip, p+1) {
			return p
		}
	}
	t.Fatal("no free pair of ports")
	return 0
}

// startBaresip writes a config directory for ext and starts baresip with
// it: audio from source (8 kHz mono s16 WAV), received audio recorded by
// sndfile, no sound card, auto-answer. The process is killed when ctx ends
// or the test finishes; its log is printed if the test failed.
func startBaresip(ctx context.Context, t *testing.T, name, ext, password string, pbx *PBX, source string) *baresipUA {
	t.Helper()
	return startBaresipOver(ctx, t, "udp", name, ext, password, pbx, source)
}

// startBaresipOver is startBaresip with the account on transport "udp" or
// "tls" (to the PBX's TLS port, trusting the certificate it made).
func startBaresipOver(ctx context.Context, t *testing.T, transport, name, ext, password string, pbx *PBX, source string) *baresipUA {
	t.Helper()
	if strings.ContainsAny(password, ";>\"\n") {
		t.Fatalf("password %q cannot go into a baresip account line", password)
	}
	ua := &baresipUA{
		name:     name,
		dir:      t.TempDir(),
		sipPort:  sipPortPair(t, "127.0.0.1"),
		ctrlPort: freePort(t, "127.0.0.1"),
		out:      &syncBuffer{},
		done:     make(chan struct{}),
		notify:   make(chan struct{}),
	}
	rec := filepath.Join(ua.dir, "rec")
	if err := os.Mkdir(rec, 0o755); err != nil {
		t.Fatal(err)
	}
	config := strings.Join([]string{
		"poll_method epoll",
		fmt.Sprintf("sip_listen 127.0.0.1:%d", ua.sipPort),
		"net_interface 127.0.0.1",
		// Phones and the PBX share 127.0.0.1 here: keep the phones' RTP
		// out of the relay's range, which the relay refuses as its own.
		"rtp_ports 40000-40999",
		"call_local_timeout 30",
		"call_max_calls 2",
		"audio_player alsa,null",
		"audio_alert alsa,null",
		"audio_source aufile," + source,
		"ausrc_format s16",
		"auplay_format s16",
		"module_path /usr/lib/baresip/modules",
		"module ctrl_tcp.so",
		"module g711.so",
		"module aufile.so",
		"module sndfile.so",
		"module alsa.so",
		"module_tmp uuid.so",
		"module_tmp account.so",
		"module_app menu.so",
		fmt.Sprintf("ctrl_tcp_listen 127.0.0.1:%d", ua.ctrlPort),
		"snd_path " + rec,
		"",
	}, "\n")
	// The account registers ext at the PBX over UDP and answers at once;
	// PCMU only, so that the 8 kHz source WAV needs no resampling.
	server := pbx.SIPAddr()
	if transport == "tls" {
		server = net.JoinHostPort(pbx.IP, strconv.Itoa(pbx.TLSPort))
		config += "sip_cafile " + filepath.Join(pbx.Data, "tls.crt") + "\n"
	}
	account := fmt.Sprintf("<sip:%s@%s;transport=%s>;auth_pass=%s;answermode=auto;audio_codecs=PCMU;regint=600;mwi=no\n",
		ext, server, transport, password)
	for file, text := range map[string]string{"config": config, "accounts": account, "contacts": ""} {
		if err := os.WriteFile(filepath.Join(ua.dir, file), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// -s prints every SIP message, which is the evidence when a call fails.
	ua.cmd = exec.CommandContext(ctx, "baresip", "-f", ua.dir, "-s")
	ua.cmd.Dir = ua.dir
	ua.cmd.Stdout, ua.cmd.Stderr = ua.out, ua.out
	ua.cmd.WaitDelay = 2 * time.Second
	if err := ua.cmd.Start(); err != nil {
		t.Fatalf("%s: start baresip: %v", name, err)
	}
	go func() { ua.cmd.Wait(); close(ua.done) }()
	t.Cleanup(func() {
		ua.stop()
		if t.Failed() {
			t.Logf("%s (sip 127.0.0.1:%d) baresip log:\n%s", ua.name, ua.sipPort, ua.log())
		}
	})

	// ctrl_tcp listens shortly after start; retry until it does.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ua.ctrlPort)))
		if err == nil {
			ua.conn = c
			break
		}
		select {
		case <-ua.done:
			t.Fatalf("%s: baresip exited at start:\n%s", name, ua.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: ctrl_tcp not listening after 5 s: %v\n%s", name, err, ua.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	go ua.readCtrl()
	return ua
}

// readCtrl reads netstrings ("<len>:<json>,") from ctrl_tcp until the
// connection closes, storing each message and waking any waiter.
func (ua *baresipUA) readCtrl() {
	r := bufio.NewReader(ua.conn)
	for {
		head, err := r.ReadString(':')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(head[:len(head)-1]))
		if err != nil || n < 0 || n > 1<<20 {
			return
		}
		body := make([]byte, n+1) // the JSON and the trailing comma
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		var m ctrlMsg
		if err := json.Unmarshal(body[:n], &m); err != nil {
			continue
		}
		ua.mu.Lock()
		ua.msgs = append(ua.msgs, m)
		close(ua.notify)
		ua.notify = make(chan struct{})
		ua.mu.Unlock()
	}
}

// waitEvent waits up to timeout for a message matching match, looking at
// every message received since the phone started.
func (ua *baresipUA) waitEvent(timeout time.Duration, match func(ctrlMsg) bool) (ctrlMsg, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	seen := 0
	for {
		ua.mu.Lock()
		for _, m := range ua.msgs[seen:] {
			if match(m) {
				ua.mu.Unlock()
				return m, true
			}
		}
		seen = len(ua.msgs)
		notify := ua.notify
		ua.mu.Unlock()
		select {
		case <-notify:
		case <-ua.done:
			return ctrlMsg{}, false
		case <-timer.C:
			return ctrlMsg{}, false
		}
	}
}

// command sends a menu command over ctrl_tcp and waits for its reply.
func (ua *baresipUA) command(cmd, params string) (ctrlMsg, error) {
	ua.mu.Lock()
	ua.token++
	token := fmt.Sprintf("t%d", ua.token)
	ua.mu.Unlock()
	b, err := json.Marshal(map[string]string{"command": cmd, "params": params, "token": token})
	if err != nil {
		return ctrlMsg{}, err
	}
	ua.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(ua.conn, "%d:%s,", len(b), b); err != nil {
		return ctrlMsg{}, fmt.Errorf("%s: send %s: %w", ua.name, cmd, err)
	}
	m, ok := ua.waitEvent(5*time.Second, func(m ctrlMsg) bool { return m.Response && m.Token == token })
	if !ok {
		return ctrlMsg{}, fmt.Errorf("%s: no reply to %s within 5 s", ua.name, cmd)
	}
	return m, nil
}

// ansi matches terminal colour codes in menu output, and registeredOK the
// state baresip's reginfo shows for a registered account.
var (
	ansi         = regexp.MustCompile("\x1b\\[[0-9;]*m")
	registeredOK = regexp.MustCompile(`\bOK\b`)
)

// waitRegistered waits until the phone's account shows as registered, and
// fails the test at once if the registration was refused.
func (ua *baresipUA) waitRegistered(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r, err := ua.command("reginfo", "")
		if err != nil {
			t.Fatalf("%s: %v", ua.name, err)
		}
		info := ansi.ReplaceAllString(r.Data, "")
		if registeredOK.MatchString(info) {
			return
		}
		if strings.Contains(info, "ERR") {
			t.Fatalf("%s: registration refused:%s", ua.name, info)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not registered after %v:%s", ua.name, timeout, info)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop asks baresip to quit, and kills it if it has not within 3 s. It is
// safe to call more than once.
func (ua *baresipUA) stop() {
	select {
	case <-ua.done:
		return
	default:
	}
	if ua.conn != nil {
		ua.command("quit", "")
	}
	select {
	case <-ua.done:
	case <-time.After(3 * time.Second):
		ua.cmd.Process.Kill()
		<-ua.done
	}
	if ua.conn != nil {
		ua.conn.Close()
	}
}

// recording returns the path of the file sndfile wrote the received audio
// of the call to (dump-<time>-dec.wav); there must be exactly one.
func (ua *baresipUA) recording() (string, error) {
	files, err := filepath.Glob(filepath.Join(ua.dir, "rec", "dump-*-dec.wav"))
	if err != nil {
		return "", err
	}
	if len(files) != 1 {
		return "", fmt.Errorf("want one recording of received audio, found %d: %v", len(files), files)
	}
	return files[0], nil
}

// heard returns the audio the phone received in its call, read from its
// recording; the phone must be stopped first (its recorder closes the
// file then).
func (ua *baresipUA) heard(t *testing.T) pcm {
	t.Helper()
	path, err := ua.recording()
	if err != nil {
		t.Fatal(err)
	}
	w, err := readWAV(path)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// statusLine matches the call status line baresip redraws many times a
// second; it only clutters a log.
var statusLine = regexp.MustCompile(`\[\d+:\d\d:\d\d\] audio=\S+ \(bit/s\)\s*`)

// log returns what baresip printed, without the status lines.
func (ua *baresipUA) log() string {
	return statusLine.ReplaceAllString(ua.out.String(), "")
}
