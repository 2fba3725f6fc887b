package clamdproto

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"clamgate/internal/listen"
	"clamgate/internal/pathscan"
	"clamgate/internal/policy"
	"clamgate/internal/scan"
)

// Dispatcher runs scan jobs; it is the front's only way to the engine.
type Dispatcher interface {
	Do(ctx context.Context, job scan.Job) (scan.Result, error)
}

// Server serves clamd's protocol to clients, one connection at a time per
// goroutine, through the dispatcher.
type Server struct {
	Dispatcher Dispatcher
	Log        *slog.Logger
	// ReadTimeout bounds each wait for client bytes (a command, a chunk).
	ReadTimeout time.Duration
	// CommandTimeout bounds the whole of a command line from its first
	// byte, StreamTimeout the whole of an INSTREAM: bytes that trickle in
	// do not extend them (0: no bound beyond ReadTimeout).
	CommandTimeout, StreamTimeout time.Duration
	// StatsExtra, when set, adds lines to clamd's STATS reply (before its
	// END): the database's version and age, which clamd does not report.
	StatsExtra func() string
	// SelfCheck answers SELFCHECK; nil when the gateway follows no
	// database (SELFCHECK is then unknown, as to clamd 1.4).
	SelfCheck SelfChecker
	// Walks bounds the directory descriptors all path scans hold, shared
	// with the other fronts that walk; nil: the server's own bound.
	Walks    *pathscan.Slots
	readers  sync.Pool // *bufio.Reader
	walkOnce sync.Once
	walk     *pathscan.Walker
}

func (s *Server) walker() *pathscan.Walker {
	s.walkOnce.Do(func() { s.walk = pathscan.NewWalker(s.Dispatcher, s.Log, s.Walks) })
	return s.walk
}

// oldStyle are the commands clamd still accepts without a z/n prefix.
var oldStyle = map[string]bool{
	CmdScan: true, CmdQuit: true, CmdReload: true, CmdPing: true, CmdContScan: true,
	CmdVersion: true, CmdShutdown: true, CmdMultiScan: true, CmdFildes: true,
	CmdDetStatsClear: true, CmdDetStats: true,
}

// inSession are the commands clamd accepts inside IDSESSION.
var inSession = map[string]bool{
	CmdScan: true, CmdPing: true, CmdVersion: true, CmdVersionCommands: true,
	CmdInstream: true, CmdFildes: true, CmdStats: true, CmdEnd: true,
}

const unknownCommand = "UNKNOWN COMMAND"

// conn is one client connection.
type conn struct {
	srv    *Server
	c      net.Conn
	in     *connReader
	r      *bufio.Reader
	pol    *policy.Policy
	peer   policy.Peer
	prefix string // "<id>: " inside IDSESSION
	term   byte
	// cutShort: the client was answered (told no, or over a limit) while
	// it may still be sending a stream or a descriptor; see linger.
	cutShort bool
	// garbage: bytes followed the command in what the client sent, which
	// clamd answers with an error before the command's own reply.
	garbage bool
	// out queues the replies of an IDSESSION; nil outside one.
	out *replyQueue
}

// ServeConn serves one client connection until it ends. drain ends when
// the gateway stops accepting: a connection waiting for its next command
// closes then. ctx ends when the shutdown grace period is over: running
// requests are aborted.
func (s *Server) ServeConn(ctx, drain context.Context, c net.Conn, pol *policy.Policy, peer policy.Peer) {
	// Shutdown past its grace period unblocks a client that is mid-read.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	in := newConnReader(ctx, drain, c, s.ReadTimeout)
	// Readers are pooled: a fresh 64 KiB buffer per connection was a
	// fifth of the gateway's CPU on small scans (bench/README.md).
	br, _ := s.readers.Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReaderSize(in, 64<<10)
	}
	br.Reset(in)
	defer func() { br.Reset(nil); s.readers.Put(br) }()
	cn := &conn{srv: s, c: c, in: in, r: br, pol: pol, peer: peer}
	defer in.close()
	defer cn.linger()
	cmd, err := cn.nextCommand()
	if err != nil {
		cn.readFailed(err)
		return
	}
	cn.term = cmd.Framing.Terminator()
	if !recognised(cmd) {
		cn.reply(unknownCommand)
		return
	}
	if cmd.Name == CmdIDSession {
		cn.session(ctx)
		return
	}
	cn.handle(ctx, cmd)
}

// Bounds of a refused peer's stay: time to send its first command, whose
// framing the refusal takes so that it reads as a clamd reply.
const (
	refusalWait   = 2 * time.Second
	refusalBuffer = 1024
)

// Refuse answers a peer the gateway did not admit (its identity is not the
// policy's, or could not be established). The decision was made before any
// byte was read; the front then reads at most the first command, with
// plain reads that discard any descriptor passed along, only to frame the
// refusal as the client expects it.
func (s *Server) Refuse(ctx context.Context, c net.Conn, pol *policy.Policy, peer policy.Peer, why error) {
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_ = c.SetReadDeadline(time.Now().Add(min(refusalWait, s.writeTimeout())))
	cn := &conn{srv: s, c: c, r: bufio.NewReaderSize(c, refusalBuffer), pol: pol, peer: peer, term: '\n'}
	cmd, err := ReadCommand(cn.r)
	if err == nil {
		cn.term = cmd.Framing.Terminator()
		if cmd.Name == CmdIDSession && cmd.Framing != Bare {
			// A session client matches replies to the ids of commands it
			// has sent: answer its first command, as id 1.
			if next, err := ReadCommand(cn.r); err == nil && next.Framing != Bare {
				cn.prefix, cn.term = "1: ", next.Framing.Terminator()
			}
		}
	}
	cn.refuse(cmd, "Access denied ("+why.Error()+")")
	listen.Linger(c, refusalWait, lingerBytes)
}

// TurnAway tells a client the gateway will not serve its connection
// (too many connections), before it is closed unread. Its framing is not
// known yet: the line ends in a newline, as clamd's own COMMAND READ TIMED
// OUT does whatever the framing.
func (s *Server) TurnAway(c net.Conn, why string) {
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = c.Write([]byte("gateway busy: " + why + ". ERROR\n"))
}

// recognised applies clamd's parsing rules outside a session: names are
// exact, and newer commands need the z/n prefix.
func recognised(cmd Command) bool {
	if !cmd.Known() || cmd.Name == CmdEnd {
		return false
	}
	return cmd.Framing != Bare || oldStyle[cmd.Name]
}

// readFailed ends a connection whose client stopped sending. A client
// that stalls gets clamd's own timeout message, unprefixed and
// newline-terminated whatever its framing, exactly as clamd sends it.
func (c *conn) readFailed(err error) {
	switch {
	case errors.Is(err, errDraining):
		// Closed quietly: an idle client reconnects to the next gateway.
	case errors.Is(err, os.ErrDeadlineExceeded):
		msg := []byte("COMMAND READ TIMED OUT\n")
		if c.out != nil { // after the session's replies, not amid them
			c.out.add(msg)
			return
		}
		_ = c.c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.c.Write(msg)
	case errors.Is(err, ErrCommandTooLong):
		c.srv.Log.Warn("command too long", "peer", c.peer.String(), "client", c.pol.Name)
	}
}

// nextCommand waits for a command; the wait is idle time, which a
// shutdown cuts short.
func (c *conn) nextCommand() (Command, error) {
	c.in.idle.Store(true)
	defer c.in.idle.Store(false)
	// Waiting for the first byte is governed by ReadTimeout; from then on
	// the whole line has CommandTimeout.
	if _, err := c.r.Peek(1); err != nil {
		return Command{}, err
	}
	c.in.limit(c.srv.CommandTimeout)
	defer c.in.limit(0)
	cmd, err := ReadCommand(c.r)
	if err == nil && c.out == nil && cmd.Name != CmdFildes && cmd.Name != CmdIDSession && c.r.Buffered() == 0 {
		// The descriptor came with this command's bytes, which no FILDES
		// takes: outside a session clamd ignores it. (With bytes still
		// buffered it may belong to a pipelined FILDES: a read ends right
		// after the bytes a descriptor rides with. A session decides in
		// strayFD.)
		c.in.dropFD()
	}
	return cmd, err
}

// reply writes one reply line with the session prefix and the client's
// terminator. A write error means the client is gone; the caller's next
// read will end the connection.
func (c *conn) reply(text string) bool {
	buf := make([]byte, 0, len(garbageReply)+len(c.prefix)+len(text)+2)
	if c.garbage {
		c.garbage = false
		buf = append(append(buf, garbageReply...), c.term)
	}
	buf = append(append(append(buf, c.prefix...), text...), c.term)
	if c.out != nil {
		return c.out.add(buf)
	}
	_ = c.c.SetWriteDeadline(time.Now().Add(c.srv.writeTimeout()))
	_, err := c.c.Write(buf)
	return err == nil
}

func (s *Server) writeTimeout() time.Duration {
	if s.ReadTimeout > 0 {
		return s.ReadTimeout
	}
	return time.Minute
}

// refuse answers a request the client's policy does not allow. It never
// reaches clamd.
func (c *conn) refuse(cmd Command, why string) {
	c.srv.Log.Warn("request refused", "client", c.pol.Name, "peer", c.peer.String(),
		"command", cmd.Name, "arg", cmd.Arg, "reason", why)
	c.cutShort = true
	c.reply(why + ". ERROR")
}

// Bounds of linger: enough for a client to finish sending a descriptor or
// a small stream, not enough for a refused client to tie up the gateway.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 8 << 20
)

// linger lets a client read the last reply when it has sent more than
// the gateway read. Closing with unread input makes the kernel reset the
// connection, which can destroy the reply before the client reads it, and
// clients such as clamdscan then report the broken pipe instead of the
// reason; so the gateway shuts its side, and drains what the client still
// sends, briefly.
func (c *conn) linger() {
	if c.cutShort || c.r.Buffered() > 0 || listen.Unread(c.c) {
		listen.Linger(c.c, lingerTime, lingerBytes)
	}
}

// session serves IDSESSION: commands until END, each reply prefixed with
// the command's sequence number. Commands run one after another, which
// clamd's protocol allows (clients match replies by id); replies go out
// through a queue, so that the session reads on while the client has not
// read them yet, up to sessionBacklog.
func (c *conn) session(ctx context.Context) {
	c.out = newReplyQueue(c.c, c.srv.writeTimeout())
	var last []byte
	defer func() { c.endSession(last) }()
	sessionTerm := c.term
	for id := 1; ; id++ {
		c.prefix = strconv.Itoa(id) + ": "
		if c.strayFD(false) {
			return
		}
		if c.out.stuck() {
			last = c.endStuck(id)
			return
		}
		leftover := c.r.Buffered() > 0
		cmd, err := c.nextCommand()
		if err != nil {
			c.readFailed(err)
			return
		}
		c.term = cmd.Framing.Terminator()
		switch {
		case cmd.Name == CmdEnd:
			return
		case cmd.Framing == Bare && leftover && c.in.fd != nil:
			// clamd takes bytes without a newline after the session's last
			// full command for the start of one, not a command.
			c.term = sessionTerm
			c.strayFD(true)
			return
		case cmd.Framing == Bare:
			c.term = sessionTerm
			c.reply(`Only nCMDS\n and zCMDS\0 are accepted inside IDSESSION. ERROR`)
			if !c.strayFD(true) {
				c.reply("Error processing command. ERROR")
			}
			return
		case !inSession[cmd.Name]:
			c.reply("Command invalid inside IDSESSION. ERROR")
			return
		}
		if !c.handle(ctx, cmd) {
			return
		}
	}
}

// strayFD ends a session that was sent a descriptor no FILDES claims, once
// the bytes it came with are all read (or at once, when now), with clamd's
// protocol error; true when it did.
func (c *conn) strayFD(now bool) bool {
	if c.in.fd == nil || (!now && c.r.Buffered() > 0) {
		return false
	}
	c.in.dropFD()
	c.srv.Log.Warn("descriptor sent without FILDES", "client", c.pol.Name, "peer", c.peer.String())
	c.reply("PROTOCOL ERROR: ancillary data sent without FILDES. ERROR")
	return true
}

// endSession writes what the session queued. A session ended because its
// client does not read (last is its final reply) gets lingerTime for it,
// while the gateway discards what the client still sends: a client
// blocked writing the rest of its session can then go on to read.
func (c *conn) endSession(last []byte) {
	if last == nil {
		c.out.finish(nil, 0)
		return
	}
	discarded := make(chan struct{})
	go func() {
		defer close(discarded)
		c.in.limit(lingerTime)
		_, _ = io.CopyN(io.Discard, c.r, lingerBytes)
	}()
	c.out.finish(last, lingerTime)
	<-discarded
}

// endStuck is the last reply of a session whose client left more than
// sessionBacklog of replies unread: it ends rather than stops reading (the
// client would then block writing, and both wait for a timeout). The id is
// that of the first command not served.
func (c *conn) endStuck(id int) []byte {
	c.srv.Log.Warn("session ended: client does not read its replies", "client", c.pol.Name, "peer", c.peer.String(),
		"unread_bytes", sessionBacklog, "commands", id-1)
	c.cutShort = true
	return append([]byte(fmt.Sprintf("%d: Session ended: more than %d bytes of replies unread. ERROR", id, sessionBacklog)), c.term)
}

// garbageReply is what clamd 1.4 sends first when bytes follow a command
// outside a session that it hands to a worker thread (a scan, STATS).
// (clamd races itself here: a scan failing at once can lose the error.)
const garbageReply = "Error processing command. ERROR"

// dispatched are the commands clamd hands to a worker thread.
var dispatched = map[string]bool{
	CmdScan: true, CmdContScan: true, CmdMultiScan: true, CmdAllMatchScan: true, CmdStats: true,
}

// handle serves one command; false means the connection must end.
func (c *conn) handle(ctx context.Context, cmd Command) bool {
	if err := c.pol.AllowCommand(cmd.Name); err != nil {
		c.refuse(cmd, err.Error())
		return true
	}
	c.garbage = c.prefix == "" && dispatched[cmd.Name] && c.r.Buffered() > 0
	switch cmd.Name {
	case CmdInstream:
		return c.instream(ctx)
	case CmdFildes:
		return c.fildes(ctx)
	case CmdScan, CmdContScan, CmdMultiScan, CmdAllMatchScan:
		c.scanPath(ctx, cmd)
		return true
	case CmdSelfCheck:
		return c.selfCheck(ctx)
	case CmdVersionCommands:
		return c.versionCommands(ctx)
	default:
		return c.forward(ctx, cmd)
	}
}

// forward passes a non-scan command to clamd and relays its reply.
func (c *conn) forward(ctx context.Context, cmd Command) bool {
	name := cmd.Name
	if name == CmdQuit {
		name = CmdShutdown
	}
	if slices.Contains(policy.AdminCommands, cmd.Name) {
		c.srv.Log.Warn("admin command forwarded", "client", c.pol.Name, "peer", c.peer.String(), "command", cmd.Name)
	}
	res, err := c.srv.Dispatcher.Do(ctx, scan.Job{
		Client: c.pol.Name, Identity: c.peer.Cert, Protocol: "clamd", Kind: scan.Command, Command: name, Object: name,
	})
	if err != nil {
		c.reply(failure(name, err))
		return false
	}
	if res.Reply == "" {
		return false // clamd answers DETSTATS and SHUTDOWN with nothing
	}
	if name == CmdStats && c.srv.StatsExtra != nil && strings.HasSuffix(res.Reply, "\nEND") {
		if extra := c.srv.StatsExtra(); extra != "" {
			res.Reply = strings.TrimSuffix(res.Reply, "END") + extra + "\nEND"
		}
	}
	return c.reply(res.Reply)
}

// failure is the reply when a job could not be done. It always ends in
// ERROR, so no client can mistake it for a clean verdict.
func failure(object string, err error) string {
	msg := err.Error()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		msg = "scan timed out"
	}
	return fmt.Sprintf("%s: %s. ERROR", object, strings.ReplaceAll(msg, "\n", " "))
}

// instream relays a client's INSTREAM to clamd chunk by chunk.
func (c *conn) instream(ctx context.Context) bool {
	c.in.limit(c.srv.StreamTimeout)
	defer c.in.limit(0)
	cr := NewChunkReader(c.r, c.pol.MaxStream)
	res, err := c.srv.Dispatcher.Do(ctx, scan.Job{
		Client: c.pol.Name, Identity: c.peer.Cert, Protocol: "clamd", Kind: scan.Stream, Data: cr, Object: "stream",
	})
	if !cr.Done() {
		c.cutShort = true // the client may still be sending the stream
	}
	switch {
	case errors.Is(err, ErrSizeLimit):
		c.reply(SizeLimitReply)
		return false
	case err != nil && cr.Err() != nil:
		c.readFailed(cr.Err()) // the client went away or stalled mid-stream
		return false
	case err != nil:
		c.reply(failure("stream", err))
		return false
	case res.Reply == SizeLimitReply:
		c.reply(res.Reply)
		return false
	case !cr.Done() && res.Verdict != scan.Failed:
		return c.badReply("stream", res.Reply, errEarlyVerdict)
	}
	return c.reply(res.Reply)
}

// badReply answers ERROR in place of a backend reply that is no verdict
// for the client's whole request.
func (c *conn) badReply(object, reply string, why error) bool {
	c.srv.Log.Error("backend reply refused", "client", c.pol.Name, "object", object, "reply", reply, "reason", why.Error())
	return c.reply(failure(object, why))
}

// fildes scans a descriptor the client passed. The client opened it, so it
// already has the access the scan needs and no path policy applies.
func (c *conn) fildes(ctx context.Context) bool {
	// The descriptor rides with (at least) one dummy byte; reading that
	// byte through recvmsg is what delivers the descriptor. Over TCP, or
	// without a descriptor, clamd also waits for the byte, then says so.
	if _, err := c.r.ReadByte(); err != nil {
		c.readFailed(err)
		return false
	}
	f := c.in.takeFD()
	if f == nil {
		c.reply("No file descriptor received. ERROR")
		return false
	}
	defer f.Close()
	if refusal := checkFildes(f); refusal != "" {
		c.srv.Log.Warn("descriptor refused", "client", c.pol.Name, "peer", c.peer.String(), "reason", refusal)
		return c.reply(refusal)
	}
	res, err := c.srv.Dispatcher.Do(ctx, scan.Job{
		Client: c.pol.Name, Identity: c.peer.Cert, Protocol: "clamd", Kind: scan.File, File: f, Object: "fildes",
	})
	if err != nil {
		return c.reply(failure("fildes", err))
	}
	return c.reply(res.Reply)
}
