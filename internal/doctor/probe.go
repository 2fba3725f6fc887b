package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"clamgate/internal/clamd"
)

// ProbeArg is the hidden first argument of `clamgate doctor` that turns
// the process into a probe child: doctor re-executes itself with another
// uid, because a Go process cannot change the credentials of one thread.
const ProbeArg = "__probe"

// Cred is who a probe connects as.
type Cred struct {
	UID, GID uint32
	Groups   []uint32
}

// ProbeResult is what a probe child saw. Refused means the kernel said no
// (EACCES/EPERM, on the socket or a directory above it).
type ProbeResult struct {
	Refused   bool   `json:"refused"`
	Connected bool   `json:"connected"`
	Closed    bool   `json:"closed"` // the server hung up without a reply
	Reply     string `json:"reply"`
	Err       string `json:"error"`
}

// Prober connects to a socket as another user and reports what happened.
type Prober interface {
	Probe(ctx context.Context, network, address string, cred Cred, ping bool) ProbeResult
}

// ExecProber runs Argv (normally /proc/self/exe doctor __probe) with the
// credentials; the child prints one JSON ProbeResult.
type ExecProber struct {
	Argv []string
	Env  []string // extra environment for the child
}

func (p ExecProber) Probe(ctx context.Context, network, address string, cred Cred, ping bool) ProbeResult {
	mode := "connect"
	if ping {
		mode = "ping"
	}
	args := append(append([]string{}, p.Argv[1:]...), network, address, mode)
	cmd := exec.CommandContext(ctx, p.Argv[0], args...)
	cmd.Env = append(os.Environ(), p.Env...)
	// An empty (not nil) group list clears the supplementary groups;
	// otherwise the child would keep root's.
	groups := append([]uint32{}, cred.Groups...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: cred.UID, Gid: cred.GID, Groups: groups}}
	cmd.Dir = "/"
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Run()
	var r ProbeResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		msg := strings.TrimSpace(errb.String())
		if runErr != nil {
			msg = strings.TrimSpace(runErr.Error() + " " + msg)
		}
		return ProbeResult{Err: "probe did not run as uid " + fmt.Sprint(cred.UID) + ": " + msg}
	}
	return r
}

// ProbeMain is the probe child: args are network, address and "ping" or
// "connect". It always prints one JSON object and exits 0.
func ProbeMain(args []string, stdout io.Writer) int {
	var r ProbeResult
	if len(args) != 3 {
		r.Err = "usage: doctor " + ProbeArg + " NETWORK ADDRESS ping|connect"
	} else {
		r = probe(args[0], args[1], args[2] == "ping", 3*time.Second)
	}
	_ = json.NewEncoder(stdout).Encode(r)
	return 0
}

// probe asks PING with the clamd client when the socket speaks clamd's
// protocol; otherwise it only connects and waits a moment, since a server
// that checks credentials on accept hangs up at once.
func probe(network, address string, ping bool, timeout time.Duration) ProbeResult {
	if ping {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		reply, err := (&clamd.Client{Network: network, Address: address}).Command(ctx, "PING")
		return pingResult(reply, err)
	}
	conn, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return refused(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	b := make([]byte, 512)
	n, err := conn.Read(b)
	r := ProbeResult{Connected: true, Reply: strings.TrimRight(string(b[:n]), "\x00\r\n")}
	r.Closed = n == 0 && errors.Is(err, io.EOF)
	if err != nil && !r.Closed && !errors.Is(err, os.ErrDeadlineExceeded) {
		r.Err = err.Error()
	}
	return r
}

func refused(err error) ProbeResult {
	return ProbeResult{Refused: errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM), Err: err.Error()}
}

// pingResult sorts the clamd client's answer: a failed dial is a refusal
// (or no server), a hang-up before or instead of the reply is the
// gateway's refusal. The client reports a close without reply as "".
func pingResult(reply string, err error) ProbeResult {
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		return refused(err)
	case err == nil && reply == "", errors.As(err, &op) && op.Op == "write":
		return ProbeResult{Connected: true, Closed: true}
	case err != nil:
		return ProbeResult{Connected: true, Err: err.Error()}
	}
	return ProbeResult{Connected: true, Reply: reply}
}

// ping asks whatever listens at address for PONG, as the doctor itself,
// through env.Dial.
func ping(ctx context.Context, env *Env, network, address string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, env.timeout())
	defer cancel()
	return (&clamd.Client{Network: network, Address: address, Dial: env.Dial}).Command(ctx, "PING")
}
