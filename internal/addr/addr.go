// Package addr is clamgate's one address syntax, parsed in one place for
// the configuration, the listeners, the backend client, the status server,
// the tools and the tests: "unix:/absolute/path", "tcp:host:port" or
// "tls:host:port" (TCP carrying TLS: a TLS front, or a gateway forwarding
// to another). The scheme names the transport; a part of clamgate that
// does not serve TLS refuses such an address by name (NoTLS).
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
	TLS  = "tls" // TCP carrying TLS
)

// ErrTLS is a tls: address where only unix: and tcp: are served.
var ErrTLS = errors.New("tls: addresses are not served here")

// Addr is one parsed address.
type Addr struct {
	Network string // Unix, TCP or TLS
	Address string // the socket's absolute path, or host:port
}

// Transport is what net.Dial and net.Listen take: "tcp" for TLS.
func (a Addr) Transport() string {
	if a.Network == TLS {
		return TCP
	}
	return a.Network
}

// NoTLS refuses a tls: address, for the parts of clamgate that do not
// serve TLS.
func (a Addr) NoTLS() error {
	if a.Network == TLS {
		return fmt.Errorf("%q: %w", a.String(), ErrTLS)
	}
	return nil
}

// Parse reads "unix:/absolute/path", "tcp:host:port" or "tls:host:port".
func Parse(s string) (Addr, error) {
	network, address, _ := strings.Cut(s, ":")
	switch {
	case network == Unix && filepath.IsAbs(address):
		return Addr{Unix, address}, nil
	case network == TCP && validHostPort(address):
		return Addr{TCP, address}, nil
	case network == TLS && validHostPort(address):
		return Addr{TLS, address}, nil
	}
	return Addr{}, fmt.Errorf("%q: want unix:/absolute/path, tcp:host:port or tls:host:port", s)
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
