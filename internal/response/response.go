// Package response is the one table that turns a chain verdict into a SIP
// response. Reason phrases are the standard ones and never carry the
// internal reason: a peer learns the status and nothing about why, which
// keeps scanners from telling one refusal from another.
package response

import (
	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/chain"
)

var phrases = map[int]string{
	100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
	200: "OK", 202: "Accepted",
	400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
	407: "Proxy Authentication Required", 408: "Request Timeout", 415: "Unsupported Media Type",
	416: "Unsupported URI Scheme", 420: "Bad Extension", 423: "Interval Too Brief",
	480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 482: "Loop Detected",
	483: "Too Many Hops", 484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
	488: "Not Acceptable Here", 491: "Request Pending",
	500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable", 504: "Server Time-out",
	600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

// Phrase returns the standard reason phrase for code.
func Phrase(code int) string {
	if p, ok := phrases[code]; ok {
		return p
	}
	switch {
	case code < 200:
		return "Session Progress"
	case code < 300:
		return "OK"
	case code < 500:
		return "Request Failure"
	case code < 600:
		return "Server Error"
	}
	return "Global Failure"
}

// New builds a bodiless response to req with code and its standard phrase.
func New(req *sip.Request, code int) *sip.Response {
	return sip.NewResponseFromRequest(req, code, Phrase(code), nil)
}

// ForVerdict builds the response for a non-continue verdict. A challenge
// becomes 401 with WWW-Authenticate for REGISTER (RFC 3261 22.2) and 407
// with Proxy-Authenticate for everything else (RFC 3261 22.3). It returns
// nil for Drop: nothing is sent.
func ForVerdict(req *sip.Request, v chain.Verdict) *sip.Response {
	switch v.Action {
	case chain.Drop:
		return nil
	case chain.Challenge:
		code, hdr := 407, "Proxy-Authenticate"
		if req.Method == sip.REGISTER {
			code, hdr = 401, "WWW-Authenticate"
		}
		res := New(req, code)
		for _, c := range v.Challenges {
			res.AppendHeader(sip.NewHeader(hdr, c))
		}
		return res
	case chain.Reject:
		code := v.Status
		if code < 300 || code > 699 {
			code = 500
		}
		return New(req, code)
	}
	// Continue or Undecided reaching here is a wiring bug: fail closed.
	return New(req, 500)
}
