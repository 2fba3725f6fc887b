package clamd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// answer is what the scripted clamd does once it has read a request.
type answer struct {
	write []string // written in this many pieces, then the connection closes
	hang  bool     // write nothing and keep the connection open
	// readLimit stops reading an INSTREAM after this many data bytes (0 =
	// read it all), as clamd does past StreamMaxLength.
	readLimit int
}

// fakeClamd is a scripted clamd: each connection the client dials is one
// end of a socketpair whose other end is served by the script. It records
// what each request carried, so that tests check the client's framing too.
type fakeClamd struct {
	t      *testing.T
	mu     sync.Mutex
	script func(req request) answer
	refuse bool      // dial fails as if nothing listened on the socket
	reqs   []request // requests served so far
	wg     sync.WaitGroup
}

// request is what the client sent on one connection.
type request struct {
	command string // without the z prefix and NUL
	stream  []byte // INSTREAM data, chunks joined
	fd      bool   // FILDES: a descriptor arrived
	err     error  // the request could not be read whole
}

func newFake(t *testing.T, script func(request) answer) *fakeClamd {
	f := &fakeClamd{t: t, script: script}
	t.Cleanup(f.wg.Wait)
	return f
}

// client is a Client of the fake; network says what it claims to be.
func (f *fakeClamd) client(network string) *Client {
	return &Client{Network: network, Address: "fake", Timeout: 5 * time.Second, Dial: f.dial}
}

func (f *fakeClamd) setRefuse(v bool) {
	f.mu.Lock()
	f.refuse = v
	f.mu.Unlock()
}

func (f *fakeClamd) served() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

func (f *fakeClamd) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	f.mu.Lock()
	refuse := f.refuse
	f.mu.Unlock()
	if refuse {
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", unix.ECONNREFUSED)}
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	client, server := fileConn(f.t, fds[0]), fileConn(f.t, fds[1])
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer server.Close()
		f.serve(server)
	}()
	return client, nil
}

func fileConn(t *testing.T, fd int) *net.UnixConn {
	file := os.NewFile(uintptr(fd), "socketpair")
	defer file.Close()
	c, err := net.FileConn(file)
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.UnixConn)
}

func (f *fakeClamd) serve(conn *net.UnixConn) {
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var req request
	cmd, err := readCommand(conn)
	req.command = strings.TrimSuffix(strings.TrimPrefix(cmd, "z"), "\x00")
	req.err = err
	a := f.script(req)
	r := bufio.NewReader(conn)
	if err == nil {
		switch req.command {
		case "INSTREAM":
			req.stream, req.err = readChunks(r, a.readLimit)
		case "FILDES":
			req.fd, req.err = readFD(conn)
		}
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	if a.hang {
		_, _ = io.Copy(io.Discard, r) // until the client gives up
		return
	}
	for _, piece := range a.write {
		if _, err := conn.Write([]byte(piece)); err != nil {
			return
		}
	}
}

// readChunks reads INSTREAM chunks up to the zero length, or until limit
// data bytes have been read when limit > 0.
func readChunks(r *bufio.Reader, limit int) ([]byte, error) {
	var data []byte
	for {
		var n uint32
		if err := binary.Read(r, binary.BigEndian, &n); err != nil {
			return data, err
		}
		if n == 0 {
			return data, nil
		}
		chunk := make([]byte, n)
		if _, err := io.ReadFull(r, chunk); err != nil {
			return data, err
		}
		data = append(data, chunk...)
		if limit > 0 && len(data) >= limit {
			return data, errors.New("limit")
		}
	}
}

// readCommand reads up to the NUL a byte at a time: a buffered read could
// swallow FILDES's dummy byte, and the descriptor with it.
func readCommand(conn net.Conn) (string, error) {
	var b strings.Builder
	one := make([]byte, 1)
	for {
		if _, err := io.ReadFull(conn, one); err != nil {
			return b.String(), err
		}
		b.WriteByte(one[0])
		if one[0] == 0 {
			return b.String(), nil
		}
	}
}

// readFD reads FILDES's dummy byte with its descriptor, as clamd does.
func readFD(conn *net.UnixConn) (bool, error) {
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(make([]byte, 1), oob)
	if err != nil {
		return false, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return false, errors.New("no descriptor")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	for _, fd := range fds {
		unix.Close(fd)
	}
	return err == nil && len(fds) == 1, err
}

// says answers with the given pieces, then closes.
func says(pieces ...string) func(request) answer {
	return func(request) answer { return answer{write: pieces} }
}
