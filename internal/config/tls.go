package config

import (
	"fmt"
	"path/filepath"

	"clamgate/internal/addr"
	"clamgate/internal/policy"
	"clamgate/internal/tlsid"
)

// listenerPolicies reads policy (one) or policies (a TLS listener's
// several, chosen by the client certificate).
func (v *validator) listenerPolicies(key string, ls listenerSection, l *Listener, policies map[string]*Policy) {
	switch {
	case ls.Policy != "" && len(ls.Policies) > 0:
		v.fail(key+".policies", "set policy or policies, not both")
		l.Policies = []string{ls.Policy}
	case ls.Policy != "":
		l.Policies = []string{ls.Policy}
	default:
		l.Policies = ls.Policies
	}
	if len(l.Policies) == 0 {
		v.fail(key+".policy", "required: the policy this listener serves")
		return
	}
	l.Policy = l.Policies[0]
	for _, name := range l.Policies {
		if _, ok := policies[name]; !ok {
			v.fail(key+".policy", "no [policy.%s] section", name)
		}
	}
}

// noCredentials refuses users and groups on a network listener: only a
// unix socket tells them (SO_PEERCRED).
func (v *validator) noCredentials(key string, l Listener, policies map[string]*Policy) {
	for _, name := range l.Policies {
		if p := policies[name]; p != nil && p.Restricted() {
			v.fail(key+".policy", "policy %q admits only some users or groups, which a network socket cannot tell apart (no peer credentials): serve it on a unix socket, or name its clients by certificate (tls_identities)", name)
		}
	}
}

// listenerTLS checks a tls: listener. With a client CA every client shows
// a certificate from it, and each of the listener's policies must say
// whose (tls_identities); without one the listener takes anonymous
// clients, which beyond loopback a policy must allow by name.
func (v *validator) listenerTLS(key string, ls listenerSection, l *Listener, hostPort string, policies map[string]*Policy) {
	l.TLS = tlsid.Files{Cert: ls.TLSCert, Key: ls.TLSKey, CA: ls.TLSClientCA, MinVersion: ls.TLSMinVersion}
	v.tlsFiles(key, "tls_client_ca", l.TLS)
	if l.Protocol == ProtoMilter {
		v.fail(key+".protocol", "milter has no TLS (MTAs connect to milters in plain): use clamd or icap on a tls: listener")
	}
	if l.TLS.CA != "" {
		// Client certificates authenticate: any address may be bound.
		l.AllowNonLoopback = true
		for _, name := range l.Policies {
			if p := policies[name]; p != nil && len(p.TLSIdentities) == 0 {
				v.fail(key+".policies", "policy %q has no tls_identities: no client certificate could select it on this listener", name)
			}
		}
		return
	}
	if len(l.Policies) > 1 {
		v.fail(key+".policies", "without tls_client_ca there is no client certificate to choose among several policies")
	}
	if p := policies[l.Policy]; p != nil && p.AllowAnonymousNetwork {
		l.AllowNonLoopback = true
		return
	}
	if !surelyLoopback(hostPort) {
		v.fail(key+".tls_client_ca", "%q is not loopback: a tls: listener beyond loopback needs client certificates (tls_client_ca), or its policy must say allow_anonymous_network = true", hostPort)
	}
}

// backendTLS reads [backend] tls_*: required when a backend is tls:, and
// only then.
func (v *validator) backendTLS(cfg *Config, b backendSection) {
	anyTLS := false
	for _, s := range append(cfg.Backends[:len(cfg.Backends):len(cfg.Backends)], cfg.Fallback) {
		if a, err := addr.Parse(s); err == nil && a.Network == addr.TLS {
			anyTLS = true
		}
	}
	f := tlsid.Files{Cert: b.TLSCert, Key: b.TLSKey, CA: b.TLSCA, MinVersion: b.TLSMinVersion}
	if !anyTLS {
		if f != (tlsid.Files{}) {
			v.fail("backend.tls_cert", "tls_cert, tls_key, tls_ca and tls_min_version are for a tls:HOST:PORT backend")
		}
		return
	}
	if f.CA == "" {
		v.fail("backend.tls_ca", "required for a tls: backend: the CA that signed its certificate")
	}
	v.tlsFiles("backend", "tls_ca", f)
	cfg.BackendTLS = f
}

// tlsFiles checks the names; whether the files parse and match is checked
// when they are loaded (start, reload, `config check`).
func (v *validator) tlsFiles(key, caKey string, f tlsid.Files) {
	if f.Cert == "" || f.Key == "" {
		v.fail(key+".tls_cert", "tls_cert and tls_key are required for TLS")
	}
	for k, p := range map[string]string{"tls_cert": f.Cert, "tls_key": f.Key, caKey: f.CA} {
		if p != "" && !filepath.IsAbs(p) {
			v.fail(key+"."+k, "%q is not an absolute path", p)
		}
	}
	if _, err := tlsid.Version(f.MinVersion); err != nil {
		v.fail(key+".tls_min_version", "%v", err)
	}
}

// policyTLS reads a policy's tls_identities and allow_anonymous_network.
func (v *validator) policyTLS(key string, ps policySection, p *Policy) {
	for _, id := range ps.TLSIdentities {
		if err := policy.CheckTLSIdentity(id); err != nil {
			v.fail(key+".tls_identities", "%v", err)
		}
	}
	p.TLSIdentities, p.AllowAnonymousNetwork = ps.TLSIdentities, ps.AllowAnonymousNetwork
}

// PoliciesFor returns every policy a listener serves, its first (Policy)
// first.
func (c *Config) PoliciesFor(l Listener) []*Policy {
	out := make([]*Policy, 0, len(l.Policies))
	for _, name := range l.Policies {
		out = append(out, c.Policies[name])
	}
	if len(out) == 0 {
		out = append(out, c.Policies[l.Policy])
	}
	return out
}

// TLSFiles are the TLS files the configuration names, by the key of each
// set ("listener[0]", "backend").
func (c *Config) TLSFiles() map[string]tlsid.Files {
	out := map[string]tlsid.Files{}
	for i, l := range c.Listeners {
		if l.TLS != (tlsid.Files{}) {
			out[fmt.Sprintf("listener[%d]", i)] = l.TLS
		}
	}
	if c.BackendTLS != (tlsid.Files{}) {
		out["backend"] = c.BackendTLS
	}
	return out
}
