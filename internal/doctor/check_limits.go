package doctor

import (
	"bytes"
	"context"
	"slices"
	"strings"

	"clamgate/internal/clamd"
)

// limitsProbeDepth nests the probe's EICAR deeper than any MaxRecursion an
// administrator is likely to set (clamd's default is 17).
const limitsProbeDepth = 64

func clamdLimitsCheck() check {
	return check{
		id: "clamd-limits", title: "clamd flags what it could not scan whole (EICAR in 64 zips)",
		expected: "Heuristics.Limits.Exceeded FOUND",
		source:   "Without AlertExceedsMax, clamd answers OK for an object nested deeper, larger or with more files than its limits allow, so anyone can send malware past it in a deep archive. docs/doctor.md#clamd-limits",
		run:      checkClamdLimits,
	}
}

// checkClamdLimits scans a crafted over-limit object on each backend of
// the configuration. Asking the running clamd, rather than reading a
// clamd.conf, measures what that clamd does: its file may be elsewhere
// (--config-file, inside a container image), unreadable, or edited since
// clamd read it.
func checkClamdLimits(ctx context.Context, h *host) verdict {
	cfg := h.env.Config
	if cfg == nil {
		return pass("no gateway configuration: no backend to ask")
	}
	addrs := slices.Clone(cfg.Backends)
	if cfg.Fallback != "" {
		addrs = append(addrs, cfg.Fallback)
	}
	if len(addrs) == 0 {
		return pass("managed engine: clamgate writes AlertExceedsMax yes into its clamd.conf")
	}
	probe := clamd.NestedEICAR(limitsProbeDepth)
	return fold(addrs, "set `AlertExceedsMax yes` in that clamd's clamd.conf and restart it (deploy's and the managed engine's have it); policy on_limits then decides",
		func(addr string) (Status, string) {
			st, m := judgeLimits(askLimits(ctx, h.env, addr, probe))
			return st, addr + ": " + m
		})
}

// askLimits sends the probe to one backend; a tls: one (an edge's pool)
// is asked with the gateway's certificate.
func askLimits(ctx context.Context, env *Env, addr string, probe []byte) (string, error) {
	c, err := clamd.New(addr, env.timeout())
	if strings.HasPrefix(addr, "tls:") {
		var dial clamd.DialFunc
		if dial, err = tlsDialer(env); err == nil {
			c, err = clamd.NewTLS(addr, env.timeout(), dial)
		}
	}
	if err != nil {
		return "", err
	}
	if !c.TLS {
		c.Dial = env.Dial
	}
	ctx, cancel := context.WithTimeout(ctx, env.timeout())
	defer cancel()
	return c.Instream(ctx, bytes.NewReader(probe))
}

func judgeLimits(reply string, err error) (Status, string) {
	switch {
	case err != nil:
		return Warn, "not asked: " + err.Error()
	case strings.Contains(reply, "Heuristics.Limits.Exceeded") && strings.HasSuffix(reply, " FOUND"):
		return Pass, reply
	case strings.HasSuffix(reply, ": OK"):
		return Fail, "answered OK for EICAR it did not unpack (AlertExceedsMax no): " + reply
	case strings.HasSuffix(reply, " FOUND"):
		return Warn, "unpacked all 64 levels (MaxRecursion above 64 or 0), so this probe cannot tell: " + reply
	}
	return Warn, "unexpected reply: " + reply
}
