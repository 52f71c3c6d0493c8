package response

import (
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/chain"
)

func req(m sip.RequestMethod) *sip.Request {
	r := sip.NewRequest(m, sip.Uri{Scheme: "sip", User: "202", Host: "pbx"})
	r.AppendHeader(&sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "201", Host: "pbx"}, Params: sip.NewParams()})
	r.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "202", Host: "pbx"}, Params: sip.NewParams()})
	cid := sip.CallIDHeader("x")
	r.AppendHeader(&cid)
	r.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: m})
	return r
}

func TestForVerdict(t *testing.T) {
	chal := chain.Verdict{Action: chain.Challenge, Challenges: []string{`Digest realm="r", nonce="n"`}}
	tests := []struct {
		name   string
		method sip.RequestMethod
		v      chain.Verdict
		code   int
		header string
	}{
		{"register challenge", sip.REGISTER, chal, 401, "WWW-Authenticate"},
		{"invite challenge", sip.INVITE, chal, 407, "Proxy-Authenticate"},
		{"reject", sip.INVITE, chain.Deny(484, "dialplan: secret detail"), 484, ""},
		{"reject out of range fails closed", sip.INVITE, chain.Deny(200, "oops"), 500, ""},
		{"continue here is a wiring bug", sip.INVITE, chain.Pass("x"), 500, ""},
		{"undecided", sip.INVITE, chain.Verdict{}, 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := ForVerdict(req(tt.method), tt.v)
			if res.StatusCode != tt.code {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.code)
			}
			if tt.header != "" && res.GetHeader(tt.header) == nil {
				t.Fatalf("missing %s", tt.header)
			}
			// The internal reason never reaches the peer.
			if res.Reason != Phrase(tt.code) {
				t.Fatalf("reason phrase %q, want the standard %q", res.Reason, Phrase(tt.code))
			}
		})
	}
	if ForVerdict(req(sip.INVITE), chain.Verdict{Action: chain.Drop}) != nil {
		t.Fatal("drop must send nothing")
	}
}
