package digest

import (
	"strings"
	"testing"

	icdigest "github.com/icholy/digest"
)

func TestParseCredentials(t *testing.T) {
	good := []struct {
		in   string
		want credentials
	}{
		{`Digest username="201", realm="sekisho", nonce="abc", uri="sip:127.0.0.1:5060", response="0123abcd", algorithm=MD5, cnonce="xyz", qop=auth, nc=00000001`,
			credentials{Username: "201", Realm: "sekisho", Nonce: "abc", URI: "sip:127.0.0.1:5060", Response: "0123abcd", Algorithm: "MD5", Cnonce: "xyz", QOP: "auth", Nc: 1}},
		{"digest\tusername = \"a\\\"b\" ,realm=\"r\",nc=0000000a , opaque=\"o\", userhash=false",
			credentials{Username: `a"b`, Realm: "r", Nc: 10}},
		{`Digest USERNAME="201",Algorithm=SHA-256`, credentials{Username: "201", Algorithm: "SHA-256"}},
	}
	for _, tt := range good {
		got, err := parseCredentials(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("%s:\n got %+v %v\nwant %+v", tt.in, got, err, tt.want)
		}
	}
	bad := []string{
		``,
		`Digest`,
		`Digest `,
		`Basic dXNlcjpwYXNz`,
		`Digestusername="a"`,
		`Digest username="a" realm="b"`,       // no comma
		`Digest username="a", username="b"`,   // twice: which one was checked?
		`Digest nc=00000001, nc=00000002`,     // twice
		`Digest username="a`,                  // unterminated
		`Digest username="a\`,                 // escape at the end
		"Digest username=\"a\x00b\"",          // control character
		`Digest username=`,                    // no value
		`Digest ="a"`,                         // no name
		`Digest username="a",`,                // trailing comma
		`Digest nc=xyz`,                       // not hex
		`Digest nc=1ffffffff`,                 // too big
		`Digest username="a", response=<bad>`, // not a token
	}
	for _, in := range bad {
		if got, err := parseCredentials(in); err == nil {
			t.Errorf("%q: accepted as %+v", in, got)
		}
	}
}

// TestParseCredentialsAgreesWithLibrary: where github.com/icholy/digest
// (the parser this one replaces) reads a header, this one reads the same
// fields or refuses it.
func TestParseCredentialsAgreesWithLibrary(t *testing.T) {
	for _, in := range parseSeeds {
		agree(t, in)
	}
}

var parseSeeds = []string{
	`Digest username="201", realm="sekisho", nonce="abc", uri="sip:pbx", response="00", qop=auth, nc=00000001, cnonce="x"`,
	`Digest username="2\01", realm="a b", nonce="", uri="sip:pbx;transport=udp", response="00", qop=auth, nc=ffffffff, cnonce="x"`,
	`Digest username="201",realm="sekisho",nonce="abc",uri="sip:pbx",response="00",algorithm=SHA-256,qop=auth,nc=7fffffff,cnonce="x"`,
	`Digest ,,,,="`,
	`Digest username=201`,
}

func agree(t *testing.T, in string) {
	t.Helper()
	if len(in) > 6 && strings.ToLower(in[6:]) != in[6:] {
		// Parameter names are case-insensitive (RFC 7235 2.1); the
		// library matches them exactly, so it reads "NC=1" as nothing.
		return
	}
	want, err := icdigest.ParseCredentials(in)
	if err != nil {
		return
	}
	got, err := parseCredentials(in)
	if err != nil {
		return // stricter is allowed
	}
	w := credentials{Username: want.Username, Realm: want.Realm, Nonce: want.Nonce, URI: want.URI, Response: want.Response,
		Algorithm: want.Algorithm, Cnonce: want.Cnonce, QOP: want.QOP, Nc: want.Nc}
	if got != w {
		t.Errorf("%q:\n got %+v\nwant %+v (icholy/digest)", in, got, w)
	}
}

func FuzzParseCredentials(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) { agree(t, in) })
}

func BenchmarkParseCredentials(b *testing.B) {
	h := `Digest username="3001",realm="sekisho",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.61:26061",nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",response="0123456789abcdef0123456789abcdef",algorithm=MD5`
	b.Run("sekisho", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			parseCredentials(h)
		}
	})
	b.Run("icholy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			icdigest.ParseCredentials(h)
		}
	})
}
