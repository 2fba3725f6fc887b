package milter

import (
	"context"
	"errors"
	"io"
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

// bufSize is how much of a message waits before it goes to clamd: a
// typical mail fits and reaches clamd in one write at end of message, and
// it is the backend's INSTREAM chunk, so larger ones stream in full chunks.
const bufSize = 64 << 10

// progressEvery keeps the MTA waiting for a slow verdict: postfix's
// milter_content_timeout and sendmail's T:E default to 5 minutes.
const progressEvery = 30 * time.Second

var (
	errOverLimit = errors.New("message over the milter size limit")
	errAborted   = errors.New("message aborted by the MTA")
	errJobOver   = errors.New("scan job ended")
)

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

// message is the one in progress on the connection.
type message struct {
	start time.Time
	size  int64
	buf   *[]byte // bytes not yet sent to the job
	over  bool
	job   *job // started at the first full buffer, or at end of message
	// forged counts the message's own X-Virus-* headers by name: with
	// add_header they are removed, or a sender could write its own
	// "X-Virus-Status: Clean".
	forged map[string]int
}

// job is the running scan of a message.
type job struct {
	pw     *io.PipeWriter // nil when the whole message was handed over at once
	cancel context.CancelCauseFunc
	done   chan outcome
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
	s.guard.negotiated(uint32(offered))
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
		s.msg = &message{start: time.Now(), buf: s.srv.getBuf()}
	}
	return s.msg
}

// write adds message bytes, in the order the MTA sent them, to the scan.
func (s *session) write(p []byte) {
	msg := s.current()
	if msg.over {
		return
	}
	if s.limit > 0 && msg.size+int64(len(p)) > s.limit {
		msg.over = true
		s.stop(msg, errOverLimit)
		return
	}
	msg.size += int64(len(p))
	b := *msg.buf
	if len(b)+len(p) <= cap(b) {
		*msg.buf = append(b, p...)
		return
	}
	s.send(msg, b)
	*msg.buf = b[:0]
	if len(p) >= cap(b) {
		s.send(msg, p)
		return
	}
	*msg.buf = append(b[:0], p...)
}

// send streams p to the job, starting it first if needed. It blocks until
// clamd has taken p, which is what keeps memory bounded; a job that has
// already failed takes nothing, and its outcome says why.
func (s *session) send(msg *message, p []byte) {
	if len(p) == 0 {
		return
	}
	if msg.job == nil {
		pr, pw := io.Pipe()
		msg.job = s.start(pr, pr)
		msg.job.pw = pw
	}
	_, _ = msg.job.pw.Write(p)
}

// start runs the scan job; closer, when set, is closed with the job so that
// the session's writes fail instead of waiting for a reader that is gone.
func (s *session) start(data io.Reader, closer *io.PipeReader) *job {
	ctx, cancel := context.WithCancelCause(s.ctx)
	j := &job{cancel: cancel, done: make(chan outcome, 1)}
	go func() {
		res, err := s.srv.Dispatcher.Do(ctx, scan.Job{
			Client: s.pol.Name, Protocol: "milter", Kind: scan.Stream, Data: data, Object: "message",
			Unique: true, // headers included (Received:, Message-ID:), no two mails are alike
		})
		if closer != nil {
			closer.CloseWithError(errJobOver)
		}
		j.done <- outcome{res, err}
	}()
	return j
}

// finish hands the rest of the message to the job and waits for its
// verdict, telling the MTA that the filter is alive meanwhile.
func (s *session) finish(msg *message, m gomilter.Modifier) outcome {
	defer s.srv.putBuf(msg)
	if msg.over {
		return outcome{err: errOverLimit}
	}
	if msg.job == nil {
		msg.job = s.start(&lastReader{b: *msg.buf}, nil)
	} else {
		s.send(msg, *msg.buf)
		_ = msg.job.pw.Close()
	}
	defer msg.job.cancel(nil)
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case o := <-msg.job.done:
			return o
		case <-tick.C:
			_ = m.Progress() // protocol v6 only; older MTAs just wait
		}
	}
}

// stop ends a running job early and waits for it, so that no scan
// outlives its message.
func (s *session) stop(msg *message, why error) {
	if msg.job == nil {
		return
	}
	cause := why
	if errors.Is(why, errAborted) {
		cause = scan.ErrClientGone // the MTA dropped the message: counted as abandoned
	}
	msg.job.cancel(cause)
	if msg.job.pw != nil {
		msg.job.pw.CloseWithError(why)
	}
	<-msg.job.done
	msg.job = nil
}

// abort drops the message in progress, if any.
func (s *session) abort() {
	if s.msg == nil {
		return
	}
	s.stop(s.msg, errAborted)
	s.srv.putBuf(s.msg)
	s.msg = nil
}

// lastReader returns its bytes with io.EOF, so that a message that fits in
// one buffer reaches clamd with its end marker in a single write.
type lastReader struct{ b []byte }

func (r *lastReader) Read(p []byte) (int, error) {
	n := copy(p, r.b)
	r.b = r.b[n:]
	if len(r.b) == 0 {
		return n, io.EOF
	}
	return n, nil
}

func (s *Server) getBuf() *[]byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, bufSize)
	return &b
}

// putBuf returns a message's buffer once no job can read it any more.
func (s *Server) putBuf(msg *message) {
	if msg.buf != nil {
		s.bufs.Put(msg.buf)
		msg.buf = nil
	}
}
