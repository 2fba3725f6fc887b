package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"slices"
	"strings"

	"clamgate/internal/policy"
)

// withCert takes the client certificate a completed handshake verified.
func (id Identity) withCert(c *tls.Conn) Identity {
	id.tls = true
	st := c.ConnectionState()
	if len(st.VerifiedChains) > 0 && len(st.PeerCertificates) > 0 {
		id.Cert = st.PeerCertificates[0]
		id.Peer.Cert = Names(id.Cert)[0]
	}
	return id
}

// Names are the identities a certificate carries, in the syntax of a
// policy's tls_identities: its SAN URIs, its SAN DNS names, then its
// subject CN. The first is what logs and the audit name it by.
func Names(c *x509.Certificate) []string {
	var out []string
	for _, u := range c.URIs {
		out = append(out, "uri:"+u.String())
	}
	for _, d := range c.DNSNames {
		out = append(out, "dns:"+d)
	}
	if c.Subject.CommonName != "" || len(out) == 0 {
		out = append(out, "cn:"+c.Subject.CommonName)
	}
	return out
}

// Matches reports whether the certificate carries pattern: "dns:NAME",
// "cn:NAME" exactly, "uri:URI" exactly or, ending in "*", as a prefix.
func Matches(c *x509.Certificate, pattern string) bool {
	for _, n := range Names(c) {
		switch {
		case strings.HasPrefix(pattern, "uri:") && strings.HasSuffix(pattern, "*"):
			if strings.HasPrefix(n, strings.TrimSuffix(pattern, "*")) {
				return true
			}
		case strings.HasPrefix(pattern, "dns:"):
			if strings.EqualFold(n, pattern) { // DNS names are case-insensitive
				return true
			}
		case n == pattern:
			return true
		}
	}
	return false
}

// errNoPolicy: no colon, as for errNoCredentials.
var errNoPolicy = errors.New("the client certificate matches no policy of this listener")

// Choose picks, among a listener's policies, the one that serves this
// client: over TLS with a client CA, the first whose tls_identities the
// verified certificate matches; on any other listener (unix, tcp, a tls:
// listener without client CA, which the configuration allows one policy
// and, beyond loopback, only by allow_anonymous_network) its one policy.
// The error is why none does.
func (id Identity) Choose(pols []*policy.Policy) (*policy.Policy, error) {
	if !id.tls || id.Cert == nil {
		return pols[0], nil
	}
	for _, p := range pols {
		if slices.ContainsFunc(p.TLSIdentities, func(pat string) bool { return Matches(id.Cert, pat) }) {
			return p, nil
		}
	}
	return nil, errNoPolicy
}
