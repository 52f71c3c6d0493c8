// Package retrans answers retransmitted REGISTER requests over UDP from a
// small cache of the final responses already sent, before any parsing.
//
// RFC 3261 17.2.2 keeps a non-INVITE server transaction for Timer J
// (64*T1, 32 s) after its final response, only so that a retransmitted
// request gets the same response again. In sipgo that transaction holds
// the parsed request, the parsed response, timers and a channel: about
// 4 KiB each, so at 8,000 registrations a second (16,000 transactions)
// half a million of them, more than 2 GiB, were alive at once. sekisho
// instead ends a REGISTER transaction as soon as its final response is
// sent, and keeps just the response's bytes here, keyed by where it went
// and the request's Via branch, in a cache bounded in bytes. A
// retransmission that arrives later is answered from the cache.
//
// Why the cache is needed rather than just dropping the transaction: a
// retransmitted authenticated REGISTER would otherwise be checked again,
// its nonce-count would look like a replay, and the failure would count
// towards banning the very phone that sent it.
package retrans

import (
	"bytes"
	"net/netip"
	"sync"
	"time"
)

// DefaultTTL is how long a response stays answerable: Timer J with the
// default T1 of 500 ms, the longest a client retransmits a non-INVITE
// request (Timer F, RFC 3261 17.1.2.2).
const DefaultTTL = 32 * time.Second

// DefaultMaxBytes bounds the response bytes held (about 100,000
// responses). When it is full the oldest responses go first: most
// retransmissions come within the first seconds (after 0.5, 1, 2 and
// 4 s), and one that misses the cache is answered as a new request.
const DefaultMaxBytes = 64 << 20

// magicCookie starts every RFC 3261 branch. A branch without it comes
// from an RFC 2543 client whose transactions are not identified by the
// branch alone; such responses are not cached.
const magicCookie = "z9hG4bK"

type key struct {
	peer   netip.AddrPort
	branch string
}

type entry struct {
	key  key
	resp []byte
	at   time.Time
}

// Cache holds final responses to REGISTER requests. It is safe for
// concurrent use.
type Cache struct {
	ttl      time.Duration
	maxBytes int
	now      func() time.Time

	mu    sync.Mutex
	index map[key]uint64 // key -> sequence number of its entry in ring
	ring  []entry        // FIFO, oldest at ring[head]; grows by doubling
	head  int            // index of the oldest entry
	n     int            // entries in ring
	first uint64         // sequence number of ring[head]
	bytes int            // sum of len(resp) in ring
	hits  uint64
}

// New returns a cache keeping responses for ttl within maxBytes; zero
// values take DefaultTTL and DefaultMaxBytes.
func New(ttl time.Duration, maxBytes int) *Cache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &Cache{ttl: ttl, maxBytes: maxBytes, now: time.Now, index: make(map[key]uint64), ring: make([]entry, 1024)}
}

// Sent is told of every datagram written to peer. If it is a final
// response to a REGISTER with an RFC 3261 branch, a copy is kept.
// Anything else costs a comparison of its first bytes.
func (c *Cache) Sent(peer netip.AddrPort, msg []byte) {
	if !isFinalResponse(msg) {
		return
	}
	method, branch := scan(headers(msg), true)
	if string(method) != "REGISTER" || branch == nil {
		return
	}
	k := key{peer: unmap(peer), branch: string(branch)}
	resp := bytes.Clone(msg)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(now, len(resp))
	if c.n == len(c.ring) {
		c.growLocked()
	}
	seq := c.first + uint64(c.n)
	c.ring[(c.head+c.n)%len(c.ring)] = entry{key: k, resp: resp, at: now}
	c.n++
	c.bytes += len(resp)
	c.index[k] = seq // a newer response for the same transaction wins
}

// Lookup returns the response to send back if msg, received from peer,
// is a REGISTER whose transaction was already answered.
func (c *Cache) Lookup(peer netip.AddrPort, msg []byte) ([]byte, bool) {
	if !bytes.HasPrefix(msg, []byte("REGISTER ")) {
		return nil, false
	}
	_, branch := scan(headers(msg), false)
	if branch == nil {
		return nil, false
	}
	k := key{peer: unmap(peer), branch: string(branch)}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	seq, ok := c.index[k]
	if !ok {
		return nil, false
	}
	e := &c.ring[(c.head+int(seq-c.first))%len(c.ring)]
	if now.Sub(e.at) > c.ttl {
		return nil, false
	}
	c.hits++
	return e.resp, true
}

// Has reports whether a final response to the REGISTER with this top Via
// branch, sent to peer, is held: the transaction may then end at once.
func (c *Cache) Has(peer netip.AddrPort, branch string) bool {
	k := key{peer: unmap(peer), branch: branch}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.index[k]
	return ok
}

// Stats returns the number of responses held, their bytes, and how many
// retransmissions were answered from the cache.
func (c *Cache) Stats() (entries, size int, hits uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.bytes, c.hits
}

// expireLocked drops entries past their time, then the oldest until
// adding incoming bytes stays within the budget.
func (c *Cache) expireLocked(now time.Time, incoming int) {
	for c.n > 0 {
		e := &c.ring[c.head]
		if now.Sub(e.at) <= c.ttl && c.bytes+incoming <= c.maxBytes {
			return
		}
		if c.index[e.key] == c.first {
			delete(c.index, e.key)
		}
		c.bytes -= len(e.resp)
		*e = entry{}
		c.head = (c.head + 1) % len(c.ring)
		c.n--
		c.first++
	}
}

func (c *Cache) growLocked() {
	ring := make([]entry, 2*len(c.ring))
	for i := range c.n {
		ring[i] = c.ring[(c.head+i)%len(c.ring)]
	}
	c.ring, c.head = ring, 0
}

func unmap(p netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(p.Addr().Unmap(), p.Port())
}

// isFinalResponse reports whether msg is a SIP response with a status of
// 200 or more.
func isFinalResponse(msg []byte) bool {
	const prefix = "SIP/2.0 "
	if len(msg) < len(prefix)+3 || string(msg[:len(prefix)]) != prefix {
		return false
	}
	d := msg[len(prefix)]
	return d >= '2' && d <= '6'
}

// headers returns msg's header section without the start line.
func headers(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		msg = msg[:i+2]
	}
	if i := bytes.IndexByte(msg, '\n'); i >= 0 {
		return msg[i+1:]
	}
	return nil
}

// scan returns the method of the CSeq header and the top Via's branch
// (header "Via" or its compact form "v") in one pass over the header
// lines, stopping once both are found. Folded lines (obsolete) are seen as
// lines without a name, which match nothing.
func scan(head []byte, wantMethod bool) (method, branch []byte) {
	viaSeen := false
	for len(head) > 0 && (!viaSeen || (wantMethod && method == nil)) {
		line := head
		if i := bytes.IndexByte(head, '\n'); i >= 0 {
			line, head = head[:i], head[i+1:]
		} else {
			head = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := bytes.TrimSpace(line[:colon])
		value := bytes.TrimSpace(bytes.TrimRight(line[colon+1:], "\r"))
		switch {
		case !viaSeen && (bytes.EqualFold(name, []byte("Via")) || bytes.EqualFold(name, []byte("v"))):
			viaSeen = true
			branch = viaBranch(value)
		case wantMethod && method == nil && bytes.EqualFold(name, []byte("CSeq")):
			method = []byte{}
			if sp := bytes.LastIndexAny(value, " \t"); sp >= 0 {
				method = value[sp+1:]
			}
		}
	}
	return method, branch
}

// viaBranch returns the branch parameter of the first Via value in a Via
// header line if it is an RFC 3261 branch, else nil.
func viaBranch(value []byte) []byte {
	if i := bytes.IndexByte(value, ','); i >= 0 {
		value = value[:i] // the first of several Vias in one line
	}
	semi := bytes.IndexByte(value, ';')
	for semi >= 0 {
		value = value[semi+1:]
		p := value
		if semi = bytes.IndexByte(value, ';'); semi >= 0 {
			p = value[:semi]
		}
		name, v, ok := bytes.Cut(p, []byte("="))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(name), []byte("branch")) {
			continue
		}
		v = bytes.TrimSpace(v)
		if bytes.HasPrefix(v, []byte(magicCookie)) && len(v) > len(magicCookie) {
			return v
		}
		return nil
	}
	return nil
}
