package b2bua

import (
	"context"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// party is one leg of a bridged call: the dialog the PBX answered (a
// caller's) or one it placed (a callee's, or a transfer's target). A
// transfer swaps the party on one side of a call and keeps the other, so
// the code that relays, hangs up and transfers works on parties, not on
// "the caller" and "the callee".
type party struct {
	srv *sipgo.DialogServerSession // exactly one of srv and cli is set
	cli *sipgo.DialogClientSession
	ext string // the extension on this leg; "" for a carrier
	key string // the dialog key requests from this party arrive under
	sdp []byte // the session description this party last sent, as it sent it
	// stop cancels the callback that ends the call when this party's
	// dialog ends; a party transferred away must not take the call down.
	stop func() bool
}

func serverParty(s *sipgo.DialogServerSession, ext string, sdp []byte) *party {
	local, _ := s.InviteRequest.To().Params.Get("tag")
	remote, _ := s.InviteRequest.From().Params.Get("tag")
	return &party{srv: s, ext: ext, sdp: sdp, key: dialogKey(s.InviteRequest.CallID().Value(), local, remote)}
}

func clientParty(s *sipgo.DialogClientSession, ext string) *party {
	local, _ := s.InviteRequest.From().Params.Get("tag")
	remote, _ := s.InviteResponse.To().Params.Get("tag")
	return &party{cli: s, ext: ext, sdp: s.InviteResponse.Body(), key: dialogKey(s.InviteRequest.CallID().Value(), local, remote)}
}

func (p *party) context() context.Context {
	if p.srv != nil {
		return p.srv.Context()
	}
	return p.cli.Context()
}

// target is where requests inside this party's dialog go: its Contact.
func (p *party) target() sip.Uri {
	if p.srv != nil {
		return *p.srv.InviteRequest.Contact().Address.Clone()
	}
	if ct := p.cli.InviteResponse.Contact(); ct != nil {
		return *ct.Address.Clone()
	}
	return *p.cli.InviteRequest.Recipient.Clone()
}

// do sends an in-dialog request and waits for its final response.
func (p *party) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	if p.srv != nil {
		return p.srv.Do(ctx, req)
	}
	return p.cli.Do(ctx, req)
}

func (p *party) write(req *sip.Request) error {
	if p.srv != nil {
		return p.srv.WriteRequest(req)
	}
	return p.cli.WriteRequest(req)
}

func (p *party) bye(ctx context.Context) error {
	if p.srv != nil {
		return p.srv.Bye(ctx)
	}
	return p.cli.Bye(ctx)
}

// readBye answers the party's BYE and ends its dialog.
func (p *party) readBye(req *sip.Request, tx sip.ServerTransaction) error {
	if p.srv != nil {
		return p.srv.ReadBye(req, tx)
	}
	return p.cli.ReadBye(req, tx)
}

// readAck confirms a dialog the PBX answered; ACKs for re-INVITEs end
// here (the PBX answered those itself).
func (p *party) readAck(req *sip.Request, tx sip.ServerTransaction) {
	if p.srv != nil {
		p.srv.ReadAck(req, tx)
	}
}

// reinvite sends a re-INVITE with body inside the party's dialog, ACKs a
// 2xx and returns the party's answer.
func (p *party) reinvite(ctx context.Context, body []byte) (*sip.Response, error) {
	req := sip.NewRequest(sip.INVITE, p.target())
	ct := sip.ContentTypeHeader("application/sdp")
	req.AppendHeader(&ct)
	req.SetBody(body)
	res, err := p.do(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.IsSuccess() {
		ack := sip.NewRequest(sip.ACK, p.target())
		ack.AppendHeader(&sip.CSeqHeader{SeqNo: res.CSeq().SeqNo, MethodName: sip.ACK})
		if err := p.write(ack); err != nil {
			return res, err
		}
	}
	return res, nil
}
