package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/tlsid"
)

// KindEdge is the variant without an engine: the host runs no clamd at
// all, and its gateway forwards every scan to a scanning pool (central
// gateways, or the pods of the Helm chart) over mutual TLS.
const KindEdge = "edge"

// Edge is where an edge host's gateway sends its scans, and the files
// that authenticate it to the pool (host paths).
type Edge struct {
	Pool          []string // "tls:HOST:PORT", in order; more than one for failover
	Cert, Key, CA string   // the host's client certificate and key, the CA of the pool's certificates
	files         tlsid.Inspection
}

// inspect reads the files in the tree as the gateway will: a plan whose
// gateway could not start (a missing, mismatched or expired file) is
// refused, since apply stops the host's clamd.
func (e *Edge) inspect(h *Host) error {
	e.files = tlsid.Inspect(tlsid.Files{Cert: h.P(e.Cert), Key: h.P(e.Key), CA: h.P(e.CA)}, time.Now())
	if e.files.Err != nil {
		return fmt.Errorf("the pool's TLS files: %s", strings.ReplaceAll(e.files.Err.Error(), h.Root+"/", "/"))
	}
	return nil
}

// edgeOf resolves the edge variant from the options: --pool and its files,
// or a --config whose backends are all tls: (then its files are the
// ones). It returns nil for the engine variants.
func edgeOf(opts Options) (*Edge, error) {
	e := &Edge{Pool: opts.Pool, Cert: opts.PoolCert, Key: opts.PoolKey, CA: opts.PoolCA}
	if len(e.Pool) == 0 && opts.Config != "" && (opts.Engine == "" || opts.Engine == KindEdge) {
		cfg, err := readConfig(opts.Config)
		if err != nil {
			return nil, err
		}
		if len(cfg.Backends) > 0 && !slices.ContainsFunc(cfg.Backends, func(b string) bool { return !strings.HasPrefix(b, "tls:") }) {
			e.Pool = cfg.Backends
			e.Cert, e.Key, e.CA = cfg.BackendTLS.Cert, cfg.BackendTLS.Key, cfg.BackendTLS.CA
		}
	}
	switch {
	case len(e.Pool) == 0 && opts.Engine == KindEdge:
		return nil, errors.New("--engine edge forwards to a pool: give its endpoints with --pool tls:HOST:PORT (or a --config whose backends are tls:)")
	case len(e.Pool) == 0:
		if opts.PoolCert+opts.PoolKey+opts.PoolCA != "" {
			return nil, errors.New("--pool-cert, --pool-key and --pool-ca go with --pool")
		}
		return nil, nil
	case opts.Engine != "" && opts.Engine != KindEdge:
		return nil, fmt.Errorf("--engine %s runs clamd on this host; --pool is the edge variant, which runs none", opts.Engine)
	case opts.Image != "":
		return nil, errors.New("--image names the engine's image; the edge variant runs no engine")
	}
	return e, e.check()
}

func readConfig(name string) (*config.Config, error) {
	src, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Parse(name, src)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	return cfg, nil
}

// check refuses endpoints that are not tls:HOST:PORT and missing files:
// a plain tcp: pool would send every object, and clamd's commands, in
// clear to a clamd that cannot tell who asks.
func (e *Edge) check() error {
	for _, a := range e.Pool {
		hp, ok := strings.CutPrefix(a, "tls:")
		if !ok {
			return fmt.Errorf("--pool %s: the pool is reached over mutual TLS only: tls:HOST:PORT", a)
		}
		if _, _, err := net.SplitHostPort(hp); err != nil {
			return fmt.Errorf("--pool %s: %w", a, err)
		}
	}
	for flag, f := range map[string]string{"--pool-cert": e.Cert, "--pool-key": e.Key, "--pool-ca": e.CA} {
		if !path.IsAbs(f) {
			return fmt.Errorf("the edge variant needs %s: an absolute path on the host (the host's client certificate and key, and the CA of the pool's certificate)", flag)
		}
	}
	return nil
}

// pinnedIPs are the pool's addresses when every endpoint is an IP
// address: the unit can then allow exactly those. A name needs DNS, and
// IPAddressAllow= takes addresses only.
func (e *Edge) pinnedIPs() []string {
	var ips []string
	for _, a := range e.Pool {
		host, _, _ := net.SplitHostPort(strings.TrimPrefix(a, "tls:"))
		ip := net.ParseIP(host)
		if ip == nil {
			return nil
		}
		if !slices.Contains(ips, ip.String()) {
			ips = append(ips, ip.String())
		}
	}
	return ips
}

// EdgeTOML is clamgate.toml on an edge host: the same listeners and
// policies as with a local engine, the pool as backends.
func EdgeTOML(h *Host, e *Edge) string {
	var b strings.Builder
	b.WriteString(header)
	fmt.Fprintf(&b, `# Edge: no clamd on this host. Every scan goes to the pool over mutual TLS; path scans and
# FILDES as streams of the files opened here. Jobs go round robin; an endpoint that does not
# answer is taken out until it does, and with none left clients get ERROR (the milter tempfails).
[backend]
address = ["%s"]
tls_cert = %q   # this host's certificate: the pool's policies and audit log name it
tls_key = %q
tls_ca = %q
stream_max_length = %q   # the pool's StreamMaxLength
`, strings.Join(e.Pool, `", "`), e.Cert, e.Key, e.CA, streamMax)
	b.WriteString("\n[server]\nhttp = \"tcp:127.0.0.1:9310\"   # /metrics, /healthz, /readyz\n")
	b.WriteString(clientListeners(h))
	return b.String()
}

func (p *Plan) edgeNotes(add func(string, ...any)) {
	e := p.Edge
	add("variant: edge, no clamd on this host: the gateway forwards every scan to the pool over mutual TLS: %s", strings.Join(e.Pool, ", "))
	if len(e.Pool) == 1 {
		add("WARNING: one pool endpoint: no failover while it is down (give --pool once per endpoint)")
	}
	in := e.files
	add("pool certificate: %s (%s), key %s, pool CA %s; valid until %s", e.Cert, in.Subject, e.Key, e.CA, in.NotAfter.Format(time.DateOnly))
	if in.Warning != "" {
		add("WARNING: pool certificate %s: %s", e.Cert, strings.ReplaceAll(in.Warning, p.Host.Root+"/", "/"))
	}
	if w := p.keyReadable(); w != "" {
		add("WARNING: %s", w)
	}
	if ips := e.pinnedIPs(); ips != nil {
		add("network: the gateway may connect to %s only (IPAddressAllow=)", strings.Join(ips, " "))
	} else {
		add("network: the gateway may connect anywhere over TCP (the pool is named by DNS, IPAddressAllow= takes addresses only)")
	}
}

// keyReadable warns when the key is not readable by the gateway's user:
// the gateway (and the package's config check) would refuse to start.
func (p *Plan) keyReadable() string {
	fi, err := os.Stat(p.Host.P(p.Edge.Key))
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	uid, gid := passwdIDs(p.Host.read("/etc/passwd"), "clamgate")
	switch {
	case uid >= 0 && int(st.Uid) == uid && fi.Mode()&0o400 != 0,
		gid >= 0 && int(st.Gid) == gid && fi.Mode()&0o040 != 0,
		fi.Mode()&0o004 != 0:
		return ""
	}
	return fmt.Sprintf("%s (mode %04o, owner %d:%d) is not readable by user clamgate: chown clamgate %s (mode 0600 or 0640)", p.Edge.Key, fi.Mode()&fs.ModePerm, st.Uid, st.Gid, p.Edge.Key)
}

// freshclamEdgeNote says why the edge variant leaves freshclam as it is:
// nothing of clamgate's reads the host's database any more, but clamscan
// does (amavis's backup scanner, an administrator's ad-hoc scans), and a
// stale database under clamscan would pass what the pool blocks.
func freshclamEdgeNote(h *Host, add func(string, ...any)) {
	switch f := h.Freshclam; {
	case f == nil:
		add("freshclam: not installed; nothing on this host reads %s for clamgate", h.DBDir)
	default:
		state := "not enabled"
		if f.Enabled {
			state = "enabled"
		} else if f.Masked {
			state = "masked"
		}
		add("freshclam: %s %s, left as it is: the pool keeps its own database; %s serves only clamscan here (amavis's backup scanner)", f.Name, state, h.DBDir)
	}
}
