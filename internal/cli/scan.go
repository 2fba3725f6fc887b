package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/deploy"
	"clamgate/internal/scan"
	"clamgate/internal/tlsid"
)

// DefaultGateway is where `clamgate scan` looks for the gateway: the
// quick start's socket, else the host-wide one deploy makes for clamdscan.
const DefaultGateway = "unix:/run/clamgate/clamd.sock"

// defaultAddress is the first of the candidates whose socket exists, else
// the first.
func defaultAddress(candidates ...string) string {
	for _, c := range candidates {
		if fi, err := os.Stat(strings.TrimPrefix(c, "unix:")); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return c
		}
	}
	return candidates[0]
}

type scanner struct {
	client *clamd.Client
	fdpass bool
	quiet  bool
	out    io.Writer
	worst  int
}

// scanCmd is a clamdscan-like client: it streams each file (or passes its
// descriptor) to the gateway and prints clamdscan's line for it.
func scanCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := newFlags("scan", "PATH...|-")
	gw := fset.String("address", DefaultGateway, "the gateway's (or a clamd's) `ADDR`: unix:/path, tcp:host:port or tls:host:port (default: the first that exists of "+DefaultGateway+" and deploy's unix:"+deploy.LocalSocket+")")
	renamedFlag(fset, "gateway", "address", stderr)
	var files tlsid.Files
	fset.StringVar(&files.Cert, "cert", "", "tls: this client's certificate (PEM)")
	fset.StringVar(&files.Key, "key", "", "tls: its key (PEM)")
	fset.StringVar(&files.CA, "ca", "", "tls: the CA that signed the gateway's certificate (default: the system's)")
	fdpass := fset.Bool("fdpass", false, "pass each file's descriptor (unix sockets) instead of streaming it")
	quiet := fset.Bool("quiet", false, "print only infected files and errors")
	timeout := fset.Duration("timeout", 5*time.Minute, "per-file timeout")
	if code, ok := parseFlags(fset, args, stdout, stderr); !ok {
		return code
	}
	if !slices.ContainsFunc([]string{"address", "gateway"}, func(n string) bool { return visited(fset, n) }) {
		*gw = defaultAddress(DefaultGateway, "unix:"+deploy.LocalSocket)
	}
	if fset.NArg() == 0 {
		fmt.Fprintln(stderr, "clamgate scan: name at least one PATH, or - for standard input")
		return exitError
	}
	client, err := scanClient(*gw, *timeout, files)
	if err != nil {
		fmt.Fprintln(stderr, "clamgate scan:", err)
		return exitError
	}
	s := &scanner{client: client, fdpass: *fdpass, quiet: *quiet, out: stdout}
	for _, p := range fset.Args() {
		s.target(ctx, p)
	}
	return s.worst
}

// scanClient connects to a unix: or tcp: gateway, or with a certificate
// to a tls: one.
func scanClient(address string, timeout time.Duration, files tlsid.Files) (*clamd.Client, error) {
	if !strings.HasPrefix(address, "tls:") {
		return clamd.New(address, timeout)
	}
	store, err := tlsid.Load("gateway", files)
	if err != nil {
		return nil, err
	}
	return clamd.NewTLS(address, timeout, store.Dialer())
}

func (s *scanner) target(ctx context.Context, p string) {
	if p == "-" {
		reply, err := s.client.Instream(ctx, os.Stdin)
		s.report("stdin", scan.StreamObject, reply, err)
		return
	}
	err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			s.report(path, "", "", err)
			return nil
		}
		if d.Type().IsRegular() {
			s.file(ctx, path)
		}
		return nil
	})
	if err != nil {
		s.report(p, "", "", err)
	}
}

func (s *scanner) file(ctx context.Context, path string) {
	f, err := os.Open(path)
	if err != nil {
		s.report(path, "", "", err)
		return
	}
	defer f.Close()
	var reply string
	object := scan.StreamObject
	if s.fdpass {
		reply, err = s.client.Fildes(ctx, f)
		object = scan.FDObject(reply)
	} else {
		reply, err = s.client.Instream(ctx, f)
	}
	s.report(path, object, reply, err)
}

// report prints the verdict under the user's own path name and keeps the
// worst exit code: any error is 2, even after an infection.
// The reply is read as every front reads clamd's (scan.ParseVerdict): for
// object, the name the request gives clamd.
func (s *scanner) report(path, object, reply string, err error) {
	var res scan.Result
	if err == nil {
		if res, err = scan.ParseVerdict(object, reply); err != nil {
			err = fmt.Errorf("%w: %q", err, reply)
		}
	}
	if err != nil {
		fmt.Fprintf(s.out, "%s: %v ERROR\n", path, err)
		s.worst = exitError
		return
	}
	line := path + ": " + reply
	if i := strings.Index(reply, ": "); i >= 0 {
		line = path + reply[i:]
	}
	switch res.Verdict {
	case scan.Infected:
		fmt.Fprintln(s.out, line)
		s.worst = max(s.worst, exitInfected)
	case scan.Clean:
		if !s.quiet {
			fmt.Fprintln(s.out, line)
		}
	default:
		fmt.Fprintln(s.out, line)
		s.worst = exitError
	}
}

// visited reports whether the flag name was given.
func visited(fs *flag.FlagSet, name string) bool {
	seen := false
	fs.Visit(func(f *flag.Flag) { seen = seen || f.Name == name })
	return seen
}
