package pbx

import (
	"net"
	"testing"
	"time"
)

// TestSlowWriterCut: a peer that sends a message's headers one byte at a
// time is cut off once slowMessage has passed, while a peer that sends
// whole messages and keep-alives is not.
func TestSlowWriterCut(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := &idleConn{Conn: a, idle: time.Minute}
	start := time.Now()
	c.track([]byte("REGISTER sip:pbx SIP/2.0\r\n"), start)
	if c.msgStart.IsZero() {
		t.Fatal("a message in progress is not tracked")
	}
	c.track([]byte("Via: x\r\n\r"), start.Add(time.Second))
	c.track([]byte("\n"), start.Add(2*time.Second)) // header end split across reads
	if !c.msgStart.IsZero() {
		t.Fatal("the end of the headers was not seen")
	}
	c.track([]byte("\r\n\r\n"), start.Add(3*time.Second))
	if !c.msgStart.IsZero() {
		t.Fatal("a keep-alive started a message")
	}
	c.msgStart = time.Now().Add(-slowMessage - time.Second)
	go b.Write([]byte("X"))
	if _, err := c.Read(make([]byte, 16)); err != errSlowMessage {
		t.Fatalf("dribbling peer: %v, want errSlowMessage", err)
	}
}
