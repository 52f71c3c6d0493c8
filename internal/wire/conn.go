package wire

import (
	"io"
	"net"
	"sync"
	"time"
)

// Conn is a net.Conn made of the two bodies of one HTTP/2 request: what
// the peer sends is read from r, what is written goes to w (flushed at
// each write). A maintenance session runs HTTP/2 over it, inside the
// unit's own outbound connection to the centre.
//
// Deadlines are not supported (they are accepted and ignored): the
// session's life is bounded by the request's context instead.
type Conn struct {
	r      io.ReadCloser
	w      io.Writer
	flush  func() error
	close  func()
	mu     sync.Mutex // a write and Close exclude each other
	closed bool
	once   sync.Once
	done   chan struct{}
	local  net.Addr
	peer   net.Addr
}

// NewConn joins r and w. flush (may be nil) is called after each write;
// closeFn (may be nil) is called once, on Close, after r is closed.
func NewConn(r io.ReadCloser, w io.Writer, flush func() error, closeFn func(), local, peer net.Addr) *Conn {
	return &Conn{r: r, w: w, flush: flush, close: closeFn, done: make(chan struct{}), local: local, peer: peer}
}

func (c *Conn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Write writes p to the peer. After Close it fails: the writer may be
// an HTTP handler's, which must not be written once the handler ends.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	n, err := c.w.Write(p)
	if err == nil && c.flush != nil {
		err = c.flush()
	}
	return n, err
}

// Close ends both directions; Done is closed.
func (c *Conn) Close() error {
	c.once.Do(func() {
		close(c.done)
		// Both ends first: that unblocks a reader, and a writer waiting
		// on the peer, which holds mu.
		c.r.Close()
		if wc, ok := c.w.(io.Closer); ok {
			wc.Close()
		}
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		if c.close != nil {
			c.close()
		}
	})
	return nil
}

// Done is closed when the conn is.
func (c *Conn) Done() <-chan struct{} { return c.done }

func (c *Conn) LocalAddr() net.Addr              { return c.local }
func (c *Conn) RemoteAddr() net.Addr             { return c.peer }
func (c *Conn) SetDeadline(time.Time) error      { return nil }
func (c *Conn) SetReadDeadline(time.Time) error  { return nil }
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }

// Addr names one end of a tunnel in logs.
type Addr string

func (a Addr) Network() string { return "tunnel" }
func (a Addr) String() string  { return string(a) }

// OneConn is a net.Listener that accepts c once, then waits until c is
// closed: http.Server.Serve on it returns when the session ends.
type OneConn struct {
	c    *Conn
	once sync.Once
}

// Listen returns a listener for c alone.
func Listen(c *Conn) *OneConn { return &OneConn{c: c} }

func (l *OneConn) Accept() (net.Conn, error) {
	first := false
	l.once.Do(func() { first = true })
	if first {
		return l.c, nil
	}
	<-l.c.done
	return nil, net.ErrClosed
}

func (l *OneConn) Close() error   { return l.c.Close() }
func (l *OneConn) Addr() net.Addr { return l.c.local }
