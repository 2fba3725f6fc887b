package config

import (
	"encoding/hex"
	"fmt"
	"strings"

	"clamgate/internal/addr"
)

// ProtoHTTP is the HTTP front: the /v1 scan API, clamav-rest's routes and
// the status page.
const ProtoHTTP = "http"

// httpPolicy reads the policy's HTTP credentials: each token is stored as
// its SHA-256, 64 hex digits, so that the file holds nothing a client
// could present.
func (v *validator) httpPolicy(key string, ps policySection, p *Policy) {
	p.Status = ps.Status
	for _, h := range ps.TokensSHA256 {
		b, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil || len(b) != 32 {
			v.fail(key+".tokens_sha256", "%q is not a SHA-256 in hex (64 digits): run `clamgate token new %s` for a token and its line", h, p.Name)
			continue
		}
		p.TokensSHA256 = append(p.TokensSHA256, [32]byte(b))
	}
}

// checkHTTPListeners refuses an HTTP listener that would serve anyone who
// can reach it: a policy without tokens is served on loopback or a unix
// socket only, whatever allow_non_loopback says.
func (v *validator) checkHTTPListeners(cfg *Config) {
	for i, l := range cfg.Listeners {
		p := cfg.Policies[l.Policy]
		if l.Protocol != ProtoHTTP || p == nil || len(p.TokensSHA256) > 0 {
			continue
		}
		a, err := addr.Parse(l.Address)
		if err != nil || a.Network != addr.TCP {
			continue
		}
		if !surelyLoopback(a.Address) {
			v.fail(fmt.Sprintf("listener[%d].policy", i), "policy %q has no tokens_sha256: an HTTP listener without credentials serves loopback only (add a token with `clamgate token new %s`)", p.Name, p.Name)
		}
	}
}
