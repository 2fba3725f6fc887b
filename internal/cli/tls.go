package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"clamgate/internal/tlsid"
)

// tlsCmd issues a private CA and host or client certificates: a
// convenience to start a multi-host site, not a PKI. Every certificate it
// issues serves as a server's and a client's, since a gateway is one to
// its clients and the other to its central gateway.
func tlsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	subs := []string{"new-ca", "issue"}
	switch {
	case len(args) > 0 && isHelp(args[0]):
		fmt.Fprint(stdout, groupUsage(ctx, "tls", subs))
		return 0
	case len(args) == 0 || !slices.Contains(subs, args[0]):
		fmt.Fprint(stderr, groupUsage(ctx, "tls", subs))
		return exitError
	}
	fs := newFlags("tls "+args[0], "")
	dir := fs.String("dir", "/etc/clamgate/tls", "`DIR` of the CA (ca.crt, ca.key) and the certificates")
	name := fs.String("name", "", "file `NAME` of the certificate: NAME.crt and NAME.key (default: ca, or the first --id's name)")
	days := fs.Int("days", 0, "validity in `DAYS` (default: 3650 for the CA, 397 for a certificate)")
	var ids multi
	if args[0] == "issue" {
		fs.Var(&ids, "id", "an `ID` the certificate carries: dns:HOST, uri:URI, ip:ADDR or cn:NAME (repeatable)")
	}
	if code, ok := parseFlags(fs, args[1:], stdout, stderr); !ok {
		return code
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		fmt.Fprintln(stderr, "clamgate tls:", err)
		return exitError
	}
	var cert, key string
	var err error
	if args[0] == "new-ca" {
		cert, key, err = newCA(*dir, *name, *days)
	} else {
		cert, key, err = issue(*dir, *name, *days, ids)
	}
	if err != nil {
		fmt.Fprintln(stderr, "clamgate tls:", err)
		return exitError
	}
	fmt.Fprintf(stdout, "wrote %s and %s\n", cert, key)
	return 0
}

func newCA(dir, name string, days int) (string, string, error) {
	if name == "" {
		name = "ca"
	}
	if _, err := os.Stat(filepath.Join(dir, name+".key")); err == nil {
		return "", "", fmt.Errorf("%s already exists: a new CA would not be trusted by the certificates issued so far", filepath.Join(dir, name+".key"))
	}
	_, pair, err := tlsid.NewCA("clamgate CA "+filepath.Base(filepath.Clean(dir)), time.Duration(or(days, 3650))*24*time.Hour)
	if err != nil {
		return "", "", err
	}
	return pair.Write(dir, name)
}

func issue(dir, name string, days int, ids []string) (string, string, error) {
	if len(ids) == 0 {
		return "", "", fmt.Errorf("name at least one --id (dns:mx1.example.org, uri:spiffe://example.org/mail/mx1, cn:proxy-7)")
	}
	ca, err := tlsid.LoadIssuer(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		return "", "", fmt.Errorf("%w (clamgate tls new-ca --dir %s first)", err, dir)
	}
	if name == "" {
		name = filepath.Base(trimKind(ids[0]))
	}
	pair, err := ca.Issue(ids, time.Now(), time.Duration(or(days, 397))*24*time.Hour)
	if err != nil {
		return "", "", err
	}
	return pair.Write(dir, name)
}

// trimKind is an identity without its "dns:" (or other) prefix.
func trimKind(id string) string {
	for i := range len(id) {
		if id[i] == ':' {
			return id[i+1:]
		}
	}
	return id
}

func or(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}
