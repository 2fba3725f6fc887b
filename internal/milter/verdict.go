package milter

import (
	"errors"
	"log/slog"
	"strings"
	"time"

	"clamgate/internal/scan"

	gomilter "github.com/d--j/go-milter"
)

// What a message turned out to be; the names appear in logs.
const (
	kindClean     = "clean"
	kindInfected  = "infected"
	kindFailed    = "failed"
	kindOverLimit = "over_limit"
)

// respond turns a scan outcome into the configured action and logs the
// message. An outcome that is not a verdict is never clean.
func (s *session) respond(m gomilter.Modifier, msg *message, o outcome) (*gomilter.Response, error) {
	cfg := s.srv.Config
	kind, action := kindFailed, cfg.OnFailure
	switch {
	case errors.Is(o.err, errOverLimit):
		kind, action = kindOverLimit, cfg.OverLimit
	case o.err != nil || o.res.Verdict == scan.Failed:
		// kindFailed, cfg.OnFailure
	case o.res.Verdict == scan.Infected:
		kind, action = kindInfected, cfg.OnInfected
	default:
		kind, action = kindClean, "pass"
	}
	resp := s.act(m, msg, action, kind, o.res.Threat)
	s.logMessage(m, msg, o, kind, action)
	return resp, nil
}

func (s *session) logMessage(m gomilter.Modifier, msg *message, o outcome, kind, action string) {
	attrs := []any{"client", s.pol.Name, "peer", s.peer.String(), "queue_id", m.Get(gomilter.MacroQueueId),
		"verdict", kind, "action", action, "size", msg.size, "duration", time.Since(msg.start).Round(time.Microsecond)}
	level := slog.LevelInfo
	switch {
	case kind == kindInfected:
		attrs = append(attrs, "threat", o.res.Threat)
		level = slog.LevelWarn
	case kind == kindFailed && o.err != nil:
		attrs = append(attrs, "err", o.err.Error())
		level = slog.LevelWarn
	case kind == kindFailed:
		attrs = append(attrs, "reply", o.res.Reply)
		level = slog.LevelWarn
	}
	s.srv.Log.Log(s.ctx, level, "milter message", attrs...)
}

// act applies one action. A modification the MTA refuses turns into a
// temporary failure: the message must not pass as if it had been handled.
func (s *session) act(m gomilter.Modifier, msg *message, action, kind, threat string) *gomilter.Response {
	switch action {
	case "pass":
		s.addHeaders(m, msg, kind, threat)
		return gomilter.RespAccept
	case "quarantine":
		if err := m.Quarantine(quarantineReason(kind, threat)); err != nil {
			s.srv.Log.Error("milter quarantine failed", "client", s.pol.Name, "err", err)
			return tempfail(kind)
		}
		s.addHeaders(m, msg, kind, threat)
		return gomilter.RespAccept
	case "discard":
		return gomilter.RespDiscard
	case "reject":
		return s.reject(kind, threat)
	default:
		return tempfail(kind)
	}
}

func (s *session) reject(kind, threat string) *gomilter.Response {
	code, text := uint16(550), "5.7.1 Message could not be scanned for viruses"
	switch kind {
	case kindInfected:
		text = "5.7.1 " + strings.ReplaceAll(s.srv.Config.RejectMessage, "%v", threat)
	case kindOverLimit:
		code, text = 552, "5.3.4 Message too big to be scanned for viruses"
	}
	return reply(code, text)
}

func tempfail(kind string) *gomilter.Response {
	if kind == kindOverLimit {
		return reply(452, "4.3.1 Message too big to be scanned for viruses now")
	}
	return reply(451, "4.7.1 Message could not be scanned for viruses, try again later")
}

// reply builds an SMTP reply; the texts are the gateway's own or the
// administrator's, so a formatting error can only be a too long
// reject_message, and a bare temporary failure is then the safe answer.
func reply(code uint16, text string) *gomilter.Response {
	r, err := gomilter.RejectWithCodeAndReason(code, text)
	if err != nil {
		return gomilter.RespTempFail
	}
	return r
}

func quarantineReason(kind, threat string) string {
	if kind == kindInfected {
		return "clamgate: virus found: " + threat
	}
	return "clamgate: message could not be scanned"
}

// addHeaders writes X-Virus-Scanned and X-Virus-Status like clamav-milter's
// AddHeader, saying so when the message passes unscanned.
func (s *session) addHeaders(m gomilter.Modifier, msg *message, kind, threat string) {
	if !s.srv.Config.AddHeader {
		return
	}
	for name, n := range msg.forged {
		for i := n; i >= 1; i-- { // an empty value deletes the i-th header of that name
			if err := m.ChangeHeader(i, name, ""); err != nil {
				s.srv.Log.Warn("milter: removing the message's own header failed", "client", s.pol.Name, "header", name, "err", err)
			}
		}
	}
	status := "Clean"
	switch kind {
	case kindInfected:
		status = "Infected (" + threat + ")"
	case kindFailed:
		status = "Not scanned (scan failed)"
	case kindOverLimit:
		status = "Not scanned (message too big)"
	}
	if kind == kindClean || kind == kindInfected {
		s.header(m, "X-Virus-Scanned", "clamgate at "+s.srv.hostname())
	}
	s.header(m, "X-Virus-Status", status)
}

func (s *session) header(m gomilter.Modifier, name, value string) {
	if err := m.AddHeader(name, value); err != nil {
		s.srv.Log.Warn("milter add header failed", "client", s.pol.Name, "header", name, "err", err)
	}
}
