package doctor

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/tlsid"
)

// isEdge: the gateway runs no engine of its own and forwards every scan
// to a pool over TLS (clamgate deploy --pool): rows about the host's own
// clamd then describe something the host must not have.
func isEdge(env *Env) bool {
	c := env.Config
	return c != nil && c.Engine == nil && len(c.Backends) > 0 &&
		!slices.ContainsFunc(c.Backends, func(b string) bool { return !strings.HasPrefix(b, "tls:") })
}

// engineRow is a row about a clamd on this host that an edge does not
// have: its memory, its count, its image, its socket directory.
func engineRow(id string) bool {
	switch id {
	case "clamd-memory", "clamd-single", "image-digest", "engine-ids":
		return true
	}
	return false
}

// tlsDialer connects to a tls: backend as the gateway does, with its
// certificate, through env.Dial (so that tests can point it elsewhere).
func tlsDialer(env *Env) (clamd.DialFunc, error) {
	f := env.Config.BackendTLS
	f.Cert, f.Key, f.CA = env.path(f.Cert), env.path(f.Key), env.path(f.CA)
	st, err := tlsid.Load("backend", f)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, _, address string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		raw, err := env.Dial(ctx, "tcp", address)
		if err != nil {
			return nil, err
		}
		c := tls.Client(raw, st.ClientConfig(host))
		if err := c.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		return c, nil
	}, nil
}

func edgePoolCheck() check {
	return check{
		id: "edge-pool", title: "each pool endpoint answers over TLS with this host's certificate",
		expected: "every endpoint PONG; its certificate valid 14 days more",
		source:   "An edge host scans nothing itself: with every pool endpoint unreachable each scan answers an error and the milter defers mail; with one, the host runs without failover. docs/doctor.md#edge-pool",
		run:      checkEdgePool,
	}
}

func checkEdgePool(ctx context.Context, h *host) verdict {
	if !isEdge(h.env) {
		return pass("not an edge: the engine is on this host")
	}
	dial, err := tlsDialer(h.env)
	if err != nil {
		return verdict{status: Fail, measured: "the backend's TLS files: " + err.Error(), fix: "see tls-certificates"}
	}
	down := 0
	v := fold(h.env.Config.Backends, "", func(b string) (Status, string) {
		st, m := pingPool(ctx, h.env, dial, b)
		if st == Fail {
			down++
			st = Warn
		}
		return st, b + ": " + m
	})
	switch {
	case down == len(h.env.Config.Backends):
		v.status = Fail
		v.fix = "every scan fails until an endpoint answers: check the pool (its Service, pods, NetworkPolicy) and this host's route to it; a certificate refused by the pool shows as a handshake error"
	case down > 0:
		v.fix = "the other endpoints carry the load without failover: bring this one back"
	case v.status != Pass:
		v.fix = "renew the pool's certificate before it expires"
	}
	return v
}

// pingPool completes a handshake with the host's certificate and asks
// PING; it reports the pool's certificate and its expiry.
func pingPool(ctx context.Context, env *Env, dial clamd.DialFunc, backend string) (Status, string) {
	ctx, cancel := context.WithTimeout(ctx, env.timeout())
	defer cancel()
	conn, err := dial(ctx, "tcp", strings.TrimPrefix(backend, "tls:"))
	if err != nil {
		return Fail, err.Error()
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	reply := make([]byte, 16)
	n := 0
	if _, err = conn.Write([]byte("zPING\x00")); err == nil {
		n, err = conn.Read(reply)
	}
	if got := strings.TrimRight(string(reply[:n]), "\x00\n"); err != nil || got != "PONG" {
		return Fail, fmt.Sprintf("handshake done, PING answered %q (%v): the pool's policy for this host must allow PING", got, err)
	}
	peer := conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
	left := peer.NotAfter.Sub(env.Now)
	m := fmt.Sprintf("PONG, pool certificate %s until %s", peer.Subject, peer.NotAfter.Format(time.DateOnly))
	if left < tlsid.ExpiryWarning {
		return Warn, fmt.Sprintf("%s: expires in %d days", m, int(left.Hours()/24))
	}
	return Pass, m
}

func edgeNoClamdCheck() check {
	return check{
		id: "edge-no-clamd", title: "an edge host runs no clamd of its own, and none can start",
		expected: "no clamd process; replaced units masked",
		source:   "The pool holds the database; a clamd left on an edge host holds a second copy in memory and serves whoever still reaches its socket, unscreened by the gateway. docs/doctor.md#edge-no-clamd",
		run:      checkEdgeNoClamd,
	}
}

func checkEdgeNoClamd(ctx context.Context, h *host) verdict {
	if !isEdge(h.env) {
		return pass("not an edge: the engine is on this host")
	}
	var bad []string
	for _, p := range h.named(isClamd) {
		bad = append(bad, fmt.Sprintf("clamd[%d] running", p.PID))
	}
	masked := checkUnitsMasked(ctx, h)
	if masked.status != Pass {
		bad = append(bad, masked.measured)
	}
	if len(bad) > 0 {
		return verdict{status: Fail, measured: strings.Join(bad, "; "),
			fix: "systemctl mask --now the clamd units (clamgate deploy apply --pool ... does); the host's clients reach the pool through clamgate"}
	}
	return pass("no clamd process; " + masked.measured)
}

// edgeDatabase: on an edge the host's database serves only clamscan
// (amavis's backup scanner while the pool is away, ad-hoc scans), so a
// stale one is a warning, not the failure it is under a local engine.
func edgeDatabase(v verdict) verdict {
	if v.status != Fail {
		return v
	}
	v.status = Warn
	v.measured = "edge, only clamscan reads it: " + v.measured
	v.fix += "; or, if nothing on this host runs clamscan (amavis's @av_scanners_backup), remove the database and freshclam"
	return v
}
