package test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestRTPInjectionDropped: while two baresip phones talk through the relay,
// a third host sends loud RTP (a 2000 Hz tone) to the relay port that
// faces the callee. The relay has latched that side to the callee's own
// source, so it must drop the injected stream and count it in the call
// record. (The caller's ear alone is no proof: a phone's jitter buffer may
// discard a stream with a foreign SSRC by itself.)
func TestRTPInjectionDropped(t *testing.T) {
	requireTool(t, "baresip")
	const (
		injectIP   = "127.0.0.9"
		injectTone = 2000.0
		calleeTone = 880.0
	)
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	p := startPBX(t)
	pw201, pw202 := p.AddExt(t, "201"), p.AddExt(t, "202")
	dir := t.TempDir()
	callerWAV, calleeWAV := filepath.Join(dir, "caller.wav"), filepath.Join(dir, "callee.wav")
	if err := writeToneWAV(callerWAV, 440, 5, 8000); err != nil {
		t.Fatal(err)
	}
	if err := writeToneWAV(calleeWAV, calleeTone, 30, 8000); err != nil {
		t.Fatal(err)
	}
	caller := startBaresip(ctx, t, "caller-201", "201", pw201, p, callerWAV)
	callee := startBaresip(ctx, t, "callee-202", "202", pw202, p, calleeWAV)
	caller.waitRegistered(t, 10*time.Second)
	callee.waitRegistered(t, 10*time.Second)
	if r, err := caller.command("dial", fmt.Sprintf("sip:202@%s", p.SIPAddr())); err != nil || !r.OK {
		t.Fatalf("dial: %+v %v", r, err)
	}
	if ev, ok := caller.waitEvent(10*time.Second, isEvent("CALL_ESTABLISHED")); !ok {
		t.Fatalf("call not established: %+v\n%s", ev, caller.log())
	}
	// The relay port offered to the callee is in the PBX's range
	// (10000-20000); the phones' own ports are 40000 and up.
	var relayPort int
	for _, m := range regexp.MustCompile(`m=audio (\d+) `).FindAllStringSubmatch(callee.log(), -1) {
		if n, _ := strconv.Atoi(m[1]); n >= 10000 && n <= 20000 {
			relayPort = n
		}
	}
	if relayPort == 0 {
		t.Fatalf("no relay port in the callee's SDP:\n%s", callee.log())
	}
	time.Sleep(500 * time.Millisecond) // the callee's RTP has latched its side

	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(injectIP)}, &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: relayPort})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 150 { // 3 s of G.711 at 20 ms
		conn.Write(rtpPacket(uint16(i), uint32(i*160), injectTone, i*160))
		time.Sleep(20 * time.Millisecond)
	}

	if _, ok := caller.waitEvent(15*time.Second, isEvent("CALL_CLOSED")); !ok {
		t.Fatal("call did not end")
	}
	caller.stop()
	callee.stop()
	path, err := caller.recording()
	if err != nil {
		t.Fatal(err)
	}
	a, err := readWAV(path)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, len(a.Samples))
	for i, s := range a.Samples {
		x[i] = float64(s)
	}
	injected, real := goertzel(x, injectTone, a.Rate), goertzel(x, calleeTone, a.Rate)
	t.Logf("caller's recording: %.2f s, power at %v Hz %.3g, at %v Hz %.3g", a.Seconds(), injectTone, injected, calleeTone, real)
	if real == 0 || injected > real/1000 {
		t.Errorf("the injected %v Hz stream reached the caller (power ratio %.3g)", injectTone, injected/real)
	}
	rec := waitOneCDR(t, p)
	if rec.PacketsForeign < 140 {
		t.Errorf("record counts %d foreign packets dropped, want the ~150 injected: %+v", rec.PacketsForeign, rec)
	}
}

// rtpPacket builds a PCMU packet carrying 20 ms of a tone.
func rtpPacket(seq uint16, ts uint32, freq float64, first int) []byte {
	b := make([]byte, 12, 12+160)
	b[0], b[1] = 0x80, 0 // version 2, PT 0 (PCMU)
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], 0x1badcafe)
	for i := range 160 {
		v := 12000 * math.Sin(2*math.Pi*freq*float64(first+i)/8000)
		b = append(b, ulaw(int16(v)))
	}
	return b
}

// ulaw encodes a linear sample as G.711 mu-law (ITU-T G.711).
func ulaw(s int16) byte {
	const bias, clip = 0x84, 32635
	v := int(s)
	sign := 0
	if v < 0 {
		v, sign = -v, 0x80
	}
	v = min(v, clip) + bias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0f
	return ^byte(sign | exp<<4 | mant)
}
