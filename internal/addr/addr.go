// Package addr is clamgate's one address syntax, parsed in one place for
// the configuration, the listeners, the backend client, the status server,
// the tools and the tests: "unix:/absolute/path" or "tcp:host:port". The
// scheme names the transport, so that "tls:host:port" can join them (for
// TLS fronts and a gateway forwarding to another) without a second syntax;
// until then it is refused by name.
package addr

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
)

// Networks.
const (
	Unix = "unix"
	TCP  = "tcp"
	// TLS is reserved: "tls:host:port" parses to an ErrTLS error.
	TLS = "tls"
)

// ErrTLS is a tls: address, which no part of clamgate serves yet.
var ErrTLS = errors.New("tls: addresses are not supported yet")

// Addr is one parsed address.
type Addr struct {
	Network string // Unix or TCP: what net.Dial and net.Listen take
	Address string // the socket's absolute path, or host:port
}

// Parse reads "unix:/absolute/path" or "tcp:host:port".
func Parse(s string) (Addr, error) {
	network, address, _ := strings.Cut(s, ":")
	switch {
	case network == Unix && filepath.IsAbs(address):
		return Addr{Unix, address}, nil
	case network == TCP && validHostPort(address):
		return Addr{TCP, address}, nil
	case network == TLS:
		return Addr{}, fmt.Errorf("%q: %w", s, ErrTLS)
	}
	return Addr{}, fmt.Errorf("%q: want unix:/absolute/path or tcp:host:port", s)
}

func validHostPort(s string) bool {
	_, port, err := net.SplitHostPort(s)
	return err == nil && port != ""
}

// UnixPath is the address of the unix socket at path.
func UnixPath(path string) Addr { return Addr{Unix, path} }

// String is the address as written: what Parse reads back.
func (a Addr) String() string { return a.Network + ":" + a.Address }

// Path is a unix socket's path; "" for any other address.
func (a Addr) Path() string {
	if a.Network != Unix {
		return ""
	}
	return a.Address
}
