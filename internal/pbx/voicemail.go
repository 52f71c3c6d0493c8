package pbx

import (
	"context"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sekisho/sekisho/internal/b2bua"
	"github.com/sekisho/sekisho/internal/response"
	"github.com/sekisho/sekisho/internal/voicemail"
)

// mailboxes adapts the voicemail service to the B2BUA.
type mailboxes struct{ *voicemail.Service }

func (m mailboxes) Deposit(l *b2bua.Line, ext, caller string) string {
	return m.Service.Deposit(l, ext, caller)
}

// VoicemailCode is the feature code an extension dials for its mailbox.
const VoicemailCode = "*97"

// mwi tells ext's registered phones how many messages wait (RFC 3842
// message-summary, sent unsolicited as most PBXs do, so that a phone
// needs no subscription to light its lamp). Only the extension's own
// registered contacts get it: the counts are nobody else's business.
func (s *Server) mwi(ext string, fresh, old int) {
	waiting := "no"
	if fresh > 0 {
		waiting = "yes"
	}
	account := sip.Uri{Scheme: "sip", User: ext, Host: s.host, Port: s.port}
	body := fmt.Sprintf("Messages-Waiting: %s\r\nMessage-Account: %s\r\nVoice-Message: %d/%d (0/0)\r\n", waiting, account.String(), fresh, old)
	for _, bnd := range s.reg.Lookup(ext) {
		var ruri sip.Uri
		if err := sip.ParseUri(bnd.Contact, &ruri); err != nil {
			continue
		}
		req := sip.NewRequest(sip.NOTIFY, ruri)
		from := &sip.FromHeader{Address: account, Params: sip.NewParams()}
		from.Params.Add("tag", sip.GenerateTagN(16))
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{Address: account, Params: sip.NewParams()})
		req.AppendHeader(sip.NewHeader("Event", "message-summary"))
		req.AppendHeader(sip.NewHeader("Subscription-State", "active"))
		ct := sip.ContentTypeHeader("application/simple-message-summary")
		req.AppendHeader(&ct)
		req.SetBody([]byte(body))
		if bnd.Transport != "" {
			req.SetTransport(bnd.Transport)
		}
		if s.udpLocal != nil && (bnd.Transport == "" || bnd.Transport == "udp") {
			req.Laddr = sip.Addr{IP: s.udpLocal.IP, Port: s.udpLocal.Port}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := s.client.Do(ctx, req); err != nil {
			s.log.Debug("voicemail: message-waiting NOTIFY", "ext", ext, "contact", bnd.Contact, "err", err)
		}
		cancel()
	}
}

// retrieve answers ext's call to its mailbox.
func (s *Server) retrieve(req *sip.Request, tx sip.ServerTransaction, ext string) {
	if !s.mail.Has(context.Background(), ext) {
		tx.Respond(response.New(req, 404))
		return
	}
	line, err := s.b2b.AnswerLine(req, tx)
	if err != nil {
		s.log.Info("voicemail: cannot answer", "ext", ext, "err", err)
		return
	}
	go s.mail.Retrieve(line, ext)
}
