package milter

import (
	"context"
	"errors"
	"net/textproto"
	"time"

	"clamgate/internal/policy"
	"clamgate/internal/scan"

	gomilter "github.com/d--j/go-milter"
)

// skipped are the events and replies the front does without: it decides
// once, at the end of the message, so the MTA need not wait for a reply to
// each header and body chunk.
const skipped = gomilter.OptNoConnect | gomilter.OptNoHelo | gomilter.OptNoRcptTo | gomilter.OptNoData |
	gomilter.OptNoUnknown | gomilter.OptNoMailReply | gomilter.OptNoHeaderReply |
	gomilter.OptNoEOHReply | gomilter.OptNoBodyReply

// bufSize is how much of a message stays in memory: a typical mail fits
// and reaches clamd from memory at end of message; a larger one goes on
// into a spool file, which a local clamd is then handed as it is.
const bufSize = 64 << 10

// progressEvery keeps the MTA waiting for a slow verdict: postfix's
// milter_content_timeout and sendmail's T:E default to 5 minutes.
const progressEvery = 30 * time.Second

var errOverLimit = errors.New("message over the milter size limit")

// session is one MTA connection: the library calls it for each event, one
// at a time, from the connection's goroutine.
type session struct {
	gomilter.NoOpMilter
	srv   *Server
	ctx   context.Context
	pol   *policy.Policy
	peer  policy.Peer
	limit int64
	msg   *message
	line  []byte // scratch for a header line
	guard *guard // told the packet size negotiated
}

// message is the one in progress on the connection. It is kept whole
// (spooled) as it arrives and scanned at its end: a job started earlier
// would only wait for the rest, and a pipe to it cost two more copies and
// a goroutine switch per body chunk.
type message struct {
	start time.Time
	size  int64
	buf   *[]byte // the spool's memory, from the server's pool
	spool *scan.FrontSpool
	err   error // keeping the message failed: busy, or the gateway's fault
	over  bool
	// forged counts the message's own X-Virus-* headers by name: with
	// add_header they are removed, or a sender could write its own
	// "X-Virus-Status: Clean".
	forged map[string]int
}

type outcome struct {
	res scan.Result
	err error
}

func (s *session) negotiate(mtaVersion, milterVersion uint32, mtaActions, _ gomilter.OptAction, mtaProtocol, _ gomilter.OptProtocol, offered gomilter.DataSize) (uint32, gomilter.OptAction, gomilter.OptProtocol, gomilter.DataSize, error) {
	version := min(mtaVersion, milterVersion)
	need := s.srv.actions()
	if version < 2 || mtaActions&need != need {
		s.srv.Log.Error("milter negotiation failed: the MTA cannot do what [milter] asks", "client", s.pol.Name,
			"peer", s.peer.String(), "mta_version", mtaVersion, "needed", need.String(), "offered", mtaActions.String())
		return 0, 0, 0, 0, errNegotiation
	}
	// Only steps the MTA offers to skip are skipped; an older MTA sends
	// them all and the library answers them.
	s.guard.negotiated(uint32(offered), s.write)
	return version, need, skipped & mtaProtocol, offered, nil
}

// actions are the modifications the configuration may need at end of message.
func (s *Server) actions() gomilter.OptAction {
	var a gomilter.OptAction
	if s.Config.AddHeader {
		a |= gomilter.OptAddHeader | gomilter.OptChangeHeader
	}
	if s.Config.OnInfected == "quarantine" || s.Config.OnFailure == "quarantine" {
		a |= gomilter.OptQuarantine
	}
	return a
}

func (s *session) MailFrom(_, _ string, _ gomilter.Modifier) (*gomilter.Response, error) {
	s.abort() // a message the MTA gave up on without saying so
	s.current()
	return gomilter.RespContinue, nil
}

func (s *session) Header(name, value string, _ gomilter.Modifier) (*gomilter.Response, error) {
	if canon := textproto.CanonicalMIMEHeaderKey(name); canon == "X-Virus-Status" || canon == "X-Virus-Scanned" {
		msg := s.current()
		if msg.forged == nil {
			msg.forged = map[string]int{}
		}
		msg.forged[canon]++
	}
	s.line = append(append(append(append(s.line[:0], name...), ": "...), value...), "\r\n"...)
	s.write(s.line)
	return gomilter.RespContinue, nil
}

func (s *session) Headers(_ gomilter.Modifier) (*gomilter.Response, error) {
	s.write([]byte("\r\n"))
	return gomilter.RespContinue, nil
}

func (s *session) BodyChunk(chunk []byte, _ gomilter.Modifier) (*gomilter.Response, error) {
	s.write(chunk)
	return gomilter.RespContinue, nil
}

func (s *session) EndOfMessage(m gomilter.Modifier) (*gomilter.Response, error) {
	msg := s.current()
	s.msg = nil
	o := s.finish(msg, m)
	return s.respond(m, msg, o)
}

func (s *session) Abort(_ gomilter.Modifier) error {
	s.abort()
	return nil
}

func (s *session) Cleanup(_ gomilter.Modifier) { s.abort() }

func (s *session) current() *message {
	if s.msg == nil {
		buf := s.srv.getBuf()
		s.msg = &message{start: time.Now(), buf: buf,
			spool: scan.NewFrontSpool(s.srv.SpoolDir, s.srv.Spool.Reserve(s.pol.Name), bufSize, *buf)}
	}
	return s.msg
}

// write adds message bytes, in the order the MTA sent them, to the spool.
func (s *session) write(p []byte) {
	msg := s.current()
	if msg.over || msg.err != nil || len(p) == 0 {
		return
	}
	if s.limit > 0 && msg.size+int64(len(p)) > s.limit {
		msg.over = true
		msg.drop()
		return
	}
	msg.size += int64(len(p))
	if _, err := msg.spool.Write(p); err != nil {
		msg.err = err
		msg.drop()
	}
}

// finish scans the message and waits for its verdict, telling the MTA
// that the filter is alive meanwhile.
func (s *session) finish(msg *message, m gomilter.Modifier) outcome {
	defer s.srv.release(msg)
	switch {
	case msg.over:
		return outcome{err: errOverLimit}
	case msg.err != nil:
		return outcome{err: msg.err}
	}
	data, err := msg.spool.Reader()
	if err != nil {
		return outcome{err: err}
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := s.srv.Dispatcher.Do(s.ctx, scan.Job{
			Client: s.pol.Name, Protocol: "milter", Kind: scan.Stream, Data: data, Object: "message",
			Unique: true, // headers included (Received:, Message-ID:), no two mails are alike
		})
		done <- outcome{res, err}
	}()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case o := <-done:
			return o
		case <-tick.C:
			_ = m.Progress() // protocol v6 only; older MTAs just wait
		}
	}
}

// abort drops the message in progress, if any.
func (s *session) abort() {
	if s.msg == nil {
		return
	}
	s.srv.release(s.msg)
	s.msg = nil
}

// drop lets go of what was kept of a message that will not be scanned.
func (msg *message) drop() { msg.spool.Close() }

func (s *Server) getBuf() *[]byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, bufSize)
	return &b
}

// release frees a message's spool and returns its buffer once no job can
// read them any more.
func (s *Server) release(msg *message) {
	msg.spool.Close()
	if msg.buf != nil {
		s.bufs.Put(msg.buf)
		msg.buf = nil
	}
}
