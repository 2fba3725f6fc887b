// Package clamdproto speaks clamd's own socket protocol to clients: it reads
// their commands and INSTREAM chunks, and serves them through the scan
// dispatcher with replies that are byte for byte what clamd would send.
//
// The protocol is written by hand because no Go library implements clamd's
// server side (only clients exist), and exact reproduction of clamd's reply
// bytes is the whole point of this package.
package clamdproto

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// Framing is how a client delimits its command, and therefore how clamd
// terminates its replies to it.
type Framing byte

const (
	Bare    Framing = 0   // legacy "PING": one packet, up to a newline if any, no prefix
	Newline Framing = 'n' // "nPING\n"
	Null    Framing = 'z' // "zPING\x00"
)

// Terminator is the byte that ends a reply (and a command) in this framing.
func (f Framing) Terminator() byte {
	if f == Null {
		return 0
	}
	return '\n'
}

// MaxCommandLen bounds a command line, as clamd does, so that a client
// cannot make the gateway buffer an unbounded line.
const MaxCommandLen = 1024 + 4096

// ErrCommandTooLong is returned when no terminator arrives within MaxCommandLen.
var ErrCommandTooLong = errors.New("command too long")

// Command names clamd 1.4 knows. Anything else is UNKNOWN COMMAND.
const (
	CmdPing            = "PING"
	CmdVersion         = "VERSION"
	CmdVersionCommands = "VERSIONCOMMANDS"
	CmdReload          = "RELOAD"
	CmdShutdown        = "SHUTDOWN"
	CmdScan            = "SCAN"
	CmdContScan        = "CONTSCAN"
	CmdMultiScan       = "MULTISCAN"
	CmdAllMatchScan    = "ALLMATCHSCAN"
	CmdInstream        = "INSTREAM"
	CmdFildes          = "FILDES"
	CmdStats           = "STATS"
	CmdIDSession       = "IDSESSION"
	CmdEnd             = "END"
	CmdDetStats        = "DETSTATS"
	CmdDetStatsClear   = "DETSTATSCLEAR"
	CmdQuit            = "QUIT" // deprecated alias clamd still accepts for SHUTDOWN
	// CmdSelfCheck is clamd 1.5's: check the database, reload if it
	// changed. The gateway answers it itself, as the owner of reloads.
	CmdSelfCheck = "SELFCHECK"
)

// argCommands take a path argument after a single space.
var argCommands = map[string]bool{
	CmdScan: true, CmdContScan: true, CmdMultiScan: true, CmdAllMatchScan: true,
}

// plainCommands take no argument.
var plainCommands = map[string]bool{
	CmdPing: true, CmdVersion: true, CmdVersionCommands: true, CmdReload: true,
	CmdShutdown: true, CmdInstream: true, CmdFildes: true, CmdStats: true,
	CmdIDSession: true, CmdEnd: true, CmdDetStats: true, CmdDetStatsClear: true,
	CmdQuit: true, CmdSelfCheck: true,
}

// Command is one parsed client request.
type Command struct {
	Framing Framing
	Name    string // canonical name, or "" when unknown
	Arg     string // path for the scan commands
	Raw     string // the command text without prefix and terminator
}

// Known reports whether clamd would recognise the command.
func (c Command) Known() bool { return c.Name != "" }

// ReadCommand reads one command from r. io.EOF means the client closed
// cleanly before sending anything.
func ReadCommand(r *bufio.Reader) (Command, error) {
	first, err := r.ReadByte()
	if err != nil {
		return Command{}, err
	}
	framing := Bare
	var line string
	switch first {
	case 'z', 'n':
		framing = Framing(first)
		line, err = readDelimited(r, framing.Terminator())
	default:
		if err := r.UnreadByte(); err != nil {
			return Command{}, err
		}
		line, err = readPacket(r)
	}
	if err != nil {
		return Command{Framing: framing}, err
	}
	return ParseCommand(framing, clean(framing, line)), nil
}

// readPacket reads an unprefixed command the way clamd 1.4 does: what one
// read returned is the whole command, up to its first newline if it has
// one. Clients such as npm clamscan send "SCAN /path" with no newline and
// wait for the reply; waiting for a delimiter would stall them. What
// follows the newline stays buffered, as bytes after any command do.
func readPacket(r *bufio.Reader) (string, error) {
	pkt, err := r.Peek(r.Buffered())
	if err != nil {
		return "", err
	}
	end, next := len(pkt), len(pkt)
	if i := bytes.IndexByte(pkt, '\n'); i >= 0 {
		end, next = i, i+1
	}
	if end > MaxCommandLen {
		return "", ErrCommandTooLong
	}
	line := string(pkt[:end])
	_, err = r.Discard(next)
	return line, err
}

// clean applies what clamd does to a command line before parsing it: the
// line is a C string (it ends at a NUL), and newline-framed lines lose
// their trailing carriage returns.
func clean(framing Framing, line string) string {
	if framing == Null {
		return line
	}
	if i := strings.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	return strings.TrimRight(line, "\r")
}

// readDelimited reads up to delim without letting the line grow past
// MaxCommandLen.
func readDelimited(r *bufio.Reader, delim byte) (string, error) {
	var buf bytes.Buffer
	for {
		chunk, err := r.ReadSlice(delim)
		if buf.Len()+len(chunk) > MaxCommandLen+1 {
			return "", ErrCommandTooLong
		}
		buf.Write(chunk)
		switch {
		case err == nil:
			return string(buf.Bytes()[:buf.Len()-1]), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && buf.Len() > 0:
			// A client that half-closes after a command without its
			// terminator still gets an answer, as from clamd.
			return buf.String(), nil
		default:
			return "", err
		}
	}
}

// ParseCommand recognises a command the way clamd does: the name must match
// exactly, and scan commands carry their path after one space.
func ParseCommand(framing Framing, line string) Command {
	c := Command{Framing: framing, Raw: line}
	if plainCommands[line] {
		c.Name = line
		return c
	}
	name, arg, found := strings.Cut(line, " ")
	if found && argCommands[name] {
		c.Name, c.Arg = name, arg
	}
	return c
}
