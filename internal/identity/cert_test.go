package identity

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"testing"

	"clamgate/internal/policy"
)

func cert(cn string, dns []string, uris ...string) *x509.Certificate {
	c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}
	for _, u := range uris {
		p, _ := url.Parse(u)
		c.URIs = append(c.URIs, p)
	}
	return c
}

func TestMatches(t *testing.T) {
	mx := cert("mx1", []string{"mx1.example.org"}, "spiffe://example.org/mail/mx1")
	for _, tc := range []struct {
		pattern string
		want    bool
	}{
		{"dns:mx1.example.org", true},
		{"dns:MX1.Example.org", true},
		{"dns:mx2.example.org", false},
		{"dns:mx1", false},
		{"cn:mx1", true},
		{"cn:MX1", false},
		{"cn:mx1.example.org", false},
		{"uri:spiffe://example.org/mail/mx1", true},
		{"uri:spiffe://example.org/mail/*", true},
		{"uri:spiffe://example.org/proxy/*", false},
		{"uri:spiffe://example.org/mail", false},
		{"dns:*", false},
	} {
		if got := Matches(mx, tc.pattern); got != tc.want {
			t.Errorf("Matches(%q) = %v", tc.pattern, got)
		}
	}
}

func TestChoose(t *testing.T) {
	mx := &policy.Policy{Name: "mx", TLSIdentities: []string{"dns:mx1.example.org"}}
	proxies := &policy.Policy{Name: "proxies", TLSIdentities: []string{"uri:spiffe://example.org/proxy/*"}}
	pols := []*policy.Policy{mx, proxies}
	for _, tc := range []struct {
		name string
		id   Identity
		want *policy.Policy
	}{
		{"unix or tcp: the listener's one policy", Identity{}, mx},
		{"mx", Identity{tls: true, Cert: cert("", []string{"mx1.example.org"})}, mx},
		{"proxy", Identity{tls: true, Cert: cert("p", nil, "spiffe://example.org/proxy/7")}, proxies},
		{"no match", Identity{tls: true, Cert: cert("mx9", []string{"mx9.example.org"})}, nil},
		{"anonymous TLS (no client CA)", Identity{tls: true}, mx},
	} {
		got, err := tc.id.Choose(pols)
		if got != tc.want || (err != nil) != (tc.want == nil) {
			t.Errorf("%s: %v, %v", tc.name, got, err)
		}
	}
}
