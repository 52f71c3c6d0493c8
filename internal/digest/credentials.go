package digest

import (
	"errors"
	"strconv"
	"strings"
)

// credentials are the fields of an Authorization or Proxy-Authorization
// header that Check uses.
type credentials struct {
	Username, Realm, Nonce, URI, Response, Algorithm, Cnonce, QOP string
	Nc                                                            int
}

var errMalformed = errors.New("digest: malformed credentials")

// parseCredentials parses a Digest credentials header value (RFC 7616
// 3.4, RFC 3261 25.1: "Digest" then comma-separated name=value, each value
// a token or a quoted string). It replaces github.com/icholy/digest's
// parser on the hot path, which allocated a 4 KiB reader per call and was
// an eighth of a REGISTER's CPU; values without escapes are substrings of
// s, so a parse allocates nothing.
//
// It is strict where leniency could be abused: a parameter given twice
// is refused rather than one of the two silently chosen (a proxy or log
// reading the other one would see a different user or response than the
// one checked), as are an unterminated quoted string, control
// characters, and anything between parameters other than a comma and
// spaces.
func parseCredentials(s string) (credentials, error) {
	var c credentials
	const scheme = "digest"
	if len(s) <= len(scheme) || !strings.EqualFold(s[:len(scheme)], scheme) || (s[len(scheme)] != ' ' && s[len(scheme)] != '\t') {
		return c, errMalformed
	}
	rest := s[len(scheme):]
	var seen uint16
	for first := true; ; first = false {
		rest = trimSpace(rest)
		if rest == "" {
			if first {
				return c, errMalformed
			}
			return c, nil
		}
		if !first {
			if rest[0] != ',' {
				return c, errMalformed
			}
			rest = trimSpace(rest[1:])
		}
		name, r := token(rest)
		if name == "" {
			return c, errMalformed
		}
		r = trimSpace(r)
		if r == "" || r[0] != '=' {
			return c, errMalformed
		}
		r = trimSpace(r[1:])
		var value string
		var err error
		if r != "" && r[0] == '"' {
			value, r, err = quoted(r)
			if err != nil {
				return c, err
			}
		} else {
			value, r = token(r)
			if value == "" {
				return c, errMalformed
			}
		}
		rest = r
		var field *string
		var bit uint16
		switch strings.ToLower(name) {
		case "username":
			field, bit = &c.Username, 1<<0
		case "realm":
			field, bit = &c.Realm, 1<<1
		case "nonce":
			field, bit = &c.Nonce, 1<<2
		case "uri":
			field, bit = &c.URI, 1<<3
		case "response":
			field, bit = &c.Response, 1<<4
		case "algorithm":
			field, bit = &c.Algorithm, 1<<5
		case "cnonce":
			field, bit = &c.Cnonce, 1<<6
		case "qop":
			field, bit = &c.QOP, 1<<7
		case "nc":
			bit = 1 << 8
			n, err := strconv.ParseUint(value, 16, 32)
			if err != nil || n > 1<<31-1 {
				return c, errMalformed
			}
			c.Nc = int(n)
		default:
			continue // opaque, userhash and extensions are not used
		}
		if seen&bit != 0 {
			return c, errMalformed
		}
		seen |= bit
		if field != nil {
			*field = value
		}
	}
}

func trimSpace(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	return s
}

// isTokenChar reports whether b may appear in an RFC 3261 token.
func isTokenChar(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("-.!%*_+`'~", b) >= 0
}

// token splits the token at the start of s from the rest.
func token(s string) (string, string) {
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// quoted splits the quoted string at the start of s (which begins with
// '"') from the rest, and returns its content with escapes resolved.
func quoted(s string) (string, string, error) {
	var b []byte // only when there is an escape
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			if b != nil {
				return string(b), s[i+1:], nil
			}
			return s[1:i], s[i+1:], nil
		case c == '\\':
			if i+1 == len(s) {
				return "", "", errMalformed
			}
			if b == nil {
				b = append([]byte(nil), s[1:i]...)
			}
			i++
			if s[i] < 0x20 || s[i] == 0x7f {
				return "", "", errMalformed
			}
			b = append(b, s[i])
		case c < 0x20 && c != '\t', c == 0x7f:
			return "", "", errMalformed
		default:
			if b != nil {
				b = append(b, c)
			}
		}
	}
	return "", "", errMalformed // unterminated
}
