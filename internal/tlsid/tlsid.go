// Package tlsid holds the TLS material of a listener or of a forwarding
// backend (certificate, key, CA) and re-reads it on demand: a connection
// takes the material current at its handshake and keeps it, so that a
// rotation never touches a connection in flight, and a broken new file is
// refused with the old material kept. Only crypto/tls and crypto/x509.
package tlsid

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Files names the material. CA is the client CA of a listener (who may
// connect) or the server CA of a backend (whom the gateway trusts).
type Files struct {
	Cert, Key, CA string
	// MinVersion is "1.3" (default) or "1.2".
	MinVersion string
}

// material is one consistent reading of Files.
type material struct {
	cert     tls.Certificate
	leaf     *x509.Certificate
	pool     *x509.CertPool
	notAfter time.Time // the earliest expiry of the certificate and the CA
	server   *tls.Config
}

// Store is the current material of one listener or backend.
type Store struct {
	Name  string // "listener tls:…", "backend tls:…": for logs and metrics
	files Files
	min   uint16
	cur   atomic.Pointer[material]
	srv   *tls.Config // what ServerConfig returns
	mu    sync.Mutex  // one reload at a time
}

// Load reads files; the Store keeps them for Reload.
func Load(name string, f Files) (*Store, error) {
	minV, err := Version(f.MinVersion)
	if err != nil {
		return nil, err
	}
	s := &Store{Name: name, files: f, min: minV}
	s.srv = s.serverConfig()
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Version reads tls_min_version: "" or "1.3", or "1.2".
func Version(v string) (uint16, error) {
	switch v {
	case "", "1.3":
		return tls.VersionTLS13, nil
	case "1.2":
		return tls.VersionTLS12, nil
	}
	return 0, fmt.Errorf("tls_min_version %q: want \"1.3\" (the default) or \"1.2\"", v)
}

// Files is what the Store reads.
func (s *Store) Files() Files { return s.files }

// Reload re-reads the files. On any error the material in use stays.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := read(s.files)
	if err != nil {
		return err
	}
	m.server = &tls.Config{MinVersion: s.min, Certificates: []tls.Certificate{m.cert}}
	if m.pool != nil {
		m.server.ClientAuth, m.server.ClientCAs = tls.RequireAndVerifyClientCert, m.pool
	}
	s.cur.Store(m)
	return nil
}

// NotAfter is when the certificate (or, earlier, a CA certificate) expires.
func (s *Store) NotAfter() time.Time { return s.cur.Load().notAfter }

func read(f Files) (*material, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key) // also checks the key matches
	if err != nil {
		return nil, fmt.Errorf("tls_cert %s, tls_key %s: %w", f.Cert, f.Key, err)
	}
	m := &material{cert: cert, leaf: cert.Leaf, notAfter: cert.Leaf.NotAfter}
	if f.CA == "" {
		return m, nil
	}
	data, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, err
	}
	m.pool = x509.NewCertPool()
	cas, err := parseAll(data)
	if err != nil || len(cas) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate in it (%v)", f.CA, err)
	}
	for _, ca := range cas {
		m.pool.AddCert(ca)
		if ca.NotAfter.Before(m.notAfter) {
			m.notAfter = ca.NotAfter
		}
	}
	return m, nil
}

// ServerConfig is the listener's configuration: TLS 1.3 (or 1.2 when
// asked), and with a client CA, a certificate from it is required. Each
// handshake takes the material current at that moment.
func (s *Store) ServerConfig() *tls.Config { return s.srv }

func (s *Store) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: s.min,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load().server, nil
		},
	}
}

// ClientConfig is a backend's configuration for serverName: its
// certificate, and the CA its server must be signed by.
func (s *Store) ClientConfig(serverName string) *tls.Config {
	m := s.cur.Load()
	return &tls.Config{MinVersion: s.min, ServerName: serverName, RootCAs: m.pool,
		Certificates: []tls.Certificate{m.cert}}
}

// Dialer returns a dial function for clamd.Client: TCP, then a handshake
// bounded by ctx, with the material current at that moment.
func (s *Store) Dialer() func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		d := &tls.Dialer{Config: s.ClientConfig(host)}
		return d.DialContext(ctx, "tcp", address)
	}
}

// Handshake runs the server side of a handshake on c within timeout and
// classifies a failure as a refusal reason (see Reason).
func Handshake(ctx context.Context, c *tls.Conn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.HandshakeContext(ctx)
}

// Refusal reasons, the values of the refusals metric's reason label.
const (
	NoCertificate = "no_certificate"
	UnknownCA     = "unknown_ca"
	Expired       = "expired"
	NoPolicy      = "no_policy"
	NotTLS        = "not_tls"
	Timeout       = "timeout"
	Other         = "handshake"
)

// Reason names why a handshake failed.
func Reason(err error) string {
	var rh tls.RecordHeaderError
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var ne net.Error
	switch {
	case errors.As(err, &rh):
		return NotTLS
	case errors.As(err, &unknown):
		return UnknownCA
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return Expired
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Timeout
	case err != nil && isNoCert(err):
		return NoCertificate
	}
	return Other
}

// isNoCert: crypto/tls has no error value for a client that sent no
// certificate; its message is stable since Go 1.0.
func isNoCert(err error) bool {
	return containsAny(err.Error(), "didn't provide a certificate", "certificate required")
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// parseAll reads every certificate of a PEM bundle.
func parseAll(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out, nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}
